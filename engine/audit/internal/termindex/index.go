// Package termindex is the audit trail's secondary index: a set of (term, seq)
// pairs, where term is a 64-bit hash the caller makes of a (field, value) pair and
// seq is the position of a record in the caller's log. It is derived data: the
// caller can rebuild it from its log, so Add is not durable and cheap, and Durable
// says how far the caller must replay after a crash.
//
// Pairs go to a memtable, are written as immutable sorted run files when it fills
// (in the background), and runs of similar size are merged (in the background) so
// that their number stays logarithmic. The package knows nothing of records,
// fields or hashing.
//
// Lock order: flushMu, forgetMu or mergeMu (never two of them), then mu. mu is never held during I/O.
package termindex

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Options configure Open.
type Options struct {
	Dir          string       // run files live here (created if missing)
	FlushEntries int          // entries in memory before they are written as a run (default 1<<20)
	Logger       *slog.Logger // default slog.Default()
	// ReadOnly writes nothing under Dir (which need not exist): no runs,
	// merges or deletions; pairs added stay in memory until Close. For a
	// store opened only to read, whose index may lag its log a little.
	// With no Dir it is an index in memory only.
	ReadOnly bool

	blockEntries int                     // tests: entries per run block
	hook         func(point string) bool // tests: return true to "crash" background work at point
	noMerge      bool                    // benchmarks: keep every flushed run
}

// ErrClosed is returned by operations on a closed Index.
var ErrClosed = errors.New("termindex: closed")

// ErrReadOnly is returned by Flush and Forget on a read-only Index.
var ErrReadOnly = errors.New("termindex: read-only")

// errCrashed stops background work in crash tests.
var errCrashed = errors.New("termindex: simulated crash")

const forgetFile = "forget"

// Stats describe the index at one moment.
type Stats struct {
	Runs        int    // run files in use
	MemEntries  int    // pairs in memory (active and frozen memtables)
	DiskEntries uint64 // pairs in run files (duplicates across runs counted)
	Frozen      int    // memtables waiting to be written
	Flushes     uint64 // runs written from memory since Open
	Merges      uint64 // merges completed since Open
}

// Index is a term index. One goroutine calls Add; any number call Seqs.
type Index struct {
	dir          string
	flushEntries int
	blockEntries int
	log          *slog.Logger
	hook         func(string) bool
	noMerge      bool
	readOnly     bool

	flushMu  sync.Mutex // serialises writing frozen memtables
	sortBuf  []pair     // guarded by flushMu
	forgetMu sync.Mutex // serialises Forget
	mergeMu  sync.Mutex // serialises merges

	mu       sync.RWMutex
	mem      *memtable
	frozen   []*memtable // oldest first
	runs     []*run      // sorted by (name.lo, name.gen)
	durable  uint64      // every pair with seq ≤ durable is in a synced run
	forget   uint64      // pairs with seq < forget are gone
	nextGen  uint64
	writeErr error
	closed   bool
	crashed  bool
	flushes  uint64
	merges   uint64

	lastSeq   uint64 // writer only
	sealBuf   []pair // writer only
	flushKick chan struct{}
	mergeKick chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
}

