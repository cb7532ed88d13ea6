package termindex

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeTestRun writes pairs (sorted) as a run with blocks of blockEntries.
func writeTestRun(t testing.TB, dir string, pairs []pair, blockEntries int) string {
	t.Helper()
	w, err := newRunWriter(dir, runName{1, 1000, 1}, blockEntries)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pairs {
		w.add(p)
	}
	r, err := w.finish(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.commit(r); err != nil {
		t.Fatal(err)
	}
	r.unref()
	return w.path
}

// scanRun opens path and reads every entry; it never panics.
func scanRun(path string) ([]pair, error) {
	r, err := openRun(path)
	if err != nil {
		return nil, err
	}
	defer r.unref()
	s := scanner{r: r}
	var out []pair
	for {
		p, ok, err := s.next()
		if err != nil {
			return out, err
		}
		if !ok {
			break
		}
		out = append(out, p)
	}
	if uint64(len(out)) != r.count {
		return out, errors.New("count mismatch")
	}
	return out, nil
}

func testPairs() []pair {
	var ps []pair
	for term := uint64(1); term <= 5; term++ {
		for seq := uint64(1); seq <= term*2; seq++ {
			ps = append(ps, pair{term << 56, seq * 3})
		}
	}
	return ps
}

func TestRunRoundTrip(t *testing.T) {
	for _, be := range []int{1, 3, 4, 256} {
		path := writeTestRun(t, t.TempDir(), testPairs(), be)
		got, err := scanRun(path)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, testPairs()) {
			t.Fatalf("blocks of %d: read %v", be, got)
		}
	}
}

// TestRunEveryByteCorrupt flips each byte of a run file in turn: every flip must be
// an error that names the file, never a panic or a different result.
func TestRunEveryByteCorrupt(t *testing.T) {
	dir := t.TempDir()
	path := writeTestRun(t, dir, testPairs(), 4)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.run")
	for i := range good {
		b := slices.Clone(good)
		b[i] ^= 0x10
		if err := os.WriteFile(bad, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := scanRun(bad)
		if err == nil {
			t.Fatalf("byte %d flipped: no error", i)
		}
		if !strings.Contains(err.Error(), bad) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: error %q does not name the file or is not ErrCorrupt", i, err)
		}
	}
	for _, n := range []int{0, 10, headerSize, len(good) - 1} {
		os.WriteFile(bad, good[:n], 0o600)
		if _, err := scanRun(bad); err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
	}
	os.WriteFile(bad, append(slices.Clone(good), 0), 0o600)
	if _, err := scanRun(bad); err == nil {
		t.Fatal("one byte appended: no error")
	}
}

func TestRunCRCMismatchNamesFile(t *testing.T) {
	dir := t.TempDir()
	path := writeTestRun(t, dir, testPairs(), 4)
	b, _ := os.ReadFile(path)
	b[headerSize+3] ^= 1 // inside block 0
	os.WriteFile(path, b, 0o600)
	x, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err) // the header and index are intact: Open succeeds
	}
	defer x.Close()
	it := x.Seqs(1<<56, 0, 100, false)
	for _, ok := it.Next(); ok; _, ok = it.Next() {
	}
	it.Close()
	if err := it.Err(); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "CRC mismatch") {
		t.Fatalf("Err() = %v, want a CRC mismatch naming %s", err, path)
	}
}

func FuzzDecodeRun(f *testing.F) {
	dir := f.TempDir()
	good, _ := os.ReadFile(writeTestRun(f, dir, testPairs(), 4))
	f.Add(good)
	f.Add(good[:headerSize])
	f.Add([]byte(runMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "f.run")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := scanRun(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for i := 1; i < len(got); i++ {
			if !got[i-1].less(got[i]) {
				t.Fatalf("accepted a run out of order: %v", got)
			}
		}
		if slices.Equal(data, good) && !slices.Equal(got, testPairs()) {
			t.Fatalf("good file read as %v", got)
		}
	})
}

// TestRunOverlappingBlocks: a run edited so that its blocks overlap, with
// every checksum made valid — each block sorted, the fences in order —
// hides an entry from the fence search (Seqs starts at the block whose
// fence is the last ≤ its key and never reads the block before), while a
// scan still sees every entry, so the set of pairs is unchanged. Each block
// read now checks its last entry against the next fence: a scan — Pairs,
// hence the audit store's VerifyIndex, and a merge, which panicked on the
// disorder — gets ErrCorrupt naming the file.
func TestRunOverlappingBlocks(t *testing.T) {
	dir := t.TempDir()
	opt := Options{Dir: dir, FlushEntries: 1 << 20, blockEntries: 2, Logger: quiet, noMerge: true}
	x, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	x.Add(1, 10)
	x.Add(2, 10)
	x.Add(3, 20)
	x.Add(4, 20)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	runs, _ := filepath.Glob(filepath.Join(dir, "*.run"))
	b, err := os.ReadFile(runs[0])
	if err != nil {
		t.Fatal(err)
	}
	// Blocks [(10,1) (20,4)] [(10,2) (20,3)]: each sorted, fences (10,1) < (10,2).
	be := binary.BigEndian
	for i, p := range []pair{{10, 1}, {20, 4}, {10, 2}, {20, 3}} {
		be.PutUint64(b[headerSize+entrySize*i:], p.term)
		be.PutUint64(b[headerSize+entrySize*i+8:], p.seq)
	}
	idx := headerSize + entrySize*4
	for blk := range 2 {
		lo := headerSize + 2*entrySize*blk
		copy(b[idx+20*blk:], b[lo:lo+entrySize])
		be.PutUint32(b[idx+20*blk+16:], crc32.Checksum(b[lo:lo+2*entrySize], castagnoli))
	}
	be.PutUint32(b[40:], crc32.Checksum(b[idx:idx+40], castagnoli))
	be.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	if err := os.WriteFile(runs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}

	x, err = Open(opt)
	if err != nil {
		t.Fatalf("Open: %v (blocks are checked when read)", err)
	}
	defer x.Close()
	err = x.Pairs(1, 4, func(uint64, uint64) error { return nil })
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(runs[0])) {
		t.Errorf("Pairs: %v, want ErrCorrupt naming the run", err)
	}
	x.mu.Lock()
	group := slices.Clone(x.runs)
	x.mu.Unlock()
	if _, err := x.mergeRuns(group, runName{lo: 1, hi: 4, gen: 99}, 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("merge: %v, want ErrCorrupt (not a panic)", err)
	}
}
