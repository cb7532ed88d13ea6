package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func seqs(p Page) []uint64 {
	var out []uint64
	for _, e := range p.Entries {
		out = append(out, e.Seq)
	}
	return out
}

func TestQuery(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	// 12 calls: request seq 2i+1, outcome 2i+2; org i%3, service svc(i%2), subject i%5.
	var mid time.Time
	for i := range 12 {
		call(t, s, i)
		if i == 5 {
			time.Sleep(5 * time.Millisecond)
			mid = time.Now()
			time.Sleep(5 * time.Millisecond)
		}
	}
	if _, err := s.Refuse(ctx, Request{Organisation: "org0", Service: "svc0", Subject: request(0).Subject, TraceOut: "refused-1"},
		Refusal{Reason: "purpose not granted", Status: 403}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		q    Query
		want []uint64
	}{
		{"trace in", Query{TraceID: "in-4"}, []uint64{9, 10}},
		{"source trace", Query{TraceID: "src-4"}, []uint64{10}},
		{"organisation", Query{Organisation: "org1"}, []uint64{3, 4, 9, 10, 15, 16, 21, 22}},
		{"organisation and service", Query{Organisation: "org1", Service: "svc1"}, []uint64{3, 4, 15, 16}},
		{"service, requests only", Query{Service: "svc0", Kinds: []Kind{KindRequest}}, []uint64{1, 5, 9, 13, 17, 21}},
		{"subject", Query{Subject: request(0).Subject}, []uint64{1, 11, 21, 25}},
		{"time range", Query{Organisation: "org0", From: mid}, []uint64{13, 14, 19, 20, 25}},
		{"time range until", Query{Organisation: "org0", To: mid}, []uint64{1, 2, 7, 8}},
		{"newest first", Query{Organisation: "org2", Desc: true, Limit: 3}, []uint64{24, 23, 18}},
		{"nothing", Query{Organisation: "nobody"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.Query(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := seqs(p); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("paging", func(t *testing.T) {
		for _, desc := range []bool{false, true} {
			var all []uint64
			q := Query{Service: "svc1", Limit: 4, Desc: desc}
			for pages := 0; ; pages++ {
				p, err := s.Query(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Entries) > 4 || pages > 5 {
					t.Fatalf("page of %d", len(p.Entries))
				}
				all = append(all, seqs(p)...)
				if p.Next == "" {
					break
				}
				q.Cursor = p.Next
			}
			want := []uint64{3, 4, 7, 8, 11, 12, 15, 16, 19, 20, 23, 24}
			if desc {
				slices.Reverse(want)
			}
			if !slices.Equal(all, want) {
				t.Errorf("desc=%v: paged %v, want %v", desc, all, want)
			}
		}
	})

	t.Run("consumer sees only its own calls", func(t *testing.T) {
		p, err := s.ConsumerQuery(ctx, "org2", Query{Organisation: "org1", TraceID: "in-4"})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Entries) != 0 {
			t.Errorf("org2 read org1's records: %v", seqs(p))
		}
		p, _ = s.ConsumerQuery(ctx, "org1", Query{TraceID: "in-4"})
		if !slices.Equal(seqs(p), []uint64{9, 10}) {
			t.Errorf("org1's own call: %v", seqs(p))
		}
		if _, err := s.ConsumerQuery(ctx, "", Query{}); err == nil {
			t.Error("a consumer query without organisation")
		}
	})

	t.Run("citizen view", func(t *testing.T) {
		cp, err := s.Consultations(ctx, request(0).Subject, Query{})
		if err != nil {
			t.Fatal(err)
		}
		// Calls 10, 5 and 0, newest first; the refused call is left out.
		if len(cp.Consultations) != 3 {
			t.Fatalf("consultations: %+v", cp)
		}
		c := cp.Consultations[0]
		if c.Seq != 21 || c.Organisation != "org1" || c.Service != "svc0" || c.Purpose != "tax-check" ||
			c.Status != 200 || c.LegalBasis == "" || c.Time.IsZero() {
			t.Errorf("consultation: %+v", c)
		}
		if cp.Consultations[2].Seq != 1 {
			t.Errorf("order: %+v", cp.Consultations)
		}
	})
}

// TestConsultationsIndirect: a call about an enterprise that looked up one
// of its directors in the person register names the director on that
// source call. The director's citizen view lists it, with the purpose of
// the call and the source call that consulted them; a call about the
// director themselves is listed once; the director's identifier is stored
// only as a pseudonym (unless the service's policy keeps it in clear).
func TestConsultationsIndirect(t *testing.T) {
	opt := testOptions(t.TempDir())
	opt.Services = map[string]Policy{"clear": {SubjectInClear: true}}
	s := openStore(t, opt)
	defer s.Close()
	ctx := context.Background()
	const director, other = "85073003328", "79120512345"
	run := func(service, subject, purpose string, sources ...SourceCall) (Receipt, Receipt) {
		t.Helper()
		c, err := s.Begin(ctx, Request{Organisation: "org-a", Service: service, Subject: subject, Purpose: purpose, LegalBasis: "law"})
		if err != nil {
			t.Fatal(err)
		}
		rc, err := c.Finish(ctx, Outcome{Status: 200, Response: []byte(`{}`), Sources: sources})
		if err != nil {
			t.Fatal(err)
		}
		return c.Receipt(), rc
	}
	ent := SourceCall{Source: "enterpriseRegister", Operation: "getEnterprise", Status: 200}
	person := func(subject string) SourceCall {
		return SourceCall{Source: "personRegister", Operation: "getPerson", Status: 200, Attempts: 1, Subject: subject}
	}
	unreached := SourceCall{Source: "personRegister", Operation: "getPerson", Subject: director}                                           // an open circuit: no attempt
	profile, profileOut := run("enterpriseProfile", "0456789123", "supplierCheck", ent, person(director), person(other), person(director)) // the last: a retry
	direct, _ := run("person", director, "taxCheck", person(director))
	run("enterpriseProfile", "0411111111", "supplierCheck", ent, person(other))
	_, clearOut := run("clear", "0422222222", "publicProcurement", ent, person(director))
	run("enterpriseProfile", "0433333333", "supplierCheck", ent, unreached)

	cp, err := s.Consultations(ctx, director, Query{})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, 0, len(cp.Consultations))
	for _, c := range cp.Consultations {
		got = append(got, fmt.Sprintf("%d/%d %s %s %d %v", c.Seq, c.Request, c.Service, c.Purpose, c.Status, c.Through))
	}
	// An indirect consultation is placed by its outcome record (Seq, Time)
	// and names the call's request record; the unreached call is left out.
	want := []string{
		fmt.Sprintf("%d/%d clear publicProcurement 200 [personRegister.getPerson]", clearOut.Seq, clearOut.Seq-1),
		fmt.Sprintf("%d/0 person taxCheck 200 []", direct.Seq),
		fmt.Sprintf("%d/%d enterpriseProfile supplierCheck 200 [personRegister.getPerson]", profileOut.Seq, profile.Seq),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("director's consultations:\n got %q\nwant %q", got, want)
	}
	if c := cp.Consultations[2]; c.LegalBasis != "law" || c.Organisation != "org-a" || c.Time.After(cp.Consultations[1].Time) {
		t.Errorf("indirect consultation: %+v", c)
	}

	// The records: the director is in the outcome as a pseudonym, found
	// by a subject query, in clear only under the "clear" policy.
	e, err := s.Get(ctx, profileOut.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.Raw), director) || e.Record.Sources[1].Subject != Pseudonym(subjectKey, director) ||
		e.Record.Sources[0].Subject != "" || e.Record.V != Version {
		t.Errorf("outcome record: %s", e.Raw)
	}
	p, err := s.Query(ctx, Query{Subject: director, Kinds: []Kind{KindOutcome}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 4 { // the unreached call's too: the record names them
		t.Errorf("outcomes naming the director: %v", seqs(p))
	}
	for _, x := range p.Entries {
		if x.Record.Service == "clear" && x.Record.Sources[1].SubjectClear != director {
			t.Errorf("clear policy: %s", x.Raw)
		}
	}
	if cp, _ := s.Consultations(ctx, other, Query{}); len(cp.Consultations) != 2 {
		t.Errorf("the other director's consultations: %+v", cp.Consultations)
	}
}

// TestConsultationsOverlapping: an enterprise profile (request 1) looks up
// the director while a direct call about the director (request 2, outcome
// 3) finishes first; the profile's outcome is 4. The citizen view is newest
// first by the Seq and Time it shows, and a time window lists exactly the
// consultations whose Time it holds (an indirect one is placed by its
// outcome record, which names the subject).
func TestConsultationsOverlapping(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const director = "85073003328"
	a, err := s.Begin(ctx, Request{Organisation: "org-a", Service: "enterpriseProfile", Subject: "0456789123", Purpose: "supplierCheck"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Begin(ctx, Request{Organisation: "org-b", Service: "person", Subject: director, Purpose: "taxCheck"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finish(ctx, Outcome{Status: 200}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // distinct record times
	if _, err := a.Finish(ctx, Outcome{Status: 200, Sources: []SourceCall{
		{Source: "personRegister", Operation: "getPerson", Status: 200, Attempts: 1, Subject: director}}}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Consultations(ctx, director, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Consultations) != 2 || all.Consultations[0].Request != a.Receipt().Seq || all.Consultations[1].Seq != b.Receipt().Seq {
		t.Fatalf("consultations: %+v", all.Consultations)
	}
	for i := 1; i < len(all.Consultations); i++ {
		p, c := all.Consultations[i-1], all.Consultations[i]
		if p.Time.Before(c.Time) || p.Seq < c.Seq {
			t.Errorf("not newest first: seq %d %v, then seq %d %v", p.Seq, p.Time, c.Seq, c.Time)
		}
	}
	// Windows cut between and around the two: each lists exactly the
	// consultations whose Time it holds.
	t0, t1 := all.Consultations[1].Time, all.Consultations[0].Time
	for _, w := range []Query{{From: t0, To: t1}, {From: t1}, {To: t1.Add(time.Nanosecond)}, {From: t0.Add(time.Nanosecond)}} {
		got, err := s.Consultations(ctx, director, w)
		if err != nil {
			t.Fatal(err)
		}
		var want, have []uint64
		for _, c := range all.Consultations {
			if !c.Time.Before(w.From) && (w.To.IsZero() || c.Time.Before(w.To)) {
				want = append(want, c.Seq)
			}
		}
		for _, c := range got.Consultations {
			have = append(have, c.Seq)
		}
		if !slices.Equal(have, want) {
			t.Errorf("window [%v, %v): %v, want %v", w.From, w.To, have, want)
		}
	}
}

// TestEntryJSONIsStoredBytes: in JSON an entry's "record" is the record as
// stored, so a reader of the admin or consumer API can check it against
// the chain (hash = SHA-256(prev ‖ SHA-256(record))) without this package;
// it reads back into the same Entry, and a redacted entry keeps what is
// left of it.
func TestEntryJSONIsStoredBytes(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	req, out := call(t, s, 1)
	for _, seq := range []uint64{req.Seq, out.Seq} {
		e, err := s.Get(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var wire struct {
			Prev, Hash string
			Record     json.RawMessage
		}
		if err := json.Unmarshal(b, &wire); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(wire.Record, e.Raw) {
			t.Fatalf("record %d on the wire:\n%s\nstored:\n%s", seq, wire.Record, e.Raw)
		}
		prev, _ := hex.DecodeString(wire.Prev)
		d := sha256.Sum256(wire.Record)
		h := sha256.Sum256(append(prev, d[:]...))
		if hex.EncodeToString(h[:]) != wire.Hash {
			t.Errorf("record %d: SHA-256(prev ‖ SHA-256(record)) = %x, hash %s", seq, h, wire.Hash)
		}
		var back Entry
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.Seq != e.Seq || back.Hash != e.Hash || !bytes.Equal(back.Raw, e.Raw) || !bytes.Equal(mustEncode(t, &back.Record), mustEncode(t, &e.Record)) {
			t.Errorf("record %d does not read back: %+v", seq, back)
		}
	}
	red := Entry{Seq: 7, Redacted: true, Record: Record{Seq: 7, Service: "svc0", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	b, err := json.Marshal(red)
	if err != nil {
		t.Fatal(err)
	}
	var back Entry
	if err := json.Unmarshal(b, &back); err != nil || !back.Redacted || back.Raw != nil || back.Record.Service != "svc0" || !back.Record.Time.Equal(red.Record.Time) {
		t.Errorf("redacted entry %s read back as %+v (%v)", b, back, err)
	}
}

// TestEntryJSONEscapes: "record" on the wire stays byte-identical to
// the stored bytes for strings encoding/json escapes (HTML characters,
// U+2028, control characters, non-ASCII), through json.Marshal (fiber's
// c.JSON) and an Encoder without HTML escaping.
func TestEntryJSONEscapes(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	r := request(0)
	r.Purpose = "a<b>&c\u2028d\u2029 é \x01 \"q\" \\ \xff"
	r.EndUser = "<script>&amp;</script>"
	c, err := s.Begin(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Finish(ctx, Outcome{Status: 500, Problem: "x<&>y"}); err != nil {
		t.Fatal(err)
	}
	p, err := s.Query(ctx, Query{})
	if err != nil || len(p.Entries) != 2 {
		t.Fatalf("%v %v", p, err)
	}
	for _, escapeHTML := range []bool{true, false} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(escapeHTML)
		if err := enc.Encode(p); err != nil {
			t.Fatal(err)
		}
		var wire struct {
			Entries []struct {
				Record json.RawMessage `json:"record"`
			} `json:"entries"`
		}
		if err := json.Unmarshal(buf.Bytes(), &wire); err != nil {
			t.Fatal(err)
		}
		for i, e := range wire.Entries {
			if !bytes.Equal(e.Record, p.Entries[i].Raw) {
				t.Errorf("escapeHTML=%v: record %d on the wire\n%s\nstored\n%s", escapeHTML, p.Entries[i].Seq, e.Record, p.Entries[i].Raw)
			}
		}
	}
}

// TestPageOfANewerVersion: a page holding one record of a version this
// client does not know (a newer server's) still reads: that entry keeps its
// bytes, the others decode (a reviewer found the whole page failed, so
// fsb audit query -admin printed nothing).
func TestPageOfANewerVersion(t *testing.T) {
	body := `{"entries":[{"seq":1,"prev":"` + zeroHex + `","hash":"` + zeroHex + `","record":{"v":3,"seq":1,"time":"2026-01-01T00:00:00.000000000Z","kind":"request","call":"c","org":"o","newField":1}}]}`
	var p Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Errorf("a page with one record of a newer version does not decode at all: %v", err)
	}
}

const zeroHex = "0000000000000000000000000000000000000000000000000000000000000000"
