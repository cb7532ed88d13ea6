package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// smallSegments makes segments roll every few records for one test.
func smallSegments(t *testing.T, size int64) {
	t.Helper()
	old := segmentSize
	segmentSize = size
	t.Cleanup(func() { segmentSize = old })
}

// TestManySegments: with segments rolling every few records the chain
// spans many files; reads go through the sidecars (and rebuild missing or
// stale ones), Verify and Export walk them all, a backup restores them,
// and Prune deletes whole segments before its anchor and rewrites the one
// the anchor falls in and those holding records to redact.
func TestManySegments(t *testing.T) {
	smallSegments(t, 4<<10)
	ctx := context.Background()
	dir := t.TempDir()
	opt := testOptions(dir)
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}} // svc1: forever
	s := openStore(t, opt)
	for i := range 40 {
		call(t, s, i)
	}
	segs := segFiles(t, dir)
	if len(segs) < 5 {
		t.Fatalf("only %d segments", len(segs))
	}
	check := func(s *Store, first, last uint64) {
		t.Helper()
		v := verify(t, s)
		if !v.OK() || v.First != first || v.Last != last {
			t.Fatalf("verify: %+v %v", v, v.Problem)
		}
		for q := first; q <= last; q++ {
			e, err := s.Get(ctx, q)
			if err != nil || e.Seq != q {
				t.Fatalf("get %d: %+v %v", q, e.Seq, err)
			}
		}
		var buf bytes.Buffer
		if _, err := s.Export(ctx, &buf, ExportOptions{}); err != nil {
			t.Fatal(err)
		}
		if r, err := VerifyExport(ctx, &buf, testPub); err != nil || !r.OK() || r.Last != last {
			t.Fatalf("export: %+v %v", r, err)
		}
	}
	check(s, 1, 80)
	s.Close()

	// Sidecars: a missing one and a stale one are rebuilt.
	sides, _ := filepath.Glob(filepath.Join(dir, "log", "*.idx"))
	if len(sides) != len(segs)-1 {
		t.Fatalf("%d sidecars for %d sealed segments", len(sides), len(segs)-1)
	}
	os.Remove(sides[0])
	os.WriteFile(sides[1], []byte("FSBAUDX1 stale"), 0o644)
	s = openStore(t, opt)
	check(s, 1, 80)

	// A backup brings back every segment.
	var bk bytes.Buffer
	if err := s.Backup(ctx, &bk); err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(t.TempDir(), "r")
	if err := Restore(ctx, restored, &bk); err != nil {
		t.Fatal(err)
	}
	r := openReadOnly(t, restored)
	check(r, 1, 80)

	// Prune: calls 0–9 of svc0 expire at the start (seqs 1, 2 only, call 1
	// is svc1), the other svc0 calls are redacted across the segments.
	rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Deleted != 2 || rep.Redacted != 38 || rep.Anchor == nil || rep.Anchor.Seq != 3 {
		t.Fatalf("prune: %+v", rep)
	}
	v := verify(t, s)
	if !v.OK() || v.First != 3 || v.Last != 80 || v.Redacted != 38 {
		t.Fatalf("verify after prune: %+v %v", v, v.Problem)
	}
	for _, seg := range segFiles(t, dir) {
		b, _ := os.ReadFile(seg)
		if bytes.Contains(b, []byte(`"service":"svc0"`)) {
			t.Errorf("%s still holds a redacted record's content", seg)
		}
	}
	if p, _ := s.Query(ctx, Query{Service: "svc1", Limit: 1000}); len(p.Entries) != 40 {
		t.Errorf("kept records: %d", len(p.Entries))
	}
	call(t, s, 41)
	s.Close()
	s = openStore(t, opt)
	if v := verify(t, s); !v.OK() || v.Last != 82 || v.Redacted != 38 {
		t.Fatalf("verify after reopen: %+v %v", v, v.Problem)
	}
	// Everything expires: every segment before the anchor goes.
	opt2 := opt
	opt2.Default.Retention = time.Hour
	s.Close()
	s = openStore(t, opt2)
	defer s.Close()
	if _, err := s.Checkpoint(ctx); err != nil && err.Error() != "audit: no records to checkpoint" {
		t.Fatal(err)
	}
	rep, err = s.Prune(ctx, time.Now().Add(2*time.Hour))
	if err != nil || rep.Anchor == nil || rep.Anchor.Seq != 83 {
		t.Fatalf("prune everything: %+v %v", rep, err)
	}
	if segs := segFiles(t, dir); len(segs) != 0 {
		t.Errorf("segments left: %v", segs)
	}
	if rq, _ := call(t, s, 50); rq.Seq != 83 {
		t.Fatalf("continued at %d", rq.Seq)
	}
	if v := verify(t, s); !v.OK() || v.First != 83 || v.Last != 84 {
		t.Fatalf("verify: %+v %v", v, v.Problem)
	}
}

