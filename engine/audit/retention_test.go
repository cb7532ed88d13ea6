package audit

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPruneKeepsTheChainVerifiable(t *testing.T) {
	dir := t.TempDir()
	opt := testOptions(dir)
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}} // svc1: forever
	s := openStore(t, opt)
	ctx := context.Background()
	for i := range 10 { // call i: seqs 2i+1, 2i+2; svc(i%2)
		call(t, s, i)
	}
	rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Call 0 (seqs 1, 2) leads the chain: deleted under an anchor at 3.
	// Calls 2, 4, 6, 8 sit after kept records: redacted.
	if rep.Deleted != 2 || rep.Redacted != 8 || rep.Anchor == nil || rep.Anchor.Seq != 3 {
		t.Fatalf("prune: %+v", rep)
	}
	v := verify(t, s)
	if !v.OK() || !v.Anchored || v.First != 3 || v.Last != 20 || v.Redacted != 8 {
		t.Fatalf("verify after prune: %+v %v", v, v.Problem)
	}
	if _, err := s.Get(ctx, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("pruned record: %v", err)
	}
	if e, err := s.Get(ctx, 5); err != nil || !e.Redacted || e.Raw != nil || e.Record.Service != "svc0" {
		t.Errorf("redacted record: %+v %v", e, err)
	}
	if p, _ := s.Query(ctx, Query{Service: "svc0"}); len(p.Entries) != 0 {
		t.Errorf("expired records still found: %v", seqs(p))
	}
	if p, _ := s.Query(ctx, Query{Subject: request(0).Subject}); len(seqs(p)) != 1 || seqs(p)[0] != 11 {
		t.Errorf("subject index after prune finds %v, want only call 5's request (11)", seqs(p))
	}
	if p, _ := s.Query(ctx, Query{Service: "svc1"}); len(p.Entries) != 10 {
		t.Errorf("kept records: %v", seqs(p))
	}
	if _, err := s.Proof(ctx, 5); err != nil {
		t.Errorf("proof through a redacted record: %v", err)
	}

	// The chain goes on, survives a reopen, and a second prune is a no-op.
	call(t, s, 11)
	s.Close()
	s = openStore(t, opt)
	defer s.Close()
	call(t, s, 13)
	if v := verify(t, s); !v.OK() || v.Last != 24 {
		t.Fatalf("verify after reopen: %+v %v", v, v.Problem)
	}
	if rep, err := s.Prune(ctx, time.Now()); err != nil || rep.Deleted+rep.Redacted != 0 {
		t.Fatalf("second prune: %+v %v", rep, err)
	}

	// A forged anchor is caught.
	a := rawGet(t, s, anchorKey)
	a[len(a)-1] ^= 1
	rawSet(t, s, anchorKey, a)
	if v := verify(t, s); v.Problem == nil || v.Problem.Kind != BadSignature {
		t.Fatalf("forged anchor: %+v", v)
	}
	if _, err := s.Prune(ctx, time.Now()); err == nil {
		t.Fatal("prune ran over a chain that does not verify")
	}
}

func TestPruneEverything(t *testing.T) {
	dir := t.TempDir()
	opt := testOptions(dir)
	opt.Default.Retention = time.Hour
	s := openStore(t, opt)
	ctx := context.Background()
	for i := range 4 {
		call(t, s, i)
	}
	head := s.Head()
	seven := rawGet(t, s, seqKey(pRecord, 7))
	rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour))
	if err != nil || rep.Deleted != 8 || rep.Anchor.Seq != 9 || rep.Anchor.Prev != head.Hash {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	// An interrupted prune leaves records below the anchor: ignored by
	// Verify and by the head recovery, removed by the next Prune.
	rawSet(t, s, seqKey(pRecord, 7), seven)
	if v := verify(t, s); !v.OK() || v.Records != 0 {
		t.Fatalf("verify with a leftover: %+v %v", v, v.Problem)
	}
	s.Close()
	s = openStore(t, opt)
	defer s.Close()
	if rep, err := s.Prune(ctx, time.Now()); err != nil || rep.Deleted != 1 || rep.Anchor != nil {
		t.Fatalf("prune of a leftover: %+v %v", rep, err)
	}
	if _, err := s.Get(ctx, 7); !errors.Is(err, ErrNotFound) {
		t.Fatalf("leftover still there: %v", err)
	}
	if s.Head() != head {
		t.Fatalf("head after pruning everything and reopening: %+v, want %+v", s.Head(), head)
	}
	if rq, _ := call(t, s, 5); rq.Seq != 9 {
		t.Fatalf("continued at %d", rq.Seq)
	}
	if v := verify(t, s); !v.OK() || v.First != 9 || v.Records != 2 {
		t.Fatalf("verify: %+v %v", v, v.Problem)
	}
}

func TestExportProvesItself(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for i := range 10 {
		call(t, s, i)
	}
	var all bytes.Buffer
	er, err := s.Export(ctx, &all, ExportOptions{})
	if err != nil || er.Records != 20 || !er.Covered {
		t.Fatalf("export: %+v %v", er, err)
	}
	v, err := VerifyExport(ctx, bytes.NewReader(all.Bytes()), testPub)
	if err != nil || !v.OK() || v.Records != 20 || v.Signed != 20 {
		t.Fatalf("verify export: %+v %v", v, err)
	}

	// A slice is covered up to the next checkpoint by digest-only links.
	var part bytes.Buffer
	er, err = s.Export(ctx, &part, ExportOptions{From: 5, To: 9})
	if err != nil || er.Records != 5 || er.Links != 3 || !er.Covered {
		t.Fatalf("partial export: %+v %v", er, err)
	}
	v, err = VerifyExport(ctx, bytes.NewReader(part.Bytes()), testPub)
	if err != nil || !v.OK() || v.First != 5 || v.Signed != 12 {
		t.Fatalf("verify partial export: %+v %v", v, err)
	}

	// Editing an exported record is caught.
	lines := strings.Split(all.String(), "\n")
	lines[6] = strings.Replace(lines[6], `"app":"app"`, `"app":"apq"`, 1)
	v, err = VerifyExport(ctx, strings.NewReader(strings.Join(lines, "\n")), testPub)
	if err != nil || v.Problem == nil {
		t.Fatalf("edited export verified: %+v %v", v, err)
	}
	// Dropping one is caught too.
	lines = strings.Split(all.String(), "\n")
	lines = append(lines[:3], lines[4:]...)
	v, _ = VerifyExport(ctx, strings.NewReader(strings.Join(lines, "\n")), testPub)
	if v.Problem == nil {
		t.Fatal("export with a line dropped verified")
	}
}

func TestBackupRestore(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for i := range 10 {
		call(t, s, i)
	}
	var buf bytes.Buffer
	if err := s.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if err := Restore(ctx, dir, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	r := openStore(t, testOptions(dir))
	defer r.Close()
	if r.Head() != s.Head() {
		t.Fatalf("restored head %+v, want %+v", r.Head(), s.Head())
	}
	if v := verify(t, r); !v.OK() || v.Records != 20 || v.Signed != 20 {
		t.Fatalf("verify restored: %+v %v", v, v.Problem)
	}
	if p, _ := r.Query(ctx, Query{TraceID: "in-3"}); len(p.Entries) != 2 {
		t.Errorf("indexes not restored: %v", seqs(p))
	}
	if rq, _ := call(t, r, 20); rq.Seq != 21 {
		t.Errorf("restored store continued at %d", rq.Seq)
	}
	if err := Restore(ctx, dir, bytes.NewReader(buf.Bytes())); err == nil {
		t.Error("restore over an existing store")
	}
}
