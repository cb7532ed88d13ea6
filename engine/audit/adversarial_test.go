package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Adversarial tests of the segment log: what a crash, a disk or someone
// with write access can leave, checked against README.md ("Recovery",
// "The chain, checkpoints and anchors").

// advCalls is how many calls (two records each) the fixtures hold.
const advCalls = 150

// advFixture writes advCalls calls into a store whose segments roll every
// 4 KiB, with a checkpoint every ckEvery records and the index partly in
// run files, and returns a crash image of it (no final checkpoint: the
// records after the last multiple of ckEvery are unsigned) or, if clean,
// the directory of the closed store (the last checkpoint names the head).
func advFixture(t *testing.T, ckEvery int, clean bool) string {
	t.Helper()
	smallSegments(t, 4<<10)
	opt := testOptions(t.TempDir())
	opt.CheckpointEvery = ckEvery
	opt.IndexFlushEntries = 64
	s := openStore(t, opt)
	for i := range advCalls {
		call(t, s, i)
	}
	if clean {
		s.Close()
		return opt.Dir
	}
	// The log and checkpoints as a SIGKILL would leave them (nothing is
	// writing now); the index from the closed store, consistent and
	// covering every record (copying it while its merges run could catch
	// a run half gone).
	dir := filepath.Join(t.TempDir(), "image")
	copyTree(t, filepath.Join(opt.Dir, "log"), filepath.Join(dir, "log"))
	copyTree(t, filepath.Join(opt.Dir, "checkpoints"), filepath.Join(dir, "checkpoints"))
	s.Close()
	copyTree(t, filepath.Join(opt.Dir, "index"), filepath.Join(dir, "index"))
	return dir
}

func advOptions(dir string) Options {
	opt := testOptions(dir)
	opt.CheckpointEvery = 1 << 20
	return opt
}

// frameSpans lists the frames of one segment file: seq, start, end.
type frameSpan struct {
	seq        uint64
	start, end int64
}

func frameSpans(t *testing.T, path string) []frameSpan {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.TrimRight(b, "\x00") // a prepared segment's unused zeros
	var out []frameSpan
	for off := len(segMagic); off < len(b); {
		seq, _, n, err := cutFrame(b[off:])
		if err != nil {
			t.Fatalf("%s at %d: %v", path, off, err)
		}
		out = append(out, frameSpan{seq, int64(off), int64(off + n)})
		off += n
	}
	return out
}

// openErr opens dir and returns the error (closing the store if it opened).
func openErr(opt Options) error {
	s, err := Open(opt)
	if err == nil {
		s.Close()
	}
	return err
}

// checkContinues checks that the store at dir (writable) holds records
// 1…head, chains two new records onto head, verifies, and keeps them
// across a reopen.
func checkContinues(t *testing.T, dir string, head uint64) {
	t.Helper()
	ctx := context.Background()
	opt := advOptions(dir)
	s := openStore(t, opt)
	if h := s.Head(); h.Seq != head {
		s.Close()
		t.Fatalf("writable open: head %d, want %d", h.Seq, head)
	}
	for _, q := range []uint64{1, head / 2, head} {
		if q == 0 {
			continue
		}
		if e, err := s.Get(ctx, q); err != nil || e.Seq != q {
			s.Close()
			t.Fatalf("get %d after recovery: %v", q, err)
		}
	}
	rq, rc := call(t, s, 1000)
	if rq.Seq != head+1 || rc.Seq != head+2 {
		s.Close()
		t.Fatalf("continued at %d, %d after head %d", rq.Seq, rc.Seq, head)
	}
	if v := verify(t, s); !v.OK() || v.Last != head+2 {
		s.Close()
		t.Fatalf("verify after continuing: %+v %v", v, v.Problem)
	}
	s.Close()
	s = openStore(t, opt)
	defer s.Close()
	if h := s.Head(); h != rc {
		t.Fatalf("reopened head %+v, want %+v", h, rc)
	}
	if p, err := s.Query(ctx, Query{TraceID: request(1000).TraceIn}); err != nil || !slices.Equal(seqs(p), []uint64{head + 1, head + 2}) {
		t.Fatalf("query of the new call: %v %v", seqs(p), err)
	}
	if p, err := s.Proof(ctx, head+1); err != nil || VerifyProof(testPub, p) != nil {
		t.Fatalf("proof of the new call: %v", err)
	}
}