// TestPruneUnderLoad prunes (rolling, rewriting and deleting segments)
// while writers append and readers query and read: no reader fails, every
// acknowledged record that retention keeps stays readable, the chain
// verifies.
func TestPruneUnderLoad(t *testing.T) {
	smallSegments(t, 8<<10)
	ctx := context.Background()
	opt := testOptions(t.TempDir())
	opt.CheckpointEvery = 16
	opt.Services = map[string]Policy{"svc0": {Retention: time.Millisecond}} // svc1: forever
	s := openStore(t, opt)
	defer s.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				call(t, s, i)
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				p, err := s.Query(ctx, Query{Service: "svc1", Desc: true, Limit: 20})
				if err != nil {
					t.Error(err)
					return
				}
				for _, e := range p.Entries {
					if _, err := s.Get(ctx, e.Seq); err != nil {
						t.Errorf("get %d: %v", e.Seq, err)
						return
					}
				}
			}
		})
	}
	var pruned PruneReport
	// Six prunes at least, and more until one found something: on a loaded
	// machine the writers may not have had a signed, expired record yet.
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; n < 6 || pruned.Deleted+pruned.Redacted == 0 && time.Now().Before(deadline); n++ {
		time.Sleep(20 * time.Millisecond)
		rep, err := s.Prune(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		pruned.Deleted += rep.Deleted
		pruned.Redacted += rep.Redacted
	}
	close(stop)
	wg.Wait()
	if pruned.Deleted+pruned.Redacted == 0 {
		t.Fatal("nothing pruned")
	}
	v := verify(t, s)
	if !v.OK() || v.Last != s.Head().Seq {
		t.Fatalf("verify: %+v %v", v, v.Problem)
	}
	t.Logf("%d records, %d deleted, %d redacted, %d segments", v.Last, pruned.Deleted, pruned.Redacted, len(segFiles(t, opt.Dir)))
}

// TestOpenRemovesRewriteLeftovers: the temporary copy a crash left in the
// middle of a prune's rewrite (or a sidecar's) is removed by the next
// writable Open, and left alone by a read-only one; the log is unchanged.
func TestOpenRemovesRewriteLeftovers(t *testing.T) {
	dir := t.TempDir()
	opt := testOptions(dir)
	fillStore(t, opt, 0, 3)
	logDir := filepath.Join(dir, "log")
	leftovers := []string{segPath(logDir, 1, ".seg.tmp"), segPath(logDir, 1, ".idx.tmp")}
	for _, p := range leftovers {
		if err := os.WriteFile(p, bytes.Repeat([]byte{0xAB}, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ro := opt
	ro.Signer = nil
	r := openStore(t, ro)
	r.Close()
	for _, p := range leftovers {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("a read-only open removed %s: %v", p, err)
		}
	}
	s := openStore(t, opt)
	defer s.Close()
	for _, p := range leftovers {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived a writable open: %v", p, err)
		}
	}
	if v := verify(t, s); !v.OK() || v.Records != 6 {
		t.Fatalf("verify: %+v %v", v, v.Problem)
	}
}