// Open opens (or creates) the index in opt.Dir. It deletes temporary files and the
// runs a completed merge had replaced, left by a crash; a run file that fails its
// checks is an error naming the file.
func Open(opt Options) (*Index, error) {
	if opt.Dir == "" && !opt.ReadOnly {
		return nil, errors.New("termindex: no directory")
	}
	if opt.FlushEntries <= 0 {
		opt.FlushEntries = 1 << 20
	}
	if opt.FlushEntries > 1<<30 {
		return nil, fmt.Errorf("termindex: FlushEntries %d above 2^30", opt.FlushEntries)
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.blockEntries <= 0 {
		opt.blockEntries = defaultBlockEntries
	}
	if !opt.ReadOnly {
		if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("termindex: %w", err)
		}
	}
	x := &Index{
		dir: opt.Dir, flushEntries: opt.FlushEntries, blockEntries: opt.blockEntries,
		log: opt.Logger.With("component", "termindex"), hook: opt.hook, noMerge: opt.noMerge, readOnly: opt.ReadOnly,
		flushKick: make(chan struct{}, 1), mergeKick: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	var ents []os.DirEntry
	if opt.Dir != "" {
		var err error
		if x.forget, err = readForget(opt.Dir); err != nil {
			return nil, err
		}
		ents, err = os.ReadDir(opt.Dir)
		if err != nil && !(opt.ReadOnly && errors.Is(err, os.ErrNotExist)) {
			return nil, fmt.Errorf("termindex: %w", err)
		}
	}
	var runs []*run
	fail := func(err error) (*Index, error) {
		for _, r := range runs {
			r.unref()
		}
		return nil, err
	}
	for _, e := range ents {
		path := filepath.Join(opt.Dir, e.Name())
		if strings.HasSuffix(e.Name(), tmpSuffix) {
			if opt.ReadOnly {
				continue
			}
			if err := os.Remove(path); err != nil {
				return fail(fmt.Errorf("termindex: %w", err))
			}
			continue
		}
		name, ok := parseRunName(e.Name())
		if !ok {
			continue
		}
		r, err := openRun(path)
		if err != nil {
			return fail(err)
		}
		r.name = name
		runs = append(runs, r)
		x.nextGen = max(x.nextGen, name.gen+1)
	}
	// A merge renames its output before deleting its inputs: an input left by a
	// crash lies inside a merged run of a later generation.
	live := runs[:0]
	for _, r := range runs {
		replaced := false
		for _, m := range runs {
			if m != r && m.merged && m.name.gen > r.name.gen && m.name.contains(r.name) {
				replaced = true
				break
			}
		}
		if replaced || r.maxSeq < x.forget {
			if !opt.ReadOnly {
				x.log.Info("termindex: deleting replaced run", "file", r.path)
				r.obsolete.Store(true)
			}
			r.unref()
			continue
		}
		live = append(live, r)
	}
	slices.SortFunc(live, compareRuns)
	x.runs, x.durable = x.covered(live)
	x.mem = newMemtable(x.durable + 1)
	if !opt.ReadOnly {
		x.wg.Add(2)
		go x.flushLoop()
		go x.mergeLoop()
		kick(x.mergeKick)
	}
	return x, nil
}

// covered returns the runs that answer for every seq from the forget bound
// on without a hole, and the last seq they answer for: Durable after Open.
// A run answers for its name's range (a memtable's, from the seq after the
// previous one's last): a hole means a run file went missing (deleted by
// hand, lost in a copy), and the runs above it are let go, so that the
// caller re-adds those seqs from its log rather than queries silently
// missing the hole's records.
func (x *Index) covered(runs []*run) ([]*run, uint64) {
	end := max(x.forget, 1) - 1
	for i, r := range runs {
		if r.name.lo > end+1 {
			x.log.Warn("termindex: no run file answers for these seqs; the runs above them are let go and the caller re-adds them",
				"seqs", fmt.Sprintf("%d..%d", end+1, r.name.lo-1), "runs", len(runs)-i)
			for _, r := range runs[i:] {
				if !x.readOnly {
					r.obsolete.Store(true)
				}
				r.unref()
			}
			clear(runs[i:])
			return runs[:i], end
		}
		end = max(end, r.name.hi)
	}
	return runs, end
}

func compareRuns(a, b *run) int {
	return cmp.Or(cmp.Compare(a.name.lo, b.name.lo), cmp.Compare(a.name.gen, b.name.gen))
}

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Add records that seq has these terms. Seqs must not decrease from one call to the
// next (it panics if one does: that is a bug in the single writer). All the terms of
// a seq should come in one call, or in calls with no Flush between them: a
// memtable is frozen only when a larger seq arrives, so a run never holds part of a
// seq. Add never waits for I/O; after Close it does nothing.
func (x *Index) Add(seq uint64, terms ...uint64) {
	if seq == 0 || seq < x.lastSeq {
		panic(fmt.Sprintf("termindex: Add(%d) after Add(%d)", seq, x.lastSeq))
	}
	if len(terms) == 0 {
		return
	}
	x.lastSeq = seq
	frozen := false
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return
	}
	m := x.mem
	if m.n >= x.flushEntries && seq > m.maxSeq {
		x.freezeLocked()
		m, frozen = x.mem, true
	}
	if m.n == 0 {
		m.minSeq = seq
	}
	m.maxSeq = seq
	for _, t := range terms {
		m.tail = append(m.tail, pair{t, seq})
	}
	m.n += len(terms)
	tail, chunks := m.tail, m.chunks
	x.mu.Unlock()
	if frozen {
		kick(x.flushKick)
	}
	if len(tail) >= memChunk {
		// Sort and merge outside the lock: only this goroutine changes m, and
		// readers keep using the old tail until the new chunks are published.
		sealed := seal(tail, chunks, &x.sealBuf)
		x.mu.Lock()
		if !m.frozen { // else Flush froze it meanwhile: the flusher sorts the tail
			m.chunks, m.tail = sealed, make([]pair, 0, memChunk)
		}
		x.mu.Unlock()
	}
}

