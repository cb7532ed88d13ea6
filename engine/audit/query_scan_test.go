package audit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestQueryMatchesScan checks random queries (filters, kinds, time ranges,
// both orders, small pages) against a scan of every record, on a store
// whose calls finish out of order and whose index is partly on disk, partly
// rebuilt from the log after a reopen (IndexFlushEntries small).
func TestQueryMatchesScan(t *testing.T) {
	ctx := context.Background()
	opt := testOptions(t.TempDir())
	opt.IndexFlushEntries = 64
	rng := rand.New(rand.NewPCG(1, 2))
	var traces []string
	var times []time.Time
	n := 0
	run := func(s *Store, steps int) {
		var open []*Call
		for range steps {
			switch x := rng.IntN(10); {
			case x < 5 || len(open) == 0:
				r := request(n)
				r.TraceIn = fmt.Sprintf("in-%d", n%17) // some trace ids repeat
				n++
				c, err := s.Begin(ctx, r)
				if err != nil {
					t.Fatal(err)
				}
				open = append(open, c)
				traces = append(traces, r.TraceIn, r.TraceOut)
			case x < 9:
				i := rng.IntN(len(open))
				o := outcome(n)
				o.Sources[0].TraceID = fmt.Sprintf("src-%d", n%13)
				n++
				if _, err := open[i].Finish(ctx, o); err != nil {
					t.Fatal(err)
				}
				open = slices.Delete(open, i, i+1)
				traces = append(traces, o.Sources[0].TraceID)
			default:
				if _, err := s.Refuse(ctx, request(n), Refusal{Reason: "no", Status: 403}); err != nil {
					t.Fatal(err)
				}
				n++
			}
			times = append(times, time.Now())
		}
		for _, c := range open {
			if _, err := c.Finish(ctx, outcome(n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := openStore(t, opt)
	run(s, 120)
	image := crashImage(t, s) // no clean close: the index is rebuilt from the log
	s.Close()
	opt.Dir = image
	s = openStore(t, opt)
	defer s.Close()
	run(s, 120)

	var all []Entry
	for seq := uint64(1); seq <= s.Head().Seq; seq++ {
		e, err := s.Get(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	check := func(q Query) {
		t.Helper()
		var want []uint64
		for _, e := range all {
			if q.matches(&e.Record, nil) {
				want = append(want, e.Seq)
			}
		}
		if q.Desc {
			slices.Reverse(want)
		}
		var got []uint64
		for pages := 0; ; pages++ {
			p, err := s.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, seqs(p)...)
			if p.Next == "" || pages > len(all) {
				break
			}
			q.Cursor = p.Next
		}
		if !slices.Equal(got, want) {
			t.Errorf("%+v:\n got %v\nwant %v", q, got, want)
		}
	}
	for i := range 300 {
		q := Query{Desc: rng.IntN(2) == 0, Limit: 1 + rng.IntN(9)}
		switch i % 5 {
		case 0:
			q.Organisation = fmt.Sprintf("org%d", rng.IntN(3))
		case 1:
			q.Service = fmt.Sprintf("svc%d", rng.IntN(2))
		case 2:
			q.TraceID = traces[rng.IntN(len(traces))]
		case 3:
			q.Organisation, q.Service = fmt.Sprintf("org%d", rng.IntN(3)), fmt.Sprintf("svc%d", rng.IntN(2))
		}
		if rng.IntN(3) == 0 {
			q.From = times[rng.IntN(len(times))]
		}
		if rng.IntN(3) == 0 {
			q.To = times[rng.IntN(len(times))]
		}
		if rng.IntN(4) == 0 {
			q.Kinds = []Kind{[]Kind{KindOutcome, KindRequest}[rng.IntN(2)]}
		}
		check(q)
	}
	// Every outcome is found from its request.
	for _, e := range all {
		if e.Record.Kind != KindOutcome {
			continue
		}
		o, ok, err := s.Outcome(ctx, e.Record.Request)
		if err != nil || !ok || o.Seq != e.Seq {
			t.Fatalf("outcome of %d: %d %v %v, want %d", e.Record.Request, o.Seq, ok, err, e.Seq)
		}
	}
}