// TestAdvTornTailAtEveryOffset cuts the last segment of a crash image at
// (nearly) every offset inside its last three frames: a read-only Open
// sees exactly the whole frames before the cut and leaves the file alone;
// a writable one cuts the partial frame, saves it, and chains on.
func TestAdvTornTailAtEveryOffset(t *testing.T) {
	base := advFixture(t, 64, false) // signed up to 256 of 300
	segs := segFiles(t, base)
	last := segs[len(segs)-1]
	spans := frameSpans(t, last)
	if len(spans) < 4 {
		t.Fatalf("last segment holds %d frames", len(spans))
	}
	orig, _ := os.ReadFile(last)
	tail := spans[len(spans)-3:]
	cases := 0
	for off := tail[0].start; off < tail[2].end; off++ {
		in := off
		for _, sp := range tail {
			if off >= sp.start {
				in = off - sp.start
			}
		}
		if in > frameHead && in != frameHead+entryHead && off%97 != 0 {
			continue // every offset of the frame headers, a sample of the rest
		}
		cases++
		head := tail[0].seq - 1
		boundary := tail[0].start
		for _, sp := range tail {
			if sp.end <= off {
				head, boundary = sp.seq, sp.end
			}
		}
		dir := filepath.Join(t.TempDir(), "c")
		linkTree(t, base, dir, last)
		seg := filepath.Join(dir, "log", filepath.Base(last))
		if err := os.Truncate(seg, off); err != nil {
			t.Fatal(err)
		}
		// Read-only: the torn tail is ignored, not cut.
		ro := advOptions(dir)
		ro.Signer = nil
		r := openStore(t, ro)
		if h := r.Head(); h.Seq != head {
			t.Fatalf("cut at %d: read-only head %d, want %d", off, h.Seq, head)
		}
		if v := verify(t, r); !v.OK() || v.Last != head {
			t.Fatalf("cut at %d: read-only verify %+v %v", off, v, v.Problem)
		}
		r.Close()
		if st, _ := os.Stat(seg); st.Size() != off {
			t.Fatalf("cut at %d: a read-only open changed the segment to %d bytes", off, st.Size())
		}
		checkContinues(t, dir, head)
		torn, _ := filepath.Glob(seg + ".torn-*")
		if off == boundary || isZero(orig[boundary:off]) {
			// Nothing, or only zeros (unused space, as in a prepared
			// segment: kept and overwritten), after the last frame.
			if len(torn) != 0 {
				t.Fatalf("cut at %d, frame boundary %d: %v saved", off, boundary, torn)
			}
			continue
		}
		if len(torn) != 1 || !strings.HasSuffix(torn[0], fmt.Sprintf(".torn-%d", boundary)) {
			t.Fatalf("cut at %d: torn files %v, want one at %d", off, torn, boundary)
		}
		if b, _ := os.ReadFile(torn[0]); !bytes.Equal(b, bytes.TrimRight(orig[boundary:off], "\x00")) { // its zeros are unused space
			t.Fatalf("cut at %d: the saved tail is not the cut bytes", off)
		}
	}
	t.Logf("%d cuts", cases)
}

// TestAdvTornTailShapes: a partially written last frame followed by what
// a disk may leave after it (zeros, garbage, a header claiming a huge
// length), and a segment whose header itself is torn.
func TestAdvTornTailShapes(t *testing.T) {
	base := advFixture(t, 64, false)
	segs := segFiles(t, base)
	last := filepath.Base(segs[len(segs)-1])
	spans := frameSpans(t, segs[len(segs)-1])
	lastSeq := spans[len(spans)-1].seq
	hugeHead := make([]byte, frameHead)
	binary.BigEndian.PutUint32(hugeHead, 1<<31)
	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
		head uint64
	}{
		{"zeros appended", func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, lastSeq},
		{"one zero byte appended", func(b []byte) []byte { return append(b, 0) }, lastSeq},
		{"garbage appended", func(b []byte) []byte { return append(b, bytes.Repeat([]byte("\xde\xad\xbe\xef"), 300)...) }, lastSeq},
		{"a huge length appended", func(b []byte) []byte { return append(b, hugeHead...) }, lastSeq},
		{"last frame half written, zeros after", func(b []byte) []byte {
			sp := spans[len(spans)-1]
			b = b[:sp.start+(sp.end-sp.start)/2]
			return append(b, make([]byte, 512)...)
		}, lastSeq - 1},
		{"last frame's body zeroed (its pages never written)", func(b []byte) []byte {
			sp := spans[len(spans)-1]
			clear(b[sp.start+frameHead : sp.end])
			return b
		}, lastSeq - 1},
		{"header of the segment torn", func(b []byte) []byte { return b[:3] }, spans[0].seq - 1},
		{"segment empty", func(b []byte) []byte { return b[:0] }, spans[0].seq - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "c")
			copyTree(t, base, dir)
			seg := filepath.Join(dir, "log", last)
			b, _ := os.ReadFile(seg)
			if err := os.WriteFile(seg, tc.edit(b), 0o644); err != nil {
				t.Fatal(err)
			}
			ro := advOptions(dir)
			ro.Signer = nil
			r := openStore(t, ro)
			if h := r.Head(); h.Seq != tc.head {
				t.Fatalf("read-only head %d, want %d", h.Seq, tc.head)
			}
			if v := verify(t, r); !v.OK() || v.Last != tc.head {
				t.Fatalf("read-only verify %+v %v", v, v.Problem)
			}
			r.Close()
			checkContinues(t, dir, tc.head)
			s := openStore(t, advOptions(dir))
			defer s.Close()
			checkQueriesMatchScan(t, s)
		})
	}
}

