package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Adversarial tests of pre-zeroed ("prepared") segments and of the torn
// batch rule of recovery (segment.go: prepare, openSegment, tornBatch).

// advPreparedOptions: no checkpoint signs the newest records, as between
// two checkpoints of a busy gateway.
func advPreparedOptions(dir string) Options {
	opt := testOptions(dir)
	opt.CheckpointEvery = 1 << 20
	opt.CheckpointInterval = time.Hour
	return opt
}

// lastSegSpans returns the last segment of the image dir and its frames.
func lastSegSpans(t *testing.T, dir string) (string, []frameSpan) {
	t.Helper()
	segs := segFiles(t, dir)
	seg := segs[len(segs)-1]
	return seg, frameSpans(t, seg)
}

// zeroRange clears b[from:to] of the file path.
func zeroRange(t *testing.T, path string, from, to int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	clear(b[from:to])
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// firstTouched returns the first frame of spans with bytes at or after off.
func firstTouched(t *testing.T, spans []frameSpan, off int64) frameSpan {
	t.Helper()
	for _, f := range spans {
		if f.end > off {
			return f
		}
	}
	t.Fatalf("no frame after offset %d", off)
	return frameSpan{}
}

// snapshotFiles reads every regular file under dir.
func snapshotFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() && fi.Name() == "index" {
			// Derived data: a read-only Open replays the log into the
			// index and Close writes a run (as before this change).
			return filepath.SkipDir
		}
		if fi.Mode().IsRegular() && filepath.Base(p) != "audit.lock" {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[p] = b
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAdvTornBatchPartialFirstSector: a batch rarely starts on a sector
// boundary, so its first sector holds the end of the batch before it
// (synced) and its own first bytes. If a power loss leaves exactly that
// sector unwritten (the previous batch's bytes, then zeros) while the
// batch's later sectors reached the disk, no *whole* aligned sector of
// zeros lies after the first trouble; it is a torn batch all the same and
// is cut at its first frame, as for a hole in a later sector
// (TestTornBatchInPreparedSegment). (A first version of tornBatch refused
// such a store.)
func TestAdvTornBatchPartialFirstSector(t *testing.T) {
	preparedSegments(t, 256<<10, 8<<10)
	check := func(t *testing.T, dir, seg string, cut frameSpan, boundary int64) {
		t.Helper()
		zeroRange(t, seg, cut.start, boundary)
		w, err := Open(testOptions(dir))
		if err != nil {
			t.Fatalf("a batch torn in its first sector (zeros %d..%d, the rest of the batch written) refused: %v", cut.start, boundary, err)
		}
		defer w.Close()
		if got := w.Head().Seq; got != cut.seq-1 {
			t.Errorf("head %d after a batch torn in its first sector, want %d (cut there); damaged kept: %v", got, cut.seq-1, w.Damaged())
		}
		if saved, _ := filepath.Glob(seg + ".torn-*"); len(saved) != 1 || !strings.HasSuffix(saved[0], ".torn-"+strconv.FormatInt(cut.start, 10)) {
			t.Errorf("saved aside: %v, want one at %d", saved, cut.start)
		}
	}
	t.Run("mid segment", func(t *testing.T) {
		s, first := busyPrepared(t, advPreparedOptions(t.TempDir()))
		defer s.Close()
		dir := crashImage(t, s)
		seg, spans := lastSegSpans(t, dir)
		for _, f := range spans {
			if f.seq == first {
				if f.start%512 == 0 {
					t.Skip("the batch starts on a sector boundary")
				}
				check(t, dir, seg, f, (f.start/512+1)*512)
				return
			}
		}
		t.Fatal("the batch is not in the last segment")
	})
	t.Run("first batch of a new segment", func(t *testing.T) {
		// Sector 0 holds the magic (written and synced when the segment
		// was made) and the batch's first bytes: never rewritten, it reads
		// as the magic and zeros.
		s := openStore(t, advPreparedOptions(t.TempDir()))
		defer s.Close()
		first := queueBatch(t, s, 12)
		dir := crashImage(t, s)
		seg, spans := lastSegSpans(t, dir)
		if spans[0].seq != first || spans[0].start != int64(len(segMagic)) || spans[len(spans)-1].end < 2048 {
			t.Fatalf("active segment: %+v", spans)
		}
		check(t, dir, seg, spans[0], 512)
	})
}

// TestAdvTornBatchCutsAcknowledgedBatches: only the last batch can be torn
// by a power loss: every earlier one was synced and acknowledged. One
// sector reading as zeros inside an acknowledged batch (a lost write, a
// bad sector, an edit) with acknowledged batches after it — frames with
// different record times — is damage: kept and reported (or the writable
// Open refuses), never cut, and a read-only Open does not hide the records
// after it from Verify. (A first version of tornBatch cut them.)
func TestAdvTornBatchCutsAcknowledgedBatches(t *testing.T) {
	preparedSegments(t, 256<<10, 8<<10)
	opt := advPreparedOptions(t.TempDir())
	opt.MaxBatch = 4 // a batch holds at most 4 records
	s := openStore(t, opt)
	defer s.Close()
	i := waitPrepared(t, s, 0)
	for range 30 { // 60 records, each call's two records in two batches
		call(t, s, i)
		i++
	}
	head := s.Head()
	dir := crashImage(t, s)
	seg, spans := lastSegSpans(t, dir)
	var target frameSpan
	for _, f := range spans {
		if f.seq == head.Seq-40 {
			target = f
		}
	}
	if target.seq == 0 {
		t.Fatalf("record %d not in the active segment", head.Seq-40)
	}
	sector := (target.start + 511) / 512 * 512
	zeroRange(t, seg, sector, sector+512)
	hit := firstTouched(t, spans, sector)
	after := head.Seq - hit.seq
	if after <= uint64(opt.MaxBatch) {
		t.Fatalf("only %d frames after the damaged one", after)
	}

	ro := filepath.Join(t.TempDir(), "ro")
	copyTree(t, dir, ro)
	r := openReadOnly(t, ro)
	if rep := verify(t, r); rep.OK() && rep.Last != head.Seq {
		t.Errorf("read-only: Verify passes over a log missing the %d acknowledged records after a zeroed sector (last %d, head was %d)", after, rep.Last, head.Seq)
	}

	opt.Dir = dir
	w, err := Open(opt)
	if err != nil {
		return // refusing the damaged store keeps the records too
	}
	defer w.Close()
	if got := w.Head().Seq; got != head.Seq {
		saved, _ := filepath.Glob(seg + ".torn-*")
		t.Errorf("writable open dropped acknowledged records %d..%d (%d records from %d+ batches) as a torn batch: head %d, want %d; saved %v",
			hit.seq, head.Seq, after, after/uint64(opt.MaxBatch), got, head.Seq, saved)
	}
}

// TestAdvPreparedRedactedTrailingZero: the zeros at the end of a segment
// are unused (prepared) space, but a frame may itself end in zero bytes: a
// redacted (format 2) entry ends with the raw service name (after the
// 8-byte time: an empty service ends in the time's low byte, zero one time
// in 256), and Begin and Refuse accept a service ending in NUL. Such a
// frame, last in its segment, must still read whole: the rolled segment,
// still the last one, reopens after a clean Close, and the same segment
// sealed without its sidecar verifies. (A first version trimmed the zeros
// before scanning and refused the first, reported the second damaged.)
func TestAdvPreparedRedactedTrailingZero(t *testing.T) {
	const gone = "gone\x00"
	setup := func(t *testing.T, more bool) (Options, Receipt) {
		ctx := context.Background()
		opt := testOptions(t.TempDir())
		opt.Services = map[string]Policy{gone: {Retention: time.Hour}}
		s := openStore(t, opt)
		call(t, s, 1) // svc1: kept forever, so the next one is redacted, not deleted
		if _, err := s.Refuse(ctx, Request{Organisation: "o", Service: gone}, Refusal{Reason: "no grant", Status: 403}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour))
		if err != nil || rep.Redacted != 1 {
			t.Fatalf("prune: %+v %v", rep, err)
		}
		if more {
			call(t, s, 3) // a new segment: the redacted one is sealed, not last
		}
		head := s.Head()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		segs := segFiles(t, opt.Dir)
		b, _ := os.ReadFile(segs[0])
		if b[len(b)-1] != 0 {
			t.Fatalf("the redacted frame does not end in a zero byte")
		}
		return opt, head
	}
	t.Run("last segment", func(t *testing.T) {
		opt, head := setup(t, false)
		w, err := Open(opt)
		if err != nil {
			t.Fatalf("a store closed cleanly after Prune does not reopen: %v", err)
		}
		defer w.Close()
		if w.Head() != head {
			t.Errorf("head %+v, want %+v", w.Head(), head)
		}
		if rep := verify(t, w); !rep.OK() {
			t.Errorf("verify: %v", rep.Problem)
		}
	})
	t.Run("sealed without sidecar", func(t *testing.T) {
		opt, head := setup(t, true)
		segs := segFiles(t, opt.Dir)
		if err := os.Remove(strings.TrimSuffix(segs[0], ".seg") + ".idx"); err != nil {
			t.Fatal(err)
		}
		w, err := Open(opt)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer w.Close()
		if d := w.Damaged(); len(d) != 0 || w.Head() != head {
			t.Errorf("damaged %v, head %+v (want none, %+v)", d, w.Head(), head)
		}
		if rep := verify(t, w); !rep.OK() {
			t.Errorf("a redacted record ending in a zero byte is reported as damage: %v", rep.Problem)
		}
	})
}

// TestAdvTornBatchWiderThanWindow: tornWindow (2 MiB) holds only if a
// batch's frames span at most 1 MiB. A frame adds ~140 bytes to each
// record (header 16, entry head 65, the {"v","seq","time"} prefix); a
// refusal's payload is ~100 bytes. With MaxBatch raised (a documented
// option) 8256 small records queued at once would span ~2.2 MiB in one
// batch; the writer caps batches by their framed size, so they go in
// several, each within the window, and a power loss that leaves a sector
// of the last one unwritten is a torn batch.
func TestAdvTornBatchWiderThanWindow(t *testing.T) {
	preparedSegments(t, 8<<20, 8<<10)
	opt := advPreparedOptions(t.TempDir())
	opt.MaxBatch = 1 << 15
	opt.WriteTimeout = time.Minute
	var mu sync.Mutex
	var batches []int
	opt.OnCommit = func(n int, _ time.Duration, _ error) {
		mu.Lock()
		batches = append(batches, n)
		mu.Unlock()
	}
	s := openStore(t, opt)
	defer s.Close()
	waitPrepared(t, s, 0)

	req := Request{Organisation: "o", Service: "s"}
	r, err := s.requestRecord(KindRefused, &req)
	if err != nil {
		t.Fatal(err)
	}
	r.Decision = &Decision{Allowed: false, Reason: "ip"}
	payload := appendPayload(nil, &r)
	n := maxBatchBytes / len(payload) // one batch: what take allows
	ps := make([]*pending, n)
	for k := range ps {
		ps[k] = &pending{payload: bytes.Clone(payload), terms: indexTerms(&r), done: make(chan struct{}), at: time.Now()}
	}
	mu.Lock()
	batches = batches[:0]
	mu.Unlock()
	first := s.Head().Seq + 1
	s.mu.Lock() // what n concurrent Refuse calls queue while the writer syncs
	s.waiting = append(s.waiting, ps...)
	s.mu.Unlock()
	s.wake <- struct{}{}
	for _, p := range ps {
		<-p.done
		if p.err != nil {
			t.Fatal(p.err)
		}
	}
	mu.Lock()
	got := slices.Clone(batches)
	mu.Unlock()
	if len(got) < 2 {
		t.Fatalf("the %d records went in batches %v, want them split by their framed size", n, got)
	}
	dir := crashImage(t, s)
	seg, spans := lastSegSpans(t, dir)
	spanOf := func(from, to uint64) (int64, int64) { // of frames from..to
		start, end := int64(-1), int64(-1)
		for _, f := range spans {
			if f.seq == from {
				start = f.start
			}
			if f.seq == to {
				end = f.end
			}
		}
		if start < 0 || end < 0 {
			t.Fatalf("frames %d..%d are not in the last segment", from, to)
		}
		return start, end
	}
	seq := first
	var start, end int64
	for _, k := range got {
		if start, end = spanOf(seq, seq+uint64(k)-1); end-start > tornWindow {
			t.Errorf("one batch (%d records of %d-byte payloads) spans %d bytes > tornWindow %d", k, len(payload), end-start, tornWindow)
		}
		seq += uint64(k)
	}
	// The last batch's 3rd sector never written, the rest written.
	hole := (start+511)/512*512 + 1024
	zeroRange(t, seg, hole, hole+512)
	hit := firstTouched(t, spans, hole)
	w, err := Open(testOptions(dir))
	if err != nil {
		t.Fatalf("a torn batch of small records (hole %d bytes before its end) refused: %v", end-hole, err)
	}
	defer w.Close()
	if h := w.Head().Seq; h != hit.seq-1 {
		t.Errorf("head %d, want %d (the torn batch cut)", h, hit.seq-1)
	}
}

// TestAdvPreparedBackupRestoreExport (holds): Backup of a store whose
// active segment is prepared copies the written bytes only (no zeros);
// the restored store opens, verifies, continues and then prepares its own
// segments; Export from the prepared segment verifies.
func TestAdvPreparedBackupRestoreExport(t *testing.T) {
	preparedSegments(t, 64<<10, 8<<10)
	ctx := context.Background()
	s := openStore(t, testOptions(t.TempDir()))
	defer s.Close()
	i := waitPrepared(t, s, 0)
	for range 10 {
		call(t, s, i)
		i++
	}
	head := s.Head()
	var buf bytes.Buffer
	if err := s.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > int(segmentSize)*len(segFiles(t, s.dir)) || bytes.Contains(buf.Bytes(), make([]byte, 4096)) {
		t.Fatalf("backup holds prepared zeros (%d bytes)", buf.Len())
	}
	var ex bytes.Buffer
	if _, err := s.Export(ctx, &ex, ExportOptions{From: 1, To: head.Seq}); err != nil {
		t.Fatal(err)
	}
	if rep, err := VerifyExport(ctx, &ex, testPub); err != nil || !rep.OK() || rep.Last != head.Seq {
		t.Fatalf("export of a prepared segment: %+v %v", rep, err)
	}
	to := filepath.Join(t.TempDir(), "restored")
	if err := Restore(ctx, to, &buf); err != nil {
		t.Fatal(err)
	}
	r := openStore(t, testOptions(to))
	defer r.Close()
	if r.Head() != head {
		t.Fatalf("restored head %+v, want %+v", r.Head(), head)
	}
	if rep := verify(t, r); !rep.OK() || rep.Last != head.Seq {
		t.Fatalf("restored: %+v %v", rep, rep.Problem)
	}
	j := waitPrepared(t, r, 500)
	for range 60 {
		call(t, r, j)
		j++
	}
	if rep := verify(t, r); !rep.OK() {
		t.Fatalf("restored, continued: %v", rep.Problem)
	}
	// The original goes on too.
	call(t, s, i)
	if rep := verify(t, s); !rep.OK() || rep.Last != head.Seq+2 {
		t.Fatalf("original: %+v %v", rep, rep.Problem)
	}
}

// TestAdvPreparedReadOnlyTornBatchUntouched (holds): a read-only open of a
// crash image with a torn batch, a leftover next.tmp and a sealed segment
// whose zeros were not cut changes no file; Verify stops before the torn
// batch. The writable open then cuts the zeros of the sealed segment,
// removes next.tmp, cuts the torn batch and chains on.
func TestAdvPreparedReadOnlyTornBatchUntouched(t *testing.T) {
	preparedSegments(t, 256<<10, 8<<10)
	s, first := busyPrepared(t, advPreparedOptions(t.TempDir()))
	defer s.Close()
	head := s.Head()
	dir, _, cut := holeInLastBatch(t, s, first+3)
	if err := os.WriteFile(filepath.Join(dir, "log", nextPrepared), []byte(segMagic+"\x00\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshotFiles(t, dir)
	ro := testOptions(dir)
	ro.Signer = nil
	r := openStore(t, ro)
	rep := verify(t, r)
	if rep.Last != cut-1 {
		t.Errorf("read-only verify %+v, want last %d", rep, cut-1)
	}
	r.Close()
	after := snapshotFiles(t, dir)
	if len(after) != len(before) {
		var added []string
		for p := range after {
			if _, ok := before[p]; !ok {
				added = append(added, p)
			}
		}
		t.Fatalf("read-only open changed the files: %d -> %d, added %v", len(before), len(after), added)
	}
	for p, b := range before {
		if !bytes.Equal(after[p], b) {
			t.Fatalf("read-only open changed %s", p)
		}
	}

	// A sealed segment that kept its zeros (a prepared one followed by a
	// newer segment): read-only leaves it, writable cuts them.
	dir2 := crashImage(t, s)
	segs := segFiles(t, dir2)
	prep := segs[len(segs)-1]
	if err := os.WriteFile(segPath(filepath.Join(dir2, "log"), head.Seq+1, ".seg"), []byte(segMagic), 0o600); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(prep)
	r = openStore(t, ro2(dir2))
	if r.Head() != head {
		t.Errorf("read-only head %+v, want %+v", r.Head(), head)
	}
	if rep := verify(t, r); !rep.OK() {
		t.Errorf("read-only verify: %v", rep.Problem)
	}
	r.Close()
	if st2, _ := os.Stat(prep); st2.Size() != st.Size() {
		t.Errorf("read-only open cut a sealed segment's zeros")
	}
	w := openStore(t, testOptions(dir2))
	if w.Head() != head {
		t.Errorf("head %+v, want %+v", w.Head(), head)
	}
	if b, _ := os.ReadFile(prep); len(b) == 0 || b[len(b)-1] == 0 {
		t.Errorf("writable open kept a sealed segment's zeros")
	}
	call(t, w, 900)
	if rep := verify(t, w); !rep.OK() || rep.Last != head.Seq+2 {
		t.Errorf("verify %+v %v", rep, rep.Problem)
	}
	w.Close()

	w = openStore(t, testOptions(dir))
	defer w.Close()
	if w.Head().Seq != cut-1 {
		t.Errorf("writable head %d, want %d", w.Head().Seq, cut-1)
	}
	if _, err := os.Stat(filepath.Join(dir, "log", nextPrepared)); !os.IsNotExist(err) {
		t.Errorf("leftover next.tmp kept by a writable open: %v", err)
	}
}

func ro2(dir string) Options {
	o := testOptions(dir)
	o.Signer = nil
	return o
}

// TestAdvPreparedBatchLargerThanSegment (holds): a record larger than a
// prepared segment rolls to a new segment and grows it past its zeros;
// the next batch rolls again; sealed segments keep no zeros; a crash image
// taken with the big record last, and a clean reopen, continue the chain.
func TestAdvPreparedBatchLargerThanSegment(t *testing.T) {
	preparedSegments(t, 64<<10, 8<<10)
	ctx := context.Background()
	opt := testOptions(t.TempDir())
	opt.Default = Policy{StoreBodies: true}
	s := openStore(t, opt)
	defer s.Close()
	i := waitPrepared(t, s, 0)
	body := make([]byte, 150<<10)
	rand.Read(body)
	var images []string
	var heads []Receipt
	for k := range 2 {
		req := request(1000 + k)
		req.Body = body
		if _, err := s.Begin(ctx, req); err != nil {
			t.Fatal(err)
		}
		heads = append(heads, s.Head())
		images = append(images, crashImage(t, s))
		call(t, s, i)
		i++
	}
	for range 40 {
		call(t, s, i)
		i++
	}
	segs := segFiles(t, opt.Dir)
	big := 0
	for _, p := range segs[:len(segs)-1] {
		b, _ := os.ReadFile(p)
		if len(b) > 0 && b[len(b)-1] == 0 {
			t.Errorf("sealed segment %s keeps zeros", p)
		}
		if int64(len(b)) > segmentSize {
			big++
		}
	}
	if big < 2 {
		t.Errorf("%d segments larger than a prepared one, want 2", big)
	}
	if rep := verify(t, s); !rep.OK() {
		t.Fatalf("verify: %v", rep.Problem)
	}
	for k, d := range images {
		w := openStore(t, testOptions(d))
		if w.Head() != heads[k] {
			t.Errorf("image %d: head %+v, want %+v", k, w.Head(), heads[k])
		}
		if e, err := w.Get(ctx, heads[k].Seq); err != nil || e.Seq != heads[k].Seq {
			t.Errorf("image %d: big record: %v", k, err)
		}
		call(t, w, 77)
		if rep := verify(t, w); !rep.OK() {
			t.Errorf("image %d: %v", k, rep.Problem)
		}
		w.Close()
	}
}

// TestAdvPreparedPruneUnderLoad (holds, -race): writers roll through
// prepared segments while Prune (which asks the writer to roll and
// rewrites sealed segments), Backup, Verify and Export run; the store
// closes without a next.tmp and reopens verified; every backup restores.
func TestAdvPreparedPruneUnderLoad(t *testing.T) {
	preparedSegments(t, 32<<10, 4<<10)
	ctx := context.Background()
	opt := testOptions(t.TempDir())
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}}
	s := openStore(t, opt)
	waitPrepared(t, s, 0)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				call(t, s, 10000*(g+1)+k)
			}
		}()
	}
	var backups [][]byte
	var pruned uint64
	deadline := time.Now().Add(1500 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		prep, err := s.Prune(ctx, time.Now().Add(2*time.Hour))
		if err != nil {
			t.Errorf("prune: %v", err)
			break
		}
		pruned += prep.Deleted + prep.Redacted
		var b bytes.Buffer
		if err := s.Backup(ctx, &b); err != nil {
			t.Errorf("backup: %v", err)
			break
		}
		if n%3 == 0 {
			backups = append(backups, b.Bytes())
		}
		if rep := verify(t, s); !rep.OK() {
			t.Errorf("verify: %v", rep.Problem)
			break
		}
		var ex bytes.Buffer
		h := s.Head().Seq
		from := uint64(1)
		if h > 20 {
			from = h - 20 // not max(1, h-20): that wraps below 20 (an empty export, once in CI)
		}
		xrep, err := s.Export(ctx, &ex, ExportOptions{From: from, To: h})
		if err != nil {
			t.Errorf("export: %v", err)
			break
		}
		if rep, err := VerifyExport(ctx, &ex, testPub); err != nil || !rep.OK() {
			// The state around it, for whoever meets a failure here.
			s.mu.Lock()
			pub := s.pubw
			s.mu.Unlock()
			var views []string
			for _, v := range s.lg.snapshot() {
				views = append(views, fmt.Sprintf("%s first %d count %d size %d sealed %v", filepath.Base(v.g.path), v.first, v.count, v.size, v.sealed))
				v.g.release()
			}
			t.Errorf("verify export: %+v %v\nexport of %d..%d: %+v; published first %d last %d; prune report %+v; segments %v",
				rep, err, from, h, xrep, pub.first, pub.seq, prep, views)
			break
		}
	}
	close(stop)
	wg.Wait()
	if pruned == 0 {
		t.Error("Prune never deleted or redacted anything")
	}
	head := s.Head()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(opt.Dir, "log", nextPrepared)); !os.IsNotExist(err) {
		t.Errorf("next.tmp left after close: %v", err)
	}
	w := openStore(t, opt)
	if w.Head() != head {
		t.Errorf("reopened head %+v, want %+v", w.Head(), head)
	}
	if rep := verify(t, w); !rep.OK() {
		t.Errorf("reopened: %v", rep.Problem)
	}
	w.Close()
	for k, b := range backups {
		to := filepath.Join(t.TempDir(), fmt.Sprint(k))
		if err := Restore(ctx, to, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		r := openStore(t, testOptions(to))
		if rep := verify(t, r); !rep.OK() {
			t.Errorf("backup %d: %v", k, rep.Problem)
		}
		r.Close()
	}
}

// TestAdvPreparedNoLeak (holds): opening, moving to prepared segments and
// closing (also while the next preparation is still being written) leaks
// no file descriptor and leaves no next.tmp.
func TestAdvPreparedNoLeak(t *testing.T) {
	preparedSegments(t, 1<<20, 8<<10)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(ents)
	}
	var dir string
	cycle := func() {
		dir = t.TempDir()
		s := openStore(t, testOptions(dir))
		waitPrepared(t, s, 0) // create started the next preparation: close at once
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "log", nextPrepared)); !os.IsNotExist(err) {
			t.Fatalf("next.tmp left after close: %v", err)
		}
	}
	cycle()
	n := fds()
	for range 3 {
		cycle()
	}
	if m := fds(); m > n {
		t.Errorf("file descriptors: %d after the first cycle, %d after three more", n, m)
	}
	s := openStore(t, testOptions(dir))
	defer s.Close()
	if rep := verify(t, s); !rep.OK() {
		t.Errorf("verify: %v", rep.Problem)
	}
}