func (x *Index) freezeLocked() {
	if x.mem.n == 0 {
		return
	}
	x.mem.frozen = true
	x.frozen = append(x.frozen, x.mem)
	x.mem = newMemtable(x.mem.maxSeq + 1)
}

// Durable returns a seq d such that every pair with seq ≤ d that was added is in a
// run file synced to disk. After a crash, or a run file lost (Open), re-add the
// pairs of seqs > d.
func (x *Index) Durable() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.durableLocked()
}

func (x *Index) durableLocked() uint64 {
	d := x.durable
	var oldest *memtable
	if len(x.frozen) > 0 {
		oldest = x.frozen[0]
	} else if x.mem.n > 0 {
		oldest = x.mem
	}
	if oldest != nil && oldest.minSeq <= d {
		d = oldest.minSeq - 1
	}
	return d
}

// Flush writes what is in memory as a run and returns once it is durable.
func (x *Index) Flush() error {
	if x.readOnly {
		return ErrReadOnly
	}
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return ErrClosed
	}
	x.freezeLocked()
	x.mu.Unlock()
	return x.flushFrozen()
}

// flushFrozen writes the frozen memtables, oldest first; it stops at the first
// error, leaving that memtable (readable) for the next try.
func (x *Index) flushFrozen() error {
	x.flushMu.Lock()
	defer x.flushMu.Unlock()
	for {
		x.mu.Lock()
		if len(x.frozen) == 0 || x.crashed {
			x.mu.Unlock()
			return nil
		}
		m, below := x.frozen[0], x.forget
		name := runName{lo: m.lo(), hi: m.maxSeq, gen: x.nextGen}
		x.nextGen++
		x.mu.Unlock()
		r, err := x.writeMemtable(m, name, below)
		if errors.Is(err, errCrashed) {
			return nil
		}
		x.mu.Lock()
		if err != nil {
			x.writeErr = err
			x.mu.Unlock()
			x.log.Error("termindex: flush failed; pairs stay in memory until the next flush", "err", err)
			return err
		}
		x.frozen[0] = nil
		x.frozen = x.frozen[1:]
		if r != nil {
			r.name = name
			x.insertRunLocked(r)
		}
		x.durable = max(x.durable, m.maxSeq)
		x.writeErr = nil
		x.flushes++
		x.mu.Unlock()
		kick(x.mergeKick)
	}
}

