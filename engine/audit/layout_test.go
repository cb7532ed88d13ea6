package audit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// withOutcomeGap sets the gap new stores record in their layout marker.
func withOutcomeGap(t *testing.T, gap uint64) {
	t.Helper()
	old := defaultOutcomeGap
	defaultOutcomeGap = gap
	t.Cleanup(func() { defaultOutcomeGap = old })
}

// TestQueryIndexLayouts checks every query against a scan of all records
// on a store written first in layout 1 (every record indexed under all its
// terms, no marker: stores written before layout 2), then in layout 2 with
// a small gap, calls interleaved at random so that outcomes land both
// within and beyond the gap of their requests, and across page and time
// boundaries.
func TestQueryIndexLayouts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opt := testOptions(dir)
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

	withOutcomeGap(t, 0) // layout 1: every record indexed under all its terms
	s := openStore(t, opt)
	run(s, 60)
	rawDelete(t, s, layoutKey)
	s.Close()
	ro := opt
	ro.Signer = nil // a read-only open of a layout 1 store leaves it so
	s = openStore(t, ro)
	if s.gap != 0 {
		t.Fatalf("read-only layout 1 store: gap %d", s.gap)
	}
	if p, err := s.Query(ctx, Query{TraceID: traces[0]}); err != nil || len(p.Entries) == 0 {
		t.Fatalf("read-only query: %v %v", p, err)
	}
	s.Close()
	defaultOutcomeGap = 3
	s = openStore(t, opt)
	defer s.Close()
	if s.gap != 3 {
		t.Fatalf("layout gap %d", s.gap)
	}
	run(s, 140)

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
		switch i % 4 {
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
}

// TestPruneKeepsOutcomesFindable: an outcome found through its request's
// index keys gets keys of its own when retention removes the request's
// (the request expired, the outcome, written later, not yet).
func TestPruneKeepsOutcomesFindable(t *testing.T) {
	ctx := context.Background()
	opt := testOptions(t.TempDir())
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}} // svc1: forever
	s := openStore(t, opt)
	defer s.Close()
	a, err := s.Begin(ctx, request(0)) // seq 1, svc0: deleted under the anchor
	if err != nil {
		t.Fatal(err)
	}
	call(t, s, 1)                      // seqs 2, 3, svc1: kept
	c, err := s.Begin(ctx, request(2)) // seq 4, svc0: redacted
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	mark := time.Now()
	time.Sleep(5 * time.Millisecond)
	if _, err := a.Finish(ctx, outcome(0)); err != nil { // seq 5
		t.Fatal(err)
	}
	if _, err := c.Finish(ctx, outcome(2)); err != nil { // seq 6
		t.Fatal(err)
	}
	if _, err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Prune(ctx, mark.Add(time.Hour))
	if err != nil || rep.Deleted != 1 || rep.Redacted != 1 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	for _, tc := range []struct {
		q    Query
		want []uint64
	}{
		{Query{Service: "svc0"}, []uint64{5, 6}},
		{Query{Organisation: "org0"}, []uint64{5}},
		{Query{Organisation: "org2", Desc: true}, []uint64{6}},
		{Query{TraceID: "in-2"}, []uint64{6}},
		{Query{TraceID: "out-0"}, []uint64{5}},
	} {
		p, err := s.Query(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqs(p), tc.want) {
			t.Errorf("%+v after prune: %v, want %v", tc.q, seqs(p), tc.want)
		}
	}
	if v := verify(t, s); !v.OK() {
		t.Fatalf("verify: %+v %v", v, v.Problem)
	}
	// Pruning the outcomes later removes the keys they were given.
	if rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour)); err != nil || rep.Deleted+rep.Redacted != 2 {
		t.Fatalf("second prune: %+v %v", rep, err)
	}
	if p, _ := s.Query(ctx, Query{Service: "svc0"}); len(p.Entries) != 0 {
		t.Errorf("pruned outcomes still found: %v", seqs(p))
	}
}

// TestPruneDuringACall: a call whose request is pruned before it finishes
// still has its outcome found by organisation, service and trace.
func TestPruneDuringACall(t *testing.T) {
	ctx := context.Background()
	opt := testOptions(t.TempDir())
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}}
	s := openStore(t, opt)
	defer s.Close()
	call(t, s, 1)                      // seqs 1, 2, svc1: kept
	c, err := s.Begin(ctx, request(0)) // seq 3, svc0: redacted while the call runs
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour)); err != nil || rep.Redacted != 1 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	rc, err := c.Finish(ctx, outcome(0)) // seq 4
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []Query{{Service: "svc0"}, {Organisation: "org0"}, {TraceID: "in-0"}, {TraceID: "out-0", Desc: true}} {
		p, err := s.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqs(p), []uint64{rc.Seq}) {
			t.Errorf("%+v: %v, want the outcome %d", q, seqs(p), rc.Seq)
		}
	}
}