// TestAdvSidecarsAndTempFiles: deleted, truncated and foreign sidecars of
// sealed segments are rebuilt, leftovers of an interrupted prune (.tmp
// files) are ignored, a deleted index or index run is rebuilt: nothing is
// lost.
func TestAdvSidecarsAndTempFiles(t *testing.T) {
	base := advFixture(t, 16, true)
	sides, _ := filepath.Glob(filepath.Join(base, "log", "*.idx"))
	if len(sides) < 4 {
		t.Fatalf("%d sidecars", len(sides))
	}
	runs, _ := filepath.Glob(filepath.Join(base, "index", "*.run"))
	if len(runs) < 2 {
		t.Fatalf("%d index runs, want a hole below the last", len(runs))
	}
	slices.Sort(runs)
	for _, tc := range []struct {
		name string
		edit func(dir string)
	}{
		{"sidecar deleted", func(dir string) { os.Remove(rel(dir, base, sides[0])) }},
		{"sidecar truncated", func(dir string) {
			p := rel(dir, base, sides[1])
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-5], 0o644)
		}},
		{"sidecar of another segment", func(dir string) {
			b, _ := os.ReadFile(sides[2])
			os.WriteFile(rel(dir, base, sides[1]), b, 0o644)
		}},
		{"every sidecar deleted", func(dir string) {
			for _, s := range sides {
				os.Remove(rel(dir, base, s))
			}
		}},
		{"index deleted", func(dir string) { os.RemoveAll(filepath.Join(dir, "index")) }},
		// A hole in the seqs the index's runs answer for: the records under
		// it would be missing from every query (the citizen view too).
		{"an index run deleted", func(dir string) { os.Remove(rel(dir, base, runs[0])) }},
		{"interrupted prune: temp files", func(dir string) {
			segs := segFiles(t, dir)
			os.WriteFile(segs[0]+".tmp", []byte(segMagic+"half a segm"), 0o644)
			os.WriteFile(strings.TrimSuffix(segs[0], ".seg")+".idx.tmp", []byte("FSBAUDX1"), 0o644)
			os.WriteFile(filepath.Join(dir, "anchor.tmp"), make([]byte, 50), 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "c")
			copyTree(t, base, dir)
			tc.edit(dir)
			for _, writable := range []bool{false, true} {
				opt := advOptions(dir)
				if !writable {
					opt.Signer = nil
				}
				s := openStore(t, opt)
				ctx := context.Background()
				if h := s.Head(); h.Seq != 2*advCalls {
					t.Fatalf("head %d", h.Seq)
				}
				if v := verify(t, s); !v.OK() || v.Last != 2*advCalls || v.Signed != 2*advCalls {
					t.Fatalf("verify: %+v %v", v, v.Problem)
				}
				for q := uint64(1); q <= 2*advCalls; q++ {
					if e, err := s.Get(ctx, q); err != nil || e.Seq != q {
						t.Fatalf("get %d: %v", q, err)
					}
				}
				checkQueriesMatchScan(t, s)
				s.Close()
			}
			checkContinues(t, dir, 2*advCalls)
		})
	}
}

