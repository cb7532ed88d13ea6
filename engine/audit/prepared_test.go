package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// preparedSegments makes segments of size bytes, prepared once a growing
// one holds after bytes, for the test.
func preparedSegments(t *testing.T, size, after int64) {
	smallSegments(t, size)
	old := prepareAfter
	prepareAfter = after
	t.Cleanup(func() { prepareAfter = old })
}

// waitPrepared calls until the active segment is a prepared one.
func waitPrepared(t *testing.T, s *Store, from int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := from; ; i++ {
		call(t, s, i)
		s.lg.mu.RLock()
		prepared := s.lg.active().prepared
		s.lg.mu.RUnlock()
		if prepared > 0 {
			return i + 1
		}
		if time.Now().After(deadline) {
			t.Fatal("the log never moved to a prepared segment")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPreparedSegments: a busy log moves to pre-zeroed segments and rolls
// from one to the next; sealed segments keep no zeros; a clean reopen and
// a crash image (zeros after the last frame) both continue the chain in
// the prepared segment; close leaves no prepared file behind.
func TestPreparedSegments(t *testing.T) {
	preparedSegments(t, 64<<10, 8<<10)
	dir := t.TempDir()
	s := openStore(t, testOptions(dir))
	i := waitPrepared(t, s, 0)
	for range 200 { // past several prepared segments
		call(t, s, i)
		i++
	}
	segs := segFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	for _, p := range segs[:len(segs)-1] {
		b, _ := os.ReadFile(p)
		if len(b) == 0 || b[len(b)-1] == 0 {
			t.Fatalf("sealed segment %s keeps zeros", p)
		}
	}
	active, _ := os.ReadFile(segs[len(segs)-1])
	if int64(len(active)) != segmentSize || active[len(active)-1] != 0 {
		t.Fatalf("active segment: %d bytes, want %d ending in zeros", len(active), segmentSize)
	}
	head := s.Head()
	crash := crashImage(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "log", nextPrepared)); !os.IsNotExist(err) {
		t.Fatalf("a prepared segment left after close: %v", err)
	}
	for _, d := range []string{dir, crash} {
		ro := testOptions(d)
		ro.Signer = nil
		r := openStore(t, ro)
		if r.Head() != head {
			t.Fatalf("%s: read-only head %+v, want %+v", d, r.Head(), head)
		}
		r.Close()
		w := openStore(t, testOptions(d))
		if w.Head() != head {
			t.Fatalf("%s: head %+v, want %+v", d, w.Head(), head)
		}
		if saved, _ := filepath.Glob(filepath.Join(d, "log", "*.torn-*")); len(saved) != 0 {
			t.Fatalf("%s: unused zeros saved as torn: %v", d, saved)
		}
		rq, _ := call(t, w, 99999)
		if rq.Seq != head.Seq+1 {
			t.Fatalf("%s: next seq %d", d, rq.Seq)
		}
		if rep := verify(t, w); !rep.OK() || rep.Last != head.Seq+2 {
			t.Fatalf("%s: verify %+v %v", d, rep, rep.Problem)
		}
		w.Close()
	}
}

// queueBatch queues n request records at once, as n calls arriving while
// the writer syncs, so that they go in one batch (n ≤ MaxBatch, well under
// 1 MiB), waits until they are durable and returns the first one's seq.
func queueBatch(t *testing.T, s *Store, n int) uint64 {
	t.Helper()
	ps := make([]*pending, n)
	for k := range ps {
		req := request(10000 + k)
		r, err := s.requestRecord(KindRequest, &req)
		if err != nil {
			t.Fatal(err)
		}
		ps[k] = &pending{payload: appendPayload(nil, &r), terms: indexTerms(&r), done: make(chan struct{}), at: time.Now()}
	}
	s.mu.Lock()
	s.waiting = append(s.waiting, ps...)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	for k, p := range ps {
		<-p.done
		if p.err != nil {
			t.Fatal(p.err)
		}
		if k > 0 && p.rc.Seq != ps[0].rc.Seq+uint64(k) {
			t.Fatalf("the batch's records are not contiguous")
		}
	}
	return ps[0].rc.Seq
}

// busyPrepared opens a store in dir with prepared segments in use (small
// ones, see preparedSegments), some calls in it, and last a batch of 12
// records queued at once; it returns the store and that batch's first seq.
func busyPrepared(t *testing.T, opt Options) (*Store, uint64) {
	t.Helper()
	s := openStore(t, opt)
	i := waitPrepared(t, s, 0)
	for range 20 {
		call(t, s, i)
		i++
	}
	return s, queueBatch(t, s, 12)
}

// holeInLastBatch writes a crash image of s in which a power loss cut the
// last batch, queued by queueBatch, of the active (prepared) segment: the
// first sector boundary after the start of frame seq begins 512 bytes that
// read as zeros, the sectors after them were written. It returns the image,
// where the first frame the hole touches starts, and that frame's seq.
func holeInLastBatch(t *testing.T, s *Store, seq uint64) (string, int64, uint64) {
	t.Helper()
	dir := crashImage(t, s)
	segs := segFiles(t, dir)
	seg := segs[len(segs)-1]
	spans := frameSpans(t, seg)
	var at int64 = -1
	for _, f := range spans {
		if f.seq == seq {
			at = f.start
		}
	}
	if at < 0 {
		t.Fatalf("no frame %d in the active segment", seq)
	}
	b, _ := os.ReadFile(seg)
	sector := (at + 511) / 512 * 512
	last := spans[len(spans)-1].end
	if sector+512 >= last {
		t.Fatalf("frame %d too near the end for a hole with data after it", seq)
	}
	clear(b[sector : sector+512])
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range spans {
		if f.end > sector {
			return dir, f.start, f.seq
		}
	}
	t.Fatal("no frame under the hole")
	return "", 0, 0
}

// TestTornBatchInPreparedSegment: a hole a power loss left in the last
// batch (zeros, written bytes after them, then the prepared zeros) is cut
// and saved aside — none of it was acknowledged — unless a checkpoint
// signs it, then the store refuses to open. The same hole with frames of
// several batches after it is damage (prepared_adv_test.go).
func TestTornBatchInPreparedSegment(t *testing.T) {
	preparedSegments(t, 256<<10, 8<<10)
	opt := testOptions(t.TempDir())
	opt.CheckpointEvery = 1 << 20
	opt.CheckpointInterval = time.Hour
	s, first := busyPrepared(t, opt)
	defer s.Close()

	dir, at, cut := holeInLastBatch(t, s, first+3)
	w := openStore(t, testOptions(dir))
	if got := w.Head().Seq; got != cut-1 {
		t.Fatalf("head %d after the torn batch, want %d", got, cut-1)
	}
	saved, _ := filepath.Glob(filepath.Join(dir, "log", "*.torn-*"))
	if len(saved) != 1 || !strings.HasSuffix(saved[0], ".torn-"+strconv.FormatInt(at, 10)) {
		t.Fatalf("saved aside: %v, want one at %d", saved, at)
	}
	call(t, w, 1000)
	if rep := verify(t, w); !rep.OK() || rep.Last != cut+1 {
		t.Fatalf("verify: %+v %v", rep, rep.Problem)
	}
	w.Close()

	// Signed by a checkpoint: synced before the checkpoint was written, so
	// not a torn batch but damage.
	if _, err := s.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Kept and reported when the scan finds the frames after the hole,
	// refused when the hole hides where they start; never cut.
	head := s.Head()
	dir, _, cut = holeInLastBatch(t, s, first+3)
	if w, err := Open(testOptions(dir)); err == nil {
		defer w.Close()
		if w.Head() != head || !slices.Contains(w.Damaged(), cut) {
			t.Fatalf("a hole in signed records: head %+v (want %+v), damaged %v (want %d among them)", w.Head(), head, w.Damaged(), cut)
		}
	} else if !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("refused with %v", err)
	}
	if saved, _ := filepath.Glob(filepath.Join(dir, "log", "*.torn-*")); len(saved) != 0 {
		t.Fatalf("signed records cut: %v", saved)
	}
}

// TestPreparedSegmentsKeepTheFloor: no segment is prepared without room
// for two segments above MinFreeSpace (the zeros would turn calls away
// early), and when the floor is reached an unused prepared segment is
// removed, giving its space back.
func TestPreparedSegmentsKeepTheFloor(t *testing.T) {
	preparedSegments(t, 64<<10, 8<<10)
	var free atomic.Uint64
	old := statFree
	statFree = func(string) (uint64, bool) { return free.Load(), true }
	t.Cleanup(func() { statFree = old })
	opt := testOptions(t.TempDir())
	opt.MinFreeSpace = 1 << 30
	next := filepath.Join(opt.Dir, "log", nextPrepared)

	free.Store(1<<30 + 100<<10) // room for records, not for two segments
	s := openStore(t, opt)
	defer s.Close()
	for i := range 40 { // well past prepareAfter
		call(t, s, i)
	}
	s.lg.mu.RLock()
	prepared := s.lg.active().prepared
	s.lg.mu.RUnlock()
	if _, err := os.Stat(next); !os.IsNotExist(err) || prepared != 0 {
		t.Fatalf("prepared without room above the floor: next.tmp %v, active prepared %d", err, prepared)
	}

	free.Store(1 << 40)
	time.Sleep(1100 * time.Millisecond) // past the retry delay
	i := waitPrepared(t, s, 40)
	deadline := time.Now().Add(10 * time.Second)
	for { // the next one, being prepared ahead
		if _, err := os.Stat(next); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no segment prepared ahead")
		}
		call(t, s, i)
		i++
	}

	free.Store(1<<30 - 1)        // below the floor
	time.Sleep(2 * spaceRecheck) // the writer's last free-space answer is stale
	if _, err := s.Begin(context.Background(), request(i)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Begin below the floor: %v, want ErrUnavailable", err)
	}
	if _, err := os.Stat(next); !os.IsNotExist(err) {
		t.Fatalf("the unused prepared segment kept below the floor: %v", err)
	}
	free.Store(1 << 40)
	call(t, s, i+1)
	if rep := verify(t, s); !rep.OK() {
		t.Fatal(rep.Problem)
	}
}