func (x *Index) writeMemtable(m *memtable, name runName, below uint64) (*run, error) {
	// Readers of a frozen memtable scan its tail unsorted: sort a copy.
	n := m.n
	buf := grow(&x.sortBuf, 2*n+2*len(m.tail))
	tail := sortedByTerm(m.tail, buf[2*n:2*n+len(m.tail)], buf[2*n+len(m.tail):])
	merged := mergeAll(append(slices.Clone(m.chunks), tail), buf[:0:n], buf[n:n:2*n])
	w, err := newRunWriter(x.dir, name, x.blockEntries)
	if err != nil {
		return nil, err
	}
	for _, p := range merged {
		if p.seq >= below {
			w.add(p)
		}
	}
	return x.finishRun(w, false, "flush")
}

// finishRun finishes w's run (merged: a merge's output), syncs and renames
// it, with the crash points what+":synced" and what+":renamed" (tests).
func (x *Index) finishRun(w *runWriter, merged bool, what string) (*run, error) {
	r, err := w.finish(merged)
	if err != nil || r == nil {
		return nil, err
	}
	if x.crash(what + ":synced") {
		r.f.Close()
		return nil, errCrashed
	}
	if err := w.commit(r); err != nil {
		return nil, err
	}
	if x.crash(what + ":renamed") {
		r.f.Close()
		return nil, errCrashed
	}
	return r, nil
}

// crash reports whether the test hook asks background work to die at point; the
// index then does no further I/O (as if the process had been killed).
func (x *Index) crash(point string) bool {
	if x.hook == nil || !x.hook(point) {
		return false
	}
	x.mu.Lock()
	x.crashed = true
	x.mu.Unlock()
	return true
}

func (x *Index) insertRunLocked(r *run) {
	i, _ := slices.BinarySearchFunc(x.runs, r, compareRuns)
	x.runs = slices.Insert(x.runs, i, r)
}

func (x *Index) flushLoop() {
	defer x.wg.Done()
	for {
		select {
		case <-x.stop:
			return
		case <-x.flushKick:
			x.flushFrozen() // errors are logged and kept for Close
		}
	}
}

// Seqs iterates the seqs having term within [lo, hi], ascending or descending. It
// sees at least every pair added before the call, and stays valid while runs are
// merged or deleted. Close the iterator.
func (x *Index) Seqs(term uint64, lo, hi uint64, desc bool) *Iter {
	it := &Iter{desc: desc}
	var snaps [8]struct {
		chunks [][]pair
		tail   []pair
	}
	mems := snaps[:0]
	x.mu.RLock()
	if x.closed {
		x.mu.RUnlock()
		it.err = ErrClosed
		return it
	}
	lo = max(lo, x.forget, 1)
	if lo > hi {
		x.mu.RUnlock()
		return it
	}
	for _, m := range append(x.frozen[:len(x.frozen):len(x.frozen)], x.mem) {
		if m.n > 0 && m.maxSeq >= lo && m.minSeq <= hi {
			mems = append(mems, struct {
				chunks [][]pair
				tail   []pair
			}{m.chunks, m.tail})
		}
	}
	for _, r := range x.runs {
		if r.maxSeq >= lo && r.minSeq <= hi {
			r.refs.Add(1)
			it.runs = append(it.runs, runSource{r: r, term: term, lo: lo, hi: hi, desc: desc})
		}
	}
	x.mu.RUnlock()
	for _, m := range mems {
		it.mem = memSources(it.mem, m.chunks, m.tail, term, lo, hi, desc)
	}
	return it
}