// linkTree makes dir a copy of base for a test that changes only the
// file copied: the sealed segments and sidecars, which no Open writes in
// place, are hard links (copying every file of every case was most of
// the test's time); the checkpoints file is copied, the index left out
// (rebuilt from the log).
func linkTree(t *testing.T, base, dir, copied string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o755); err != nil {
		t.Fatal(err)
	}
	ents, _ := filepath.Glob(filepath.Join(base, "log", "*"))
	for _, p := range append(ents, filepath.Join(base, "checkpoints")) {
		to := rel(dir, base, p)
		if p == copied || filepath.Base(p) == "checkpoints" {
			b, err := os.ReadFile(p)
			if err == nil {
				err = os.WriteFile(to, b, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		} else if err := os.Link(p, to); err != nil {
			t.Fatal(err)
		}
	}
}

func rel(dir, base, path string) string {
	r, _ := filepath.Rel(base, path)
	return filepath.Join(dir, r)
}

// checkQueriesMatchScan compares Query, ConsumerQuery, Consultations and
// Outcome with a scan of every record.
func checkQueriesMatchScan(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	var all []Entry
	h := s.Head().Seq
	first := s.pubw.first
	for q := first; q <= h; q++ {
		e, err := s.Get(ctx, q)
		if err != nil {
			t.Fatalf("get %d: %v", q, err)
		}
		if !e.Redacted {
			all = append(all, e)
		}
	}
	status := map[uint64]int{} // request seq -> its outcome's status
	for _, e := range all {
		if e.Record.Kind == KindOutcome {
			status[e.Record.Request] = e.Record.Status
		}
	}
	pseud := func(sub string) []string {
		var ps []string
		for _, k := range s.opt.SubjectKeys {
			ps = append(ps, Pseudonym(k, sub))
		}
		return ps
	}
	scan := func(q Query, ps []string) []uint64 {
		var want []uint64
		for _, e := range all {
			if q.matches(&e.Record, ps) {
				want = append(want, e.Seq)
			}
		}
		if q.Desc {
			slices.Reverse(want)
		}
		return want
	}
	pages := func(q Query, f func(Query) (Page, error)) []uint64 {
		var got []uint64
		for range 1000 {
			p, err := f(q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, seqs(p)...)
			if p.Next == "" {
				return got
			}
			q.Cursor = p.Next
		}
		t.Fatal("pages do not end")
		return nil
	}
	query := func(q Query) (Page, error) { return s.Query(ctx, q) }
	var qs []Query
	for i := range 3 {
		qs = append(qs, Query{Organisation: fmt.Sprintf("org%d", i), Limit: 37})
	}
	for i := range 2 {
		qs = append(qs, Query{Service: fmt.Sprintf("svc%d", i), Desc: true, Limit: 50})
	}
	for _, i := range []int{0, 1, advCalls / 2, advCalls - 1, 1000} {
		qs = append(qs, Query{TraceID: request(i).TraceIn}, Query{TraceID: outcome(i).Sources[0].TraceID, Kinds: []Kind{KindOutcome}})
	}
	for _, q := range qs {
		if got, want := pages(q, query), scan(q, nil); !slices.Equal(got, want) {
			t.Errorf("%+v:\n got %v\nwant %v", q, got, want)
		}
	}
	for i := range 5 {
		sub := request(i).Subject
		q := Query{Subject: sub, Limit: 20}
		if got, want := pages(q, query), scan(q, pseud(sub)); !slices.Equal(got, want) {
			t.Errorf("subject %d:\n got %v\nwant %v", i, got, want)
		}
		cq := Query{Subject: sub, Kinds: []Kind{KindRequest}, Desc: true}
		want := scan(cq, pseud(sub))
		var got []uint64
		for c := ""; ; {
			p, err := s.Consultations(ctx, sub, Query{Limit: 13, Cursor: c})
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range p.Consultations {
				got = append(got, x.Seq)
				if x.Status != status[x.Seq] {
					t.Errorf("consultation %d: status %d, want %d", x.Seq, x.Status, status[x.Seq])
				}
			}
			if c = p.Next; c == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("consultations of %d:\n got %v\nwant %v", i, got, want)
		}
	}
	org := "org1"
	cq := Query{Organisation: org, Service: "svc0"}
	if got, want := pages(Query{Service: "svc0"}, func(q Query) (Page, error) { return s.ConsumerQuery(ctx, org, q) }), scan(cq, nil); !slices.Equal(got, want) {
		t.Errorf("consumer query:\n got %v\nwant %v", got, want)
	}
	for _, e := range all {
		if e.Record.Kind != KindOutcome {
			continue
		}
		o, ok, err := s.Outcome(ctx, e.Record.Request)
		if err != nil || !ok || o.Seq != e.Seq {
			t.Fatalf("outcome of %d: %d %v %v, want %d", e.Record.Request, o.Seq, ok, err, e.Seq)
		}
	}
}

// TestAdvCheckpointsFileTail: a partial or damaged last checkpoint frame
// is cut, the next checkpoint lands on a frame boundary, and the chain
// verifies; a missing checkpoints file loses signatures, not records.
func TestAdvCheckpointsFileTail(t *testing.T) {
	base := advFixture(t, 16, true)
	ckPath := func(dir string) string { return filepath.Join(dir, "checkpoints") }
	b, _ := os.ReadFile(ckPath(base))
	n := len(b) / ckSize
	if n < 10 || len(b)%ckSize != 0 {
		t.Fatalf("%d bytes of checkpoints", len(b))
	}
	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"last frame half written", func(b []byte) []byte { return b[:len(b)-ckSize/2] }},
		{"a few bytes of a new frame", func(b []byte) []byte { return append(b, 1, 2, 3) }},
		{"a zeroed frame appended", func(b []byte) []byte { return append(b, make([]byte, ckSize)...) }},
		{"last frame's signature zeroed", func(b []byte) []byte { clear(b[len(b)-70 : len(b)-4]); return b }},
		{"file empty", func(b []byte) []byte { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "c")
			copyTree(t, base, dir)
			os.WriteFile(ckPath(dir), tc.edit(bytes.Clone(b)), 0o644)
			opt := advOptions(dir)
			opt.CheckpointEvery = 1
			s := openStore(t, opt)
			call(t, s, 2000)
			v := verify(t, s)
			s.Close()
			if !v.OK() || v.Last != 2*advCalls+2 || v.Signed != 2*advCalls+2 {
				t.Fatalf("verify: %+v %v", v, v.Problem)
			}
			after, _ := os.ReadFile(ckPath(dir))
			if len(after)%ckSize != 0 {
				t.Fatalf("checkpoints file of %d bytes: a frame off its boundary", len(after))
			}
		})
	}
	t.Run("file deleted", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "c")
		copyTree(t, base, dir)
		os.Remove(ckPath(dir))
		checkContinues(t, dir, 2*advCalls)
	})
}

// TestAdvRollback: a log cut back to before a signed checkpoint (a disk
// that lost data, or someone hiding records) must not be taken for a
// fresh head: a writable Open refuses it (it would chain new records
// under seqs a signed checkpoint already names), a read-only one opens
// and Verify names the first missing record.
func TestAdvRollback(t *testing.T) {
	base := advFixture(t, 16, true) // signed up to the head, 300
	segs := segFiles(t, base)
	lastSeg := segs[len(segs)-1]
	spans := frameSpans(t, lastSeg)
	for _, tc := range []struct {
		name string
		edit func(dir string)
		next uint64 // the first record missing
	}{
		{"last frames cut at a boundary", func(dir string) {
			os.Truncate(rel(dir, base, lastSeg), spans[len(spans)-3].start)
		}, spans[len(spans)-3].seq},
		{"cut inside a signed frame", func(dir string) {
			os.Truncate(rel(dir, base, lastSeg), spans[len(spans)-2].start+30)
		}, spans[len(spans)-2].seq},
		{"last segment deleted", func(dir string) { os.Remove(rel(dir, base, lastSeg)) }, spans[0].seq},
		{"last three segments deleted", func(dir string) {
			for _, p := range segs[len(segs)-3:] {
				os.Remove(rel(dir, base, p))
				os.Remove(strings.TrimSuffix(rel(dir, base, p), ".seg") + ".idx")
			}
		}, frameSpans(t, segs[len(segs)-3])[0].seq},
		{"every segment deleted", func(dir string) { os.RemoveAll(filepath.Join(dir, "log")) }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "c")
			copyTree(t, base, dir)
			tc.edit(dir)
			err := openErr(advOptions(dir))
			if err == nil || !strings.Contains(err.Error(), "checkpoint") {
				t.Fatalf("writable open of a log cut back before its signed checkpoint: %v", err)
			}
			ro := advOptions(dir)
			ro.Signer = nil
			r := openStore(t, ro)
			defer r.Close()
			v := verify(t, r)
			if v.OK() || v.Problem.Seq != tc.next || v.Problem.Kind != Removed {
				t.Fatalf("verify: %+v %v, want record %d removed", v, v.Problem, tc.next)
			}
		})
	}
}