// TestPreparedLargePages runs the prepared-segment tests as on a machine
// with 64 KiB pages (arm64/ppc64le kernels): padding to a page boundary,
// the first-page rewrite and direct-I/O zeroing with a larger alignment,
// and segments no larger than a page (32 KiB, 64 KiB in these tests).
// (TestPreparedAppendsReadNothing is left out: its mincore vector is
// sized by pageSize, which here is not the kernel's.)
func TestPreparedLargePages(t *testing.T) {
	oldSize, oldPage := pageSize, zeroPage
	pageSize, zeroPage = 64<<10, make([]byte, 64<<10)
	t.Cleanup(func() { pageSize, zeroPage = oldSize, oldPage })
	for name, f := range map[string]func(*testing.T){
		"PreparedSegments":               TestPreparedSegments,
		"TornBatchInPreparedSegment":     TestTornBatchInPreparedSegment,
		"AdvTornBatchPartialFirstSector": TestAdvTornBatchPartialFirstSector,
		"AdvTornBatchCutsAcknowledged":   TestAdvTornBatchCutsAcknowledgedBatches,
		"AdvPreparedRedactedTrailing":    TestAdvPreparedRedactedTrailingZero,
		"AdvTornBatchWiderThanWindow":    TestAdvTornBatchWiderThanWindow,
		"AdvPreparedBackupRestore":       TestAdvPreparedBackupRestoreExport,
		"AdvPreparedReadOnlyTorn":        TestAdvPreparedReadOnlyTornBatchUntouched,
		"AdvPreparedBatchLarger":         TestAdvPreparedBatchLargerThanSegment,
		"AdvPreparedPruneUnderLoad":      TestAdvPreparedPruneUnderLoad,
		"AdvPreparedNoLeak":              TestAdvPreparedNoLeak,
	} {
		t.Run(name, f)
	}
}
