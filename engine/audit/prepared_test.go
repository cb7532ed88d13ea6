package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestPreparedSegment: the active segment is a file of zeros prepared
// ahead, which the writer overwrites. After a crash the zeros after the
// last frame are the unused rest, not a torn tail; bytes after a run of
// zeros (a later page of a batch whose sync never finished) are a torn
// tail, saved and cut; a sealed segment keeps no zeros, even when a crash
// came between a roll and its truncation; Close leaves no prepared file.
func TestPreparedSegment(t *testing.T) {
	s := newStore(t)
	for i := range 5 {
		call(t, s, i)
	}
	head := s.Head()
	seg := segFiles(t, s.dir)[0]
	if got := fileSize(t, seg); got != firstPrepared {
		t.Fatalf("active segment %d bytes, want the prepared %d", got, firstPrepared)
	}

	t.Run("zeros after the last frame", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "image")
		copyTree(t, s.dir, dir) // the zeros kept, next.tmp too
		r := openStore(t, testOptions(dir))
		defer r.Close()
		if r.Head() != head {
			t.Fatalf("head %+v, want %+v", r.Head(), head)
		}
		seg := segFiles(t, dir)[0]
		if torn, _ := filepath.Glob(seg + ".torn-*"); len(torn) != 0 {
			t.Fatalf("prepared zeros taken for a torn tail: %v", torn)
		}
		call(t, r, 7)
		if got := fileSize(t, seg); got != firstPrepared {
			t.Errorf("segment grew to %d bytes: the writer appended instead of overwriting", got)
		}
		if v := verify(t, r); !v.OK() || v.Last != head.Seq+2 {
			t.Fatalf("verify: %+v %v", v, v.Problem)
		}
	})

	t.Run("a later page written, an earlier one not", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "image")
		copyTree(t, s.dir, dir)
		seg := segFiles(t, dir)[0]
		b, _ := os.ReadFile(seg)
		end := framesEnd(b)
		page := appendFrame(nil, head.Seq+2, []byte("a frame of a batch never acknowledged"))
		copy(b[end+4096:], page) // the first page of the batch lost, a later one on disk
		os.WriteFile(seg, b, 0o644)
		r := openStore(t, testOptions(dir))
		defer r.Close()
		if r.Head() != head {
			t.Fatalf("head %+v, want %+v", r.Head(), head)
		}
		torn, _ := filepath.Glob(seg + ".torn-*")
		if len(torn) != 1 {
			t.Fatalf("torn tail not saved aside: %v", torn)
		}
		if saved, _ := os.ReadFile(torn[0]); !bytes.HasSuffix(saved, page) || len(saved) != 4096+len(page) {
			t.Errorf("saved %d bytes, want the %d up to the stray frame's end", len(saved), 4096+len(page))
		}
		call(t, r, 8)
		if v := verify(t, r); !v.OK() || v.Last != head.Seq+2 {
			t.Fatalf("verify: %+v %v", v, v.Problem)
		}
		if e, err := r.Get(t.Context(), head.Seq+2); err != nil || e.Record.Kind != KindOutcome {
			t.Fatalf("the record after recovery: %+v %v", e.Record, err)
		}
	})

	t.Run("read-only ignores the zeros", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "image")
		copyTree(t, s.dir, dir)
		r := openReadOnly(t, dir)
		if v := verify(t, r); !v.OK() || v.Last != head.Seq {
			t.Fatalf("verify: %+v %v", v, v.Problem)
		}
	})

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "log", nextPrepared)); !os.IsNotExist(err) {
		t.Errorf("Close left the prepared next segment: %v", err)
	}
}

// TestPreparedSegmentsRoll: segments roll at their prepared size, each
// prepared twice the last up to segmentSize; a sealed segment is cut to
// its frames; a sealed segment still holding zeros (a crash between the
// roll and the truncation) is cut on the next Open.
func TestPreparedSegmentsRoll(t *testing.T) {
	smallSegments(t, 32<<10)
	dir := t.TempDir()
	s := openStore(t, testOptions(dir))
	for i := range 200 {
		call(t, s, i)
	}
	segs := segFiles(t, dir)
	if len(segs) < 4 {
		t.Fatalf("%d segments", len(segs))
	}
	for _, seg := range segs[:len(segs)-1] {
		b, _ := os.ReadFile(seg)
		if end := framesEnd(b); end != len(b) {
			t.Fatalf("sealed %s: frames end at %d of %d bytes", filepath.Base(seg), end, len(b))
		}
	}
	head := s.Head()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A roll cut short: the sealed segment still has its zeros and no sidecar.
	sealed := segs[len(segs)-2]
	b, _ := os.ReadFile(sealed)
	os.WriteFile(sealed, append(b, make([]byte, 5000)...), 0o644)
	os.Remove(sealed[:len(sealed)-len(".seg")] + ".idx")
	r := openStore(t, testOptions(dir))
	defer r.Close()
	if got := fileSize(t, sealed); got != int64(len(b)) {
		t.Errorf("sealed segment %d bytes after Open, want %d", got, len(b))
	}
	if r.Head() != head {
		t.Fatalf("head %+v, want %+v", r.Head(), head)
	}
	call(t, r, 300)
	if v := verify(t, r); !v.OK() || v.Last != head.Seq+2 {
		t.Fatalf("verify: %+v %v", v, v.Problem)
	}
}