// TestAdvDamagedLengthIsNotATornTail: a flipped bit in the length field
// of an acknowledged frame in the middle of the active segment makes the
// rest of the segment unparsable from there, but complete frames follow
// it: that is damage, not a torn tail, and cutting it would drop
// acknowledged records and re-chain their seqs. A writable Open refuses;
// a read-only one opens and Verify names the damaged record.
func TestAdvDamagedLengthIsNotATornTail(t *testing.T) {
	base := advFixture(t, 1<<20, false) // nothing signed: the checkpoint check cannot help
	segs := segFiles(t, base)
	lastSeg := segs[len(segs)-1]
	spans := frameSpans(t, lastSeg)
	if len(spans) < 4 {
		t.Fatalf("last segment holds %d frames", len(spans))
	}
	victim := spans[1]
	for _, tc := range []struct {
		name string
		flip func(b []byte)
	}{
		{"length out of range", func(b []byte) { b[victim.start] ^= 0x80 }},
		{"length past the end", func(b []byte) { b[victim.start+1] ^= 0x40 }},
		{"length a little longer", func(b []byte) { b[victim.start+3] ^= 0x01 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "c")
			copyTree(t, base, dir)
			p := rel(dir, base, lastSeg)
			b, _ := os.ReadFile(p)
			tc.flip(b)
			os.WriteFile(p, b, 0o644)
			err := openErr(advOptions(dir))
			if err == nil {
				s := openStore(t, advOptions(dir))
				h := s.Head()
				s.Close()
				t.Fatalf("writable open accepted a damaged active segment: head %d, acknowledged up to %d", h.Seq, 2*advCalls)
			}
			if st, _ := os.Stat(p); st.Size() != int64(len(b)) {
				t.Fatalf("the refused open cut the segment to %d bytes", st.Size())
			}
			ro := advOptions(dir)
			ro.Signer = nil
			r := openStore(t, ro)
			defer r.Close()
			v := verify(t, r)
			if v.OK() || v.Problem.Seq != victim.seq {
				t.Fatalf("verify: %+v %v, want record %d named", v, v.Problem, victim.seq)
			}
		})
	}
}