// Pairs calls fn with every pair the run files hold for the seqs in [lo,
// hi], once each, in (term, seq) order. Pairs below Forget's bound and
// above Durable() (when it starts: only in memory) are left out, so ask
// Durable first for hi. It lets the caller check the index against its
// log; an error from fn ends it.
func (x *Index) Pairs(lo, hi uint64, fn func(term, seq uint64) error) error {
	x.mu.RLock()
	if x.closed {
		x.mu.RUnlock()
		return ErrClosed
	}
	lo, hi = max(lo, x.forget, 1), min(hi, x.durableLocked())
	runs := slices.Clone(x.runs)
	for _, r := range runs {
		r.refs.Add(1)
	}
	x.mu.RUnlock()
	defer func() {
		for _, r := range runs {
			r.unref()
		}
	}()
	var last pair
	err := x.mergeScan(runs, lo, func(p pair) error {
		if p == last || p.seq > hi {
			return nil
		}
		last = p
		return fn(p.term, p.seq)
	})
	if errors.Is(err, errStopped) {
		err = ErrClosed
	}
	return err
}

// Forget drops the pairs with seq < below: Seqs never returns them again, runs
// wholly below are deleted (once no iterator uses them), and the others lose them
// when next merged. The bound is persisted; it never decreases.
func (x *Index) Forget(below uint64) error {
	if x.readOnly {
		return ErrReadOnly
	}
	x.forgetMu.Lock()
	defer x.forgetMu.Unlock()
	x.mu.RLock()
	cur, closed := x.forget, x.closed
	x.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if below <= cur {
		return nil
	}
	if err := writeForget(x.dir, below); err != nil {
		return err
	}
	x.mu.Lock()
	x.forget = below
	var dead []*run
	keep := x.runs[:0]
	for _, r := range x.runs {
		if r.maxSeq < below && !r.merging {
			dead = append(dead, r)
		} else {
			keep = append(keep, r)
		}
	}
	clear(x.runs[len(keep):])
	x.runs = keep
	x.durable = max(x.durable, below-1)
	x.mu.Unlock()
	for _, r := range dead {
		r.obsolete.Store(true)
		r.unref()
	}
	kick(x.mergeKick)
	return nil
}

func readForget(dir string) (uint64, error) {
	path := filepath.Join(dir, forgetFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("termindex: %w", err)
	}
	if len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return 0, fmt.Errorf("termindex: %s: %w", path, ErrCorrupt)
	}
	return binary.BigEndian.Uint64(b), nil
}

func writeForget(dir string, below uint64) error {
	path := filepath.Join(dir, forgetFile)
	b := binary.BigEndian.AppendUint64(nil, below)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	f, err := os.OpenFile(path+tmpSuffix, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("termindex: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(path+tmpSuffix, path)
	}
	if err != nil {
		os.Remove(path + tmpSuffix)
		return fmt.Errorf("termindex: write %s: %w", path, err)
	}
	return syncDir(dir)
}

// Stats returns counters for tests and metrics.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s := Stats{Runs: len(x.runs), Frozen: len(x.frozen), Flushes: x.flushes, Merges: x.merges}
	if x.mem != nil {
		s.MemEntries = x.mem.n
	}
	for _, m := range x.frozen {
		s.MemEntries += m.n
	}
	for _, r := range x.runs {
		s.DiskEntries += r.count
	}
	return s
}

// Close stops background work, writes what is in memory and closes the runs (each
// file closes when the last iterator using it is closed). It returns the error of
// that last write, if any.
func (x *Index) Close() error {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return ErrClosed
	}
	x.freezeLocked()
	x.mu.Unlock()
	close(x.stop)
	x.wg.Wait()
	var err error
	if !x.readOnly {
		err = x.flushFrozen()
	}
	x.mu.Lock()
	x.closed = true
	runs := x.runs
	x.runs = nil
	x.mu.Unlock()
	for _, r := range runs {
		r.unref()
	}
	return err
}

// abandon stops background work and closes the files without writing anything:
// tests use it to simulate a crash.
func (x *Index) abandon() {
	x.mu.Lock()
	x.crashed, x.closed = true, true
	runs := x.runs
	x.runs = nil
	x.mu.Unlock()
	close(x.stop)
	x.wg.Wait()
	for _, r := range runs {
		r.unref()
	}
}
