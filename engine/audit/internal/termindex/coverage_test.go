package termindex

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// openNoMerge opens dir with noMerge (the run list stays as Open left it).
func openNoMerge(t *testing.T, dir string, flush int) *Index {
	t.Helper()
	opt := testOptions(dir)
	opt.noMerge, opt.FlushEntries = true, flush
	x, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func runFiles(t *testing.T, dir string) []string {
	t.Helper()
	fs, _ := filepath.Glob(filepath.Join(dir, "*.run"))
	slices.Sort(fs)
	return fs
}

// Forget(below) then reopen: no false hole, every run above the bound kept;
// a Forget past what was flushed, then more adds, reopens without a hole.
func TestCoverageForgetThenReopen(t *testing.T) {
	for _, below := range []uint64{150, 201, 250} {
		t.Run(fmt.Sprint(below), func(t *testing.T) {
			dir := t.TempDir()
			x := openNoMerge(t, dir, 1000)
			for seq := uint64(1); seq <= 300; seq++ {
				if seq%7 != 0 { // some seqs have no terms
					x.Add(seq, 7, 1000+seq)
				}
				if seq%100 == 0 {
					x.Flush()
				}
			}
			if err := x.Forget(below); err != nil {
				t.Fatal(err)
			}
			for seq := uint64(301); seq <= 350; seq++ { // in memory, then Forget past it
				x.Add(seq, 7)
			}
			if err := x.Forget(400); err != nil {
				t.Fatal(err)
			}
			x.Close()
			x = openNoMerge(t, dir, 1000)
			if d := x.Durable(); d != 399 {
				t.Fatalf("Durable after Forget(400) and reopen = %d, want 399", d)
			}
			for seq := uint64(400); seq <= 450; seq++ {
				x.Add(seq, 7)
			}
			x.Close()
			files := runFiles(t, dir)
			x = openNoMerge(t, dir, 1000)
			defer x.Close()
			if d := x.Durable(); d != 450 {
				t.Fatalf("Durable = %d, want 450 (false hole?) files %v", d, files)
			}
			if got := runFiles(t, dir); !slices.Equal(got, files) {
				t.Errorf("Open dropped runs: %v -> %v", files, got)
			}
		})
	}
}

// A seq split by Flush across two memtables: reopening finds no hole, the
// second part of the seq is still there.
func TestCoverageSplitSeqReopen(t *testing.T) {
	dir := t.TempDir()
	x := openNoMerge(t, dir, 1000)
	for seq := uint64(1); seq <= 100; seq++ {
		x.Add(seq, 7)
	}
	x.Flush()
	x.Add(100, 8) // rest of seq 100
	x.Flush()     // a run holding only seq 100
	for seq := uint64(101); seq <= 200; seq++ {
		x.Add(seq, 7)
	}
	x.Close()
	x = openNoMerge(t, dir, 1000)
	defer x.Close()
	if d := x.Durable(); d != 200 {
		t.Fatalf("Durable = %d, want 200", d)
	}
	if got := collect(t, x.Seqs(8, 0, ^uint64(0), false)); !slices.Equal(got, []uint64{100}) {
		t.Errorf("term 8: %v", got)
	}
	if n := x.Stats().Runs; n != 3 {
		t.Errorf("%d runs, want 3", n)
	}
}

// Merges over seqs without terms, then reopen: no run is let go.
func TestCoverageMergeTermlessReopen(t *testing.T) {
	dir := t.TempDir()
	x, err := Open(testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 3000; seq++ {
		if seq%3 != 0 && seq%50 > 3 {
			x.Add(seq, seq%11, seq+1000)
		}
		if seq%97 == 0 {
			x.Flush()
		}
	}
	if err := x.quiesce(); err != nil {
		t.Fatal(err)
	}
	x.Forget(1234)
	x.quiesce()
	x.Close()
	files := runFiles(t, dir)
	x = openNoMerge(t, dir, 40)
	defer x.Close()
	if d := x.Durable(); d < 2999 {
		t.Errorf("Durable = %d, want ≥ 2999", d)
	}
	if got := runFiles(t, dir); !slices.Equal(got, files) {
		t.Errorf("Open dropped runs: %d -> %d", len(files), len(got))
	}
}

// After a hole, re-adding from Durable+1 and a little below it, then
// reopening, finds no hole; a store whose run was named by its smallest seq
// (before the rule) is re-added once only.
func TestCoverageReaddAndOldNames(t *testing.T) {
	dir := t.TempDir()
	x := openNoMerge(t, dir, 1000)
	add := func(x *Index, from, to uint64) {
		for seq := from; seq <= to; seq++ {
			if seq != 101 { // no terms
				x.Add(seq, 7, 1000+seq)
			}
			if seq%100 == 0 {
				x.Flush()
			}
		}
	}
	add(x, 1, 300)
	x.Close()
	files := runFiles(t, dir)
	if len(files) != 3 {
		t.Fatalf("runs %v", files)
	}
	// Name the second run as the old code did: by its smallest seq (102).
	old := filepath.Join(dir, runName{102, 200, 1}.String())
	if err := os.Rename(files[1], old); err != nil {
		t.Fatal(err)
	}
	x = openNoMerge(t, dir, 1000)
	if d := x.Durable(); d != 100 {
		t.Fatalf("Durable = %d, want 100 (old name: a hole at 101)", d)
	}
	add(x, 95, 300) // re-added, a little below from too
	x.Close()
	x = openNoMerge(t, dir, 1000)
	if d := x.Durable(); d != 300 {
		t.Fatalf("Durable after the re-add = %d, want 300", d)
	}
	x.Close()
	x = openNoMerge(t, dir, 1000)
	defer x.Close()
	if d := x.Durable(); d != 300 {
		t.Fatalf("Durable on a second reopen = %d, want 300", d)
	}
	if got := collect(t, x.Seqs(7, 0, ^uint64(0), false)); len(got) != 299 {
		t.Errorf("term 7: %d seqs, want 299", len(got))
	}
}

// TestMissingRun: a run file deleted by hand leaves a hole in the seqs the
// runs answer for. Open lets go of the runs above the hole and Durable
// ends below it, so the caller re-adds those seqs from its log and no
// query misses them; a read-only Open deletes nothing. A seq with no terms
// at a memtable's edge is no hole.
func TestMissingRun(t *testing.T) {
	build := func(t *testing.T) (string, []string) {
		dir := t.TempDir()
		x := openNoMerge(t, dir, 1000)
		for seq := uint64(1); seq <= 300; seq++ {
			if seq == 201 { // no terms: the third memtable still answers for it
				continue
			}
			x.Add(seq, 7, 1000+seq)
			if seq%100 == 0 {
				if err := x.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
		runs := runFiles(t, dir) // names start with the first seq, zero-padded
		if len(runs) != 3 {
			t.Fatalf("%d runs, want 3: %v", len(runs), runs)
		}
		return dir, runs
	}
	reopen := func(t *testing.T, dir string, readOnly bool) *Index {
		opt := testOptions(dir)
		opt.noMerge, opt.FlushEntries, opt.ReadOnly = true, 1000, readOnly
		x, err := Open(opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close() })
		return x
	}

	t.Run("intact", func(t *testing.T) {
		dir, _ := build(t)
		if d := reopen(t, dir, false).Durable(); d != 300 {
			t.Errorf("Durable = %d, want 300 (seq 201 had no terms)", d)
		}
	})
	for _, readOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("middle run deleted, read-only %v", readOnly), func(t *testing.T) {
			dir, runs := build(t)
			if err := os.Remove(runs[1]); err != nil {
				t.Fatal(err)
			}
			x := reopen(t, dir, readOnly)
			if d := x.Durable(); d != 100 {
				t.Fatalf("Durable = %d, want 100 (the hole starts at 101)", d)
			}
			if _, err := os.Stat(runs[2]); readOnly == os.IsNotExist(err) {
				t.Errorf("run above the hole: stat %v (read-only %v: deleted only when writable)", err, readOnly)
			}
			for seq := x.Durable() + 1; seq <= 300; seq++ { // the caller re-adds from its log
				if seq != 201 {
					x.Add(seq, 7, 1000+seq)
				}
			}
			if got := collect(t, x.Seqs(7, 0, ^uint64(0), false)); len(got) != 299 {
				t.Errorf("term 7 has %d seqs after the re-add, want 299", len(got))
			}
			if got := collect(t, x.Seqs(1150, 0, ^uint64(0), false)); !slices.Equal(got, []uint64{150}) {
				t.Errorf("a seq of the deleted run: %v, want [150]", got)
			}
		})
	}
}