// TestAdvTamper edits a closed store's files in place, in a sealed and in
// the active segment, with and without fixing the frame checksum (and
// the sealed segment's sidecar left as it was): Verify names the first
// bad record, read-only and after a writable Open.
func TestAdvTamper(t *testing.T) {
	base := advFixture(t, 16, true)
	segs := segFiles(t, base)
	sealed, active := segs[len(segs)/2], segs[len(segs)-1]
	sSpans, aSpans := frameSpans(t, sealed), frameSpans(t, active)
	if len(sSpans) < 3 || len(aSpans) < 3 {
		t.Fatalf("segments of %d and %d frames", len(sSpans), len(aSpans))
	}
	type edit func(t *testing.T, dir string)
	// inFile edits one segment's bytes.
	inFile := func(seg string, f func(b []byte) []byte) edit {
		return func(t *testing.T, dir string) {
			p := rel(dir, base, seg)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, f(b), 0o644)
		}
	}
	// flipRecordByte changes a byte of the record (not the frame or entry head).
	flipRecordByte := func(sp frameSpan, fixCRC bool) func(b []byte) []byte {
		return func(b []byte) []byte {
			b[sp.start+frameHead+entryHead+80] ^= 0x01 // after the record's frame
			if fixCRC {
				sealFrame(b[sp.start:sp.end])
			}
			return b
		}
	}
	swap := func(a, c frameSpan) func(b []byte) []byte {
		return func(b []byte) []byte {
			out := slices.Clone(b[:a.start])
			out = append(out, b[c.start:c.end]...)
			out = append(out, b[a.end:c.start]...)
			out = append(out, b[a.start:a.end]...)
			return append(out, b[c.end:]...)
		}
	}
	del := func(a frameSpan) func(b []byte) []byte {
		return func(b []byte) []byte { return append(slices.Clone(b[:a.start]), b[a.end:]...) }
	}
	// forge inserts, before frame a, a frame under a's seq that chains
	// onto a's predecessor with a valid checksum.
	forge := func(a frameSpan) func(b []byte) []byte {
		return func(b []byte) []byte {
			_, e, _, _ := cutFrame(b[a.start:])
			pe, _ := parseEntry(a.seq, e)
			rec := bytes.Replace(pe.record, []byte(`"app":"app"`), []byte(`"app":"evil"`), 1)
			f := appendFrame(nil, a.seq, appendEntry(nil, pe.prev, link(pe.prev, recordDigest(rec)), rec))
			out := slices.Clone(b[:a.start])
			out = append(out, f...)
			return append(out, b[a.start:]...)
		}
	}
	s1, a1 := sSpans[1], aSpans[1]
	for _, tc := range []struct {
		name     string
		edit     edit
		seq      uint64
		kind     ProblemKind
		writable bool // a writable Open still opens (the damage is not the last record)
	}{
		{"sealed: a record byte, checksum left", inFile(sealed, flipRecordByte(s1, false)), s1.seq, Altered, true},
		{"sealed: a record byte, checksum fixed", inFile(sealed, flipRecordByte(s1, true)), s1.seq, Altered, true},
		{"sealed: a frame deleted", inFile(sealed, del(s1)), s1.seq, Removed, true},
		{"sealed: two frames swapped", inFile(sealed, swap(sSpans[0], s1)), sSpans[0].seq, Altered, true},
		{"sealed: a forged frame inserted", inFile(sealed, forge(s1)), s1.seq, Inserted, true},
		{"sealed: the frame's seq changed", inFile(sealed, func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[s1.start+8:], s1.seq+1000)
			sealFrame(b[s1.start:s1.end])
			return b
		}), s1.seq, "", true},
		{"active: a record byte, checksum left", inFile(active, flipRecordByte(a1, false)), a1.seq, Altered, true},
		{"active: a record byte, checksum fixed", inFile(active, flipRecordByte(a1, true)), a1.seq, Altered, true},
		{"active: a frame deleted", inFile(active, del(a1)), a1.seq, Removed, true},
		{"active: two frames swapped", inFile(active, swap(aSpans[0], a1)), aSpans[0].seq, Altered, true},
		{"active: a forged frame inserted", inFile(active, forge(a1)), a1.seq, Inserted, true},
		{"active: the last record altered, checksum fixed", inFile(active, flipRecordByte(aSpans[len(aSpans)-1], true)), aSpans[len(aSpans)-1].seq, Altered, false},
		{"sealed: a length field damaged, sidecar kept", inFile(sealed, func(b []byte) []byte {
			b[s1.start] ^= 0x80
			return b
		}), s1.seq, Altered, true},
		{"sealed: a length field damaged, sidecar gone", func(t *testing.T, dir string) {
			inFile(sealed, func(b []byte) []byte {
				b[s1.start+3] ^= 0x10
				return b
			})(t, dir)
			os.Remove(strings.TrimSuffix(rel(dir, base, sealed), ".seg") + ".idx")
		}, s1.seq, Altered, true},
		{"a sealed segment deleted", func(t *testing.T, dir string) {
			os.Remove(rel(dir, base, sealed))
		}, sSpans[0].seq, Removed, true},
		{"a sealed segment truncated mid-frame", inFile(sealed, func(b []byte) []byte { return b[:s1.start+40] }), s1.seq, Altered, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "c")
			copyTree(t, base, dir)
			tc.edit(t, dir)
			check := func(s *Store, how string) {
				t.Helper()
				v := verify(t, s)
				if v.OK() || v.Problem.Seq != tc.seq || (tc.kind != "" && v.Problem.Kind != tc.kind) {
					t.Fatalf("%s: verify %+v %v, want record %d %s", how, v, v.Problem, tc.seq, tc.kind)
				}
				t.Logf("%s: %v", how, v.Problem)
			}
			ro := advOptions(dir)
			ro.Signer = nil
			r := openStore(t, ro)
			check(r, "read-only")
			r.Close()
			s, err := Open(advOptions(dir))
			if !tc.writable {
				if err == nil {
					s.Close()
					t.Fatal("writable open accepted a last record that does not chain")
				}
				return
			}
			if err != nil {
				t.Fatalf("writable open: %v", err)
			}
			defer s.Close()
			check(s, "writable")
			if _, err := s.Prune(context.Background(), time.Now().Add(1000*time.Hour)); err == nil {
				t.Fatal("prune of a damaged chain accepted")
			}
		})
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// TestAdvForgedSidecar: a sidecar edited to point at the wrong frames
// (checksum fixed, size matching: no crash leaves one) is trusted, but
// reads stay safe: Get refuses a record it cannot find under its own
// seq and never returns another record; Verify walks the segment itself.
func TestAdvForgedSidecar(t *testing.T) {
	base := advFixture(t, 16, true)
	sides, _ := filepath.Glob(filepath.Join(base, "log", "*.idx"))
	b, _ := os.ReadFile(sides[1])
	offs := b[sideHead:]
	rot := append(bytes.Clone(offs[8:]), offs[:8]...)
	copy(offs, rot)
	binary.BigEndian.PutUint32(b[32:], crc32c(offs))
	os.WriteFile(sides[1], b, 0o644)
	s := openStore(t, advOptions(base))
	defer s.Close()
	refused := 0
	for q := uint64(1); q <= 2*advCalls; q++ {
		e, err := s.Get(context.Background(), q)
		if err != nil {
			refused++
			continue
		}
		if e.Seq != q || e.Record.Seq != q {
			t.Fatalf("get %d returned record %d", q, e.Record.Seq)
		}
	}
	if v := verify(t, s); !v.OK() {
		t.Fatalf("verify: %v", v.Problem)
	}
	t.Logf("%d records refused through the forged sidecar", refused)
}

