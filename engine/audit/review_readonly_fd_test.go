package audit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc")
	}
	return len(ents)
}

// TestReadOnlyAheadIndexFDs: a read-only open of a store whose
// index is ahead of its log (copied apart) rebuilds it in memory; every
// run file it opened is closed by Close.
func TestReadOnlyAheadIndexFDs(t *testing.T) {
	dir := t.TempDir()
	opt := testOptions(dir)
	opt.IndexFlushEntries = 8
	s := openStore(t, opt)
	for i := range 4 {
		call(t, s, i)
	}
	s.Close()
	old := t.TempDir()
	if err := exec.Command("cp", "-a", dir+"/.", old).Run(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opt)
	for i := 4; i < 40; i++ {
		call(t, s, i)
	}
	s.Close()
	os.RemoveAll(filepath.Join(old, "index"))
	if err := exec.Command("cp", "-a", filepath.Join(dir, "index"), filepath.Join(old, "index")).Run(); err != nil {
		t.Fatal(err)
	}
	runs, _ := filepath.Glob(filepath.Join(old, "index", "*"))
	before := openFDs(t)
	ro := opt
	ro.Dir, ro.Signer = old, nil
	for range 3 {
		r := openStore(t, ro)
		p, err := r.Query(context.Background(), Query{Subject: request(1).Subject})
		if err != nil || len(p.Entries) != 1 { // call 1 only: the old log holds calls 0-3
			t.Errorf("query: %d %v", len(p.Entries), err)
		}
		r.Close()
	}
	if after := openFDs(t); after != before {
		t.Errorf("fds %d -> %d (index files %v)", before, after, runs)
	}
}
