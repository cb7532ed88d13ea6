package audit

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMigrateBadgerStore opens a store written by the Badger version of
// this package (testdata/badger-v1: 13 calls and a refusal, a prune that
// deleted 2 records under an anchor and redacted 8, bodies stored for
// svc0; its head and Verify report in testdata/badger-v1.json): every
// entry, checkpoint and the anchor come across byte for byte, so the chain
// and its signatures verify exactly as before, the index is rebuilt, the
// Badger files are kept aside, and the store continues the chain.
func TestMigrateBadgerStore(t *testing.T) {
	var want struct {
		Head       Receipt    `json:"head"`
		Report     Report     `json:"report"`
		Checkpoint Checkpoint `json:"checkpoint"`
	}
	b, err := os.ReadFile("testdata/badger-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyTree(t, "testdata/badger-v1", dir)
	opt := testOptions(dir)
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour, StoreBodies: true}}
	s := openStore(t, opt)
	defer s.Close()
	if s.Head() != want.Head {
		t.Fatalf("head %+v, want %+v", s.Head(), want.Head)
	}
	if ck, ok := s.LastCheckpoint(); !ok || ck.Seq != want.Checkpoint.Seq || ck.Head != want.Checkpoint.Head {
		t.Fatalf("last checkpoint %+v", ck)
	}
	rep := verify(t, s)
	if rep != want.Report {
		t.Fatalf("verify after migration:\n got %+v\nwant %+v", rep, want.Report)
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "badger-migrated-*"))
	if len(aside) != 1 {
		t.Fatalf("Badger files not kept aside: %v", aside)
	}
	if _, err := os.Stat(filepath.Join(aside[0], "MANIFEST")); err != nil {
		t.Errorf("the Badger MANIFEST was not moved aside: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err == nil {
		t.Error("a MANIFEST is still in the store directory")
	}
	checkPrivate(t, dir) // the copies, and the Badger files moved aside
	ctx := context.Background()
	// The index is rebuilt: trace, organisation, subject and the outcome link.
	p, err := s.Query(ctx, Query{TraceID: "in-11"})
	if err != nil || len(p.Entries) != 2 {
		t.Fatalf("query by trace after migration: %v %v", seqs(p), err)
	}
	if o, ok, err := s.Outcome(ctx, p.Entries[0].Seq); err != nil || !ok || o.Seq != p.Entries[1].Seq {
		t.Fatalf("outcome link after migration: %+v %v %v", o, ok, err)
	}
	all, err := s.Query(ctx, Query{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Entries) != int(want.Report.Records-want.Report.Redacted) {
		t.Errorf("%d readable records, want %d", len(all.Entries), want.Report.Records-want.Report.Redacted)
	}
	for _, e := range all.Entries {
		if e.Record.RequestBody != nil {
			if _, err := OpenBody(opt.BodyKeys, &e.Record, RequestBodyPart); err != nil {
				t.Errorf("stored body of %d: %v", e.Seq, err)
			}
		}
	}
	if e, err := s.Get(ctx, 5); err != nil || !e.Redacted {
		t.Errorf("a redacted (format 2) entry: %+v %v", e, err)
	}
	// The chain goes on, verifies, and survives a reopen (no second migration).
	rq, _ := call(t, s, 40)
	if rq.Seq != want.Head.Seq+1 {
		t.Fatalf("continued at %d", rq.Seq)
	}
	s.Close()
	s = openStore(t, opt)
	if v := verify(t, s); !v.OK() || v.Last != want.Head.Seq+2 || v.First != want.Report.First {
		t.Fatalf("verify after reopen: %+v %v", v, v.Problem)
	}
	if p, _ := s.Query(ctx, Query{Subject: request(40).Subject, Kinds: []Kind{KindRequest}}); !slices.Contains(seqs(p), rq.Seq) {
		t.Errorf("subject query after reopen: %v", seqs(p))
	}
	if got, _ := filepath.Glob(filepath.Join(dir, "badger-migrated-*")); len(got) != 1 {
		t.Errorf("migrated twice: %v", got)
	}
}

// TestMigrationInterrupted: a migration cut after the Badger files moved
// aside finishes on the next Open; one cut before starts again.
func TestMigrationInterrupted(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, "testdata/badger-v1", dir)
	// A leftover of a migration cut before the move: started again.
	os.MkdirAll(filepath.Join(dir, migrateTmp, "log"), 0o755)
	os.WriteFile(filepath.Join(dir, migrateTmp, "log", "00000000000000000001.seg"), []byte("junk"), 0o644)
	opt := testOptions(dir)
	opt.Signer = nil
	s := openStore(t, opt)
	if v := verify(t, s); !v.OK() || v.Last != 27 {
		t.Fatalf("verify: %+v %v", v, v.Problem)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, migrateTmp)); err == nil {
		t.Error("migrate.tmp left behind")
	}
	// A migration cut after the Badger files moved aside: finished.
	os.Mkdir(filepath.Join(dir, migrateTmp), 0o755)
	for _, n := range []string{"log", "checkpoints", "anchor"} {
		if err := os.Rename(filepath.Join(dir, n), filepath.Join(dir, migrateTmp, n)); err != nil {
			t.Fatal(err)
		}
	}
	s = openStore(t, opt)
	if v := verify(t, s); !v.OK() || v.Last != 27 {
		t.Fatalf("verify after finishing: %+v %v", v, v.Problem)
	}
	s.Close()
	// A Badger store beside a segment log is refused, not merged.
	dir2 := t.TempDir()
	copyTree(t, "testdata/badger-v1", dir2)
	os.Mkdir(filepath.Join(dir2, "log"), 0o755)
	if _, err := Open(testOptions(dir2)); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("Open of a Badger store beside a log: %v", err)
	}
}