// TestAdvConcurrent: Begin/Finish from many goroutines while Prune,
// Backup, Query, Export (from a seq inside the active segment), Proof and
// Verify run (run it with -race). Every backup restores to a chain that
// verifies, every acknowledged record that retention keeps is readable.
func TestAdvConcurrent(t *testing.T) {
	smallSegments(t, 8<<10)
	ctx := context.Background()
	opt := testOptions(t.TempDir())
	opt.CheckpointEvery = 16
	opt.IndexFlushEntries = 256
	opt.Services = map[string]Policy{"svc0": {Retention: time.Millisecond}} // svc1: forever
	s := openStore(t, opt)
	defer s.Close()
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var kept []uint64 // acknowledged svc1 records
	for w := range 6 {
		wg.Go(func() {
			for i := w; !stopped(); i += 6 {
				rq, rc := call(t, s, i)
				if i%2 == 1 {
					mu.Lock()
					kept = append(kept, rq.Seq, rc.Seq)
					mu.Unlock()
				}
			}
		})
	}
	reader := func(f func() error) {
		wg.Go(func() {
			for !stopped() {
				if err := f(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	reader(func() error {
		p, err := s.Query(ctx, Query{Service: "svc1", Desc: true, Limit: 10})
		for _, e := range p.Entries {
			if e.Record.Service != "svc1" {
				return fmt.Errorf("query svc1 returned %d of %s", e.Seq, e.Record.Service)
			}
		}
		return err
	})
	reader(func() error {
		v, err := Verify(ctx, s, testPub)
		if err == nil && !v.OK() {
			err = v.Problem
		}
		return err
	})
	reader(func() error {
		h := s.Head().Seq
		if h < 3 {
			return nil
		}
		var buf bytes.Buffer
		if _, err := s.Export(ctx, &buf, ExportOptions{From: h - 2}); err != nil {
			return err
		}
		v, err := VerifyExport(ctx, &buf, testPub)
		if err == nil && !v.OK() {
			err = v.Problem
		}
		return err
	})
	reader(func() error {
		mu.Lock()
		var q uint64
		if len(kept) > 0 {
			q = kept[len(kept)-1]
		}
		mu.Unlock()
		if q == 0 {
			return nil
		}
		p, err := s.Proof(ctx, q)
		if err == nil {
			err = VerifyProof(testPub, p)
		}
		return err
	})
	var backups [][]byte
	for i := range 8 {
		time.Sleep(10 * time.Millisecond) // let records expire and accumulate
		if i%2 == 0 {
			if _, err := s.Prune(ctx, time.Now()); err != nil {
				t.Fatal(err)
			}
		} else {
			var b bytes.Buffer
			if err := s.Backup(ctx, &b); err != nil {
				t.Fatal(err)
			}
			backups = append(backups, b.Bytes())
		}
	}
	close(stop)
	wg.Wait()
	for i, b := range backups {
		dir := filepath.Join(t.TempDir(), "r")
		if err := Restore(ctx, dir, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		r := openStore(t, testOptions(dir)) // writable: the checkpoints must not be ahead of the log
		h := r.Head()
		if rq, _ := call(t, r, 1); rq.Seq != h.Seq+1 {
			t.Fatalf("backup %d: continued at %d after %d", i, rq.Seq, h.Seq)
		}
		if v := verify(t, r); !v.OK() {
			t.Fatalf("backup %d: %+v %v", i, v, v.Problem)
		}
		r.Close()
	}
	for _, q := range kept {
		if e, err := s.Get(ctx, q); err != nil || e.Redacted {
			t.Fatalf("kept record %d: %v", q, err)
		}
	}
	if v := verify(t, s); !v.OK() || v.Last != s.Head().Seq {
		t.Fatalf("verify: %+v %v", v, v.Problem)
	}
	t.Logf("%d records, %d kept, %d backups", s.Head().Seq, len(kept), len(backups))
}

// TestAdvInterruptedPrune: a prune that deletes whole segments, rewrites
// the one its anchor falls in and redacts records in later ones is
// interrupted at each step: the store holds the new anchor but one
// segment as it was before the prune (deleted not yet, or its rewrite not
// yet renamed, with its old sidecar). Open recovers the same head, Verify
// passes, queries match a scan, the next Prune finishes the job.
func TestAdvInterruptedPrune(t *testing.T) {
	smallSegments(t, 4<<10)
	ctx := context.Background()
	opt := testOptions(t.TempDir())
	opt.CheckpointEvery = 16
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}} // svc1: forever
	s := openStore(t, opt)
	// Calls 0–30 are svc0 (expire at the start: an anchor at 63), then they
	// alternate (svc0 ones are redacted).
	for i := range 90 {
		r := request(i)
		if i < 30 {
			r.Service = "svc0"
		}
		c, err := s.Begin(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Finish(ctx, outcome(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	head := s.Head()
	before := crashImage(t, s)
	rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour))
	if err != nil || rep.Anchor == nil || rep.Anchor.Seq != 63 || rep.Redacted != 58 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	s.Close()
	after := opt.Dir
	var changed []string // segments the prune deleted or rewrote
	for _, p := range segFiles(t, before) {
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(rel(after, before, p))
		if err != nil || !bytes.Equal(a, b) {
			changed = append(changed, filepath.Base(p))
		}
	}
	if len(changed) < 5 {
		t.Fatalf("the prune changed only %v", changed)
	}
	for _, name := range changed {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "c")
			copyTree(t, after, dir)
			old := filepath.Join(before, "log", name)
			b, _ := os.ReadFile(old)
			os.WriteFile(filepath.Join(dir, "log", name), b, 0o644)
			idx := strings.TrimSuffix(name, ".seg") + ".idx"
			if x, err := os.ReadFile(filepath.Join(before, "log", idx)); err == nil {
				os.WriteFile(filepath.Join(dir, "log", idx), x, 0o644)
			}
			o := opt
			o.Dir = dir
			s := openStore(t, o)
			defer s.Close()
			if h := s.Head(); h != head {
				t.Fatalf("head %+v, want %+v", h, head)
			}
			if v := verify(t, s); !v.OK() || v.First != 63 || v.Last != head.Seq {
				t.Fatalf("verify: %+v %v", v, v.Problem)
			}
			checkQueriesMatchScan(t, s)
			if _, err := s.Prune(ctx, time.Now().Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			v := verify(t, s)
			if !v.OK() || v.First != 63 || v.Last != head.Seq || v.Redacted != 58 {
				t.Fatalf("verify after the next prune: %+v %v", v, v.Problem)
			}
			for _, p := range segFiles(t, dir) {
				b, _ := os.ReadFile(p)
				if bytes.Contains(b, []byte(`"service":"svc0"`)) {
					t.Fatalf("%s still holds an expired record after the next prune", p)
				}
			}
			rq, _ := call(t, s, 1)
			if rq.Seq != head.Seq+1 {
				t.Fatalf("continued at %d", rq.Seq)
			}
		})
	}
}

// TestAdvDamageIsNotHidden: in a sealed segment without its sidecar, a
// damaged length field hides where the frames after it start. Those
// records are behind damage, not pruned: Get refuses them as damaged
// (not ErrNotFound) and a query that reaches them fails instead of
// silently leaving them out.
func TestAdvDamageIsNotHidden(t *testing.T) {
	base := advFixture(t, 16, true)
	segs := segFiles(t, base)
	sealed := segs[len(segs)/2]
	sp := frameSpans(t, sealed)
	b, _ := os.ReadFile(sealed)
	b[sp[1].start+3] ^= 0x10
	os.WriteFile(sealed, b, 0o644)
	os.Remove(strings.TrimSuffix(sealed, ".seg") + ".idx")
	s := openStore(t, advOptions(base))
	defer s.Close()
	ctx := context.Background()
	for _, f := range sp[1:] {
		if _, err := s.Get(ctx, f.seq); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("get %d behind the damage: %v", f.seq, err)
		}
	}
	if _, err := s.Get(ctx, sp[0].seq); err != nil {
		t.Fatalf("get %d before the damage: %v", sp[0].seq, err)
	}
	if _, err := s.Get(ctx, 2*advCalls+1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after the head: %v", err)
	}
	q := Query{Service: "svc0", Limit: 1000}
	if p, err := s.Query(ctx, q); err == nil {
		t.Fatalf("a query through the damage answered %d records and no error", len(p.Entries))
	}
}

// TestAdvSignedTailNotCut: the last record is complete but fails its
// checksum (bit rot) and a checkpoint signs it: that is damage, not a torn
// write — a writable Open refuses before it changes any file, and a
// read-only one lets Verify name the record.
func TestAdvSignedTailNotCut(t *testing.T) {
	dir := advFixture(t, 64, true) // closed cleanly: the last checkpoint signs the head
	segs := segFiles(t, dir)
	last := segs[len(segs)-1]
	b, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	spans := frameSpans(t, last)
	head := spans[len(spans)-1].seq
	b[len(b)-1] ^= 1
	if err := os.WriteFile(last, b, 0o644); err != nil {
		t.Fatal(err)
	}
	err = openErr(advOptions(dir))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("in record %d, which the checkpoint at %d signs", head, head)) {
		t.Fatalf("writable open: %v", err)
	}
	if after, _ := os.ReadFile(last); !bytes.Equal(after, b) {
		t.Fatal("the refused open changed the segment")
	}
	if torn, _ := filepath.Glob(last + ".torn-*"); len(torn) != 0 {
		t.Fatalf("bytes moved aside: %v", torn)
	}
	r := openReadOnly(t, dir)
	if v := verify(t, r); v.Problem == nil || v.Problem.Seq != head {
		t.Fatalf("verify: %+v %v", v, v.Problem)
	}
}

// TestAdvForgedCheckpoint: a checkpoint frame appended with a good
// checksum but no valid signature (or a store opened with another key)
// makes a writable Open refuse, naming the checkpoint and the key, before
// anything is written.
func TestAdvForgedCheckpoint(t *testing.T) {
	dir := advFixture(t, 64, true)
	other := advOptions(dir)
	other.Signer = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	if err := openErr(other); err == nil || !strings.Contains(err.Error(), "does not verify under this store's key") {
		t.Fatalf("open with another key: %v", err)
	}
	path := filepath.Join(dir, "checkpoints")
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := encodeCkFrame(1<<40, Hash{}, time.Now(), make([]byte, ed25519.SignatureSize))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(bytes.Clone(before), forged...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := openErr(advOptions(dir)); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("last checkpoint (record %d) does not verify", uint64(1<<40))) {
		t.Fatalf("open with a forged checkpoint: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, append(before, forged...)) {
		t.Fatal("the refused open changed the checkpoints file")
	}
}
