package gateway_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/openfsb/fsb/engine/audit"
)

// TestAuditTrail: every 2xx answer carries a receipt naming its outcome
// record, which links to its request record; refusals are recorded; the
// chain verifies; the consumer reads its records and a proof through its
// own API.
func TestAuditTrail(t *testing.T) {
	s := newSecure(t, secureOpt{audit: true})
	ctx := context.Background()
	c1 := s.client(s.cert1)
	var receipts []audit.Receipt
	var traces []string
	for i := range 5 {
		tr := fmt.Sprintf("consumer-trace-%d", i)
		a := s.person(c1, headerTrace, tr)
		if a.status != 200 {
			t.Fatalf("call %d: %d %s", i, a.status, a.body)
		}
		rc, err := audit.ParseReceipt(a.header.Get(headerAuditReceipt))
		if err != nil {
			t.Fatalf("receipt %q: %v", a.header.Get(headerAuditReceipt), err)
		}
		receipts = append(receipts, rc)
		traces = append(traces, tr)
	}
	if a := s.person(c1, headerPurpose, "marketing"); a.status != 403 || a.header.Get(headerAuditReceipt) != "" {
		t.Fatalf("refused call: %d, receipt %q", a.status, a.header.Get(headerAuditReceipt))
	}

	for i, rc := range receipts {
		out, err := s.store.Get(ctx, rc.Seq)
		s.must(err)
		if out.Hash != rc.Hash || out.Record.Kind != audit.KindOutcome || out.Record.Status != 200 {
			t.Fatalf("receipt %d names %+v", i, out.Record)
		}
		if !slices.Equal(out.Record.Released, []string{"name", "address.city"}) {
			t.Errorf("released %v", out.Record.Released)
		}
		if len(out.Record.Sources) != 1 || out.Record.Sources[0].Digest != audit.Digest([]byte(personDoc)) || out.Record.Sources[0].Status != 200 || out.Record.Sources[0].TraceID == "" {
			t.Errorf("sources %+v", out.Record.Sources)
		}
		req, err := s.store.Get(ctx, out.Record.Request)
		s.must(err)
		r := req.Record
		if r.Kind != audit.KindRequest || r.Organisation != testOrg || r.Application != s.app1 || r.Purpose != purpose ||
			r.EndUser != endUser || r.Grant != s.personGrant || r.Service != "person" || r.ServiceVersion != "v1" ||
			r.TraceIn != traces[i] || r.ClientIP != "127.0.0.1" || r.LegalBasis != "law: Law of 8 August 1983, art. 5" ||
			r.Environment != "" { // production: no env
			t.Errorf("request record %+v", r)
		}
		if r.Subject != audit.Pseudonym(subjectKey, "85010112345") || r.SubjectClear != "" {
			t.Errorf("subject %q / %q", r.Subject, r.SubjectClear)
		}
	}
	page, err := s.store.Query(ctx, audit.Query{Kinds: []audit.Kind{audit.KindRefused}})
	s.must(err)
	if len(page.Entries) != 1 || page.Entries[0].Record.Status != 403 || page.Entries[0].Record.Problem != typeMissingPerm {
		t.Fatalf("refused records: %+v", page.Entries)
	}
	// A subject lookup and the citizen view find the calls, with purpose.
	cons, err := s.store.Consultations(ctx, "85010112345", audit.Query{})
	s.must(err)
	if len(cons.Consultations) != 5 || cons.Consultations[0].Purpose != purpose {
		t.Fatalf("consultations %+v", cons)
	}
	rep, err := audit.Verify(ctx, s.store, auditKey.Public().(ed25519.PublicKey))
	s.must(err)
	if !rep.OK() || rep.Records != 11 {
		t.Fatalf("verify: %+v", rep)
	}

	// The consumer's own API: its records by trace id, and a proof.
	a := s.call(c1, "GET", "/audit/v1/records?traceId="+traces[2], "")
	var got audit.Page
	if a.status != 200 || json.Unmarshal(a.body, &got) != nil || len(got.Entries) != 2 {
		t.Fatalf("consumer records: %d %s", a.status, a.body)
	}
	for _, e := range got.Entries { // the stored bytes, as the chain hashes them
		stored, err := s.store.Get(ctx, e.Seq)
		s.must(err)
		if !bytes.Equal(e.Raw, stored.Raw) || e.Hash != stored.Hash || e.Record.Service != "person" {
			t.Errorf("record %d through the consumer API:\n%s\nstored:\n%s", e.Seq, e.Raw, stored.Raw)
		}
	}
	a = s.call(c1, "GET", fmt.Sprintf("/audit/v1/records/%d/proof", receipts[2].Seq), "")
	var p audit.Proof
	if a.status != 200 || json.Unmarshal(a.body, &p) != nil {
		t.Fatalf("proof: %d %s", a.status, a.body)
	}
	if err := audit.VerifyProof(auditKey.Public().(ed25519.PublicKey), p); err != nil || p.Hash != receipts[2].Hash {
		t.Fatalf("proof does not verify: %v", err)
	}
	if a := s.call(c1, "GET", "/audit/v1/records?organisation="+otherOrg, ""); a.status != 400 {
		t.Errorf("organisation filter on the consumer API: %d", a.status)
	}
	if a := s.call(s.client(), "GET", "/audit/v1/records", ""); a.status != 401 {
		t.Errorf("anonymous audit read: %d", a.status)
	}
}

// TestAuditUnavailable: with the store closed, allowed and refused calls
// get serviceUnavailable and no source is reached.
func TestAuditUnavailable(t *testing.T) {
	s := newSecure(t, secureOpt{audit: true})
	if a := s.person(s.client(s.cert1)); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	hits := s.src.hits.Load()
	s.must(s.store.Close())
	for _, hdr := range [][]string{nil, {headerPurpose, "marketing"}} {
		a := s.person(s.client(s.cert1), hdr...)
		if a.status != 503 || a.problemType() != typeUnavailable || a.header.Get(headerAuditReceipt) != "" {
			t.Fatalf("with the store closed: %d %s", a.status, a.body)
		}
	}
	if n := s.src.hits.Load(); n != hits {
		t.Fatalf("the source was reached %d times with the audit store closed", n-hits)
	}
}
