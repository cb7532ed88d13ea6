package termindex

import (
	"errors"
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
