package audit

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openfsb/fsb/engine/audit/internal/termindex"
)

// Options configure a Store. The zero value of every field but Dir has a
// sensible default; keys are the caller's and are never written to the store.
type Options struct {
	// Dir holds the store: the segment log, checkpoints, anchor and index
	// (README.md, "Storage layout"). Required. A Dir holding a store of the
	// previous (Badger) format is migrated by the first Open.
	Dir string

	// Signer signs checkpoints and anchors with Ed25519 (an
	// ed25519.PrivateKey, or an HSM behind crypto.Signer). Without it the
	// store is read-only: Begin, Refuse and Prune fail with ErrReadOnly.
	Signer crypto.Signer
	// CheckpointEvery signs the head at least every this many records
	// (default 1024), and CheckpointInterval at least this often while
	// records arrive (default 10s). A proof is at most CheckpointEvery
	// digests long; the interval bounds how long the newest records stay
	// unsigned.
	CheckpointEvery    int
	CheckpointInterval time.Duration

	// SubjectKeys pseudonymise data subjects (HMAC-SHA-256): the first
	// writes, all are tried by subject lookups. Required to record subjects.
	SubjectKeys []Key
	// BodyKeys encrypt stored bodies (AES-256-GCM, 32-byte secrets): the
	// first writes. Required if any policy stores bodies.
	BodyKeys []Key

	// Services holds per-service policies; Default applies to the others.
	Services map[string]Policy
	Default  Policy

	// WriteTimeout bounds how long Begin, Refuse and Finish wait for
	// durability when ctx has no earlier deadline (default 5s; checked
	// every eighth of it, at most every second).
	WriteTimeout time.Duration
	// MaxBatch caps the records committed by one sync (default 1024).
	// 1 turns group commit off: one sync per record (benchmarks only).
	MaxBatch int
	// MinFreeSpace is the free space (bytes) the store's file system must
	// keep: below it every record is refused (ErrUnavailable, so calls get
	// serviceUnavailable) until space is freed, and accepted again after,
	// without a restart. Default 256 MiB; negative turns the check off. A
	// write that fails for want of space would break the store until it is
	// reopened (a failed write is sticky, see README.md), and the index's
	// runs need room too: the floor stops cleanly before that.
	MinFreeSpace int64
	// Logger receives the store's warnings (default slog.Default()).
	Logger *slog.Logger
	// OnCommit, if set, is called by the writer after each batch's write
	// and sync, before its waiters are answered, with the records it made
	// durable, how long it took, and the error if it failed (then records
	// is 0); and once more, with no records, if the checkpoint or seal
	// after the batch fails (metrics; it must not block, nor read the
	// store's checkpoints, which may wait for the writer). A batch refused
	// before anything was written (the store broken or nearly full) is not
	// a commit.
	OnCommit func(records int, d time.Duration, err error)
	// IndexFlushEntries is how many index pairs stay in memory before they
	// are written as a run (default 1<<18): it bounds what Open re-reads
	// from the log after a crash.
	IndexFlushEntries int
}

// Policy is how the records of one service are kept.
type Policy struct {
	// Retention is how long records stay; 0 keeps them forever.
	Retention time.Duration
	// StoreBodies keeps request and response bodies, encrypted.
	StoreBodies bool
	// SubjectInClear also stores the subject identifier in clear.
	SubjectInClear bool
}

// Errors of writing.
var (
	// ErrUnavailable wraps every failure to make a record durable; the
	// gateway answers serviceUnavailable and calls no source.
	ErrUnavailable = errors.New("audit: store unavailable")
	ErrReadOnly    = errors.New("audit: store opened without a signer")
	ErrClosed      = errors.New("audit: store closed")
	// ErrStuck is Close giving up on a write, sync, Prune or Backup that
	// does not end.
	ErrStuck = errors.New("audit: close: a write, sync, prune or backup is still running; the store's files stay open until it ends")
)

// Store is the audit trail on one node. Its methods are safe for
// concurrent use.
type Store struct {
	opt  Options
	pub  ed25519.PublicKey
	log  *slog.Logger
	dir  string
	lock *os.File

	lg      *segLog
	cks     *ckFile
	idx     *termindex.Index
	scratch string // a read-only store's index rebuilt outside Dir (removed on Close)
	// idxApart: the index in use is not Dir's (a read-only store rebuilt one
	// in scratch or in memory); VerifyIndex opens Dir's apart.
	idxApart bool

	wake     chan struct{} // a token: records are waiting (cap 1)
	quit     chan struct{} // closed by Close: the writer drains and stops
	stopped  chan struct{} // closed when the writer has stopped
	once     sync.Once
	closeErr chan error // closeFiles' result, once the writer has stopped
	closed   atomic.Bool
	// files admits one Prune, Backup or Export at a time, and Close's shutdown
	// after them (a semaphore, so that a waiter's ctx can give up).
	files chan struct{}
	shut  chan struct{} // closed once Close has closed the files

	subject *pseudonymiser // under SubjectKeys[0], if any

	// Writer-owned chain state.
	w   chainState
	buf []byte
	// offs are the batch's frame offsets (writer only).
	offs []int64

	mu   sync.Mutex
	pubw chainState // a copy of w for readers, as of the last acknowledged batch
	// signing is closed once the writer has signed (or failed to sign) a
	// checkpoint made due by records it has already acknowledged; nil when
	// none is being signed. Readers of the checkpoints wait for it
	// (awaitCheckpoint).
	signing chan struct{}
	broken  error      // sticky: a write failed (fail)
	waiting []*pending // queued for the writer, oldest first
	flight  []*pending // the batch the writer is committing
	closing bool       // Close began: nothing more is queued

	damaged []uint64 // seqs found damaged (and kept) by the scan at open

	lowSpaceLogged time.Time
	space          spaceCheck // writer only
}

type chainState struct {
	seq      uint64
	head     Hash
	last     time.Time // time of the last record, records never go back in time
	ckSeq    uint64
	ckTime   time.Time
	ckLatest *Checkpoint
	first    uint64 // first kept seq (1, or the anchor's)
}

// pending is one record (or a request to the writer) waiting for the writer.
type pending struct {
	payload    []byte        // the record after its frame; nil for a request to the writer
	pooled     *[]byte       // payload's holder in payloadBufs, if it came from there
	terms      []uint64      // secondary index terms
	termBuf    [12]uint64    // terms' first backing array
	checkpoint bool          // sign the head now
	roll       bool          // seal the active segment (Prune)
	at         time.Time     // queued at (for the watchdog)
	done       chan struct{} // closed by finish
	answered   atomic.Bool
	rc         Receipt
	ck         *Checkpoint
	err        error
}

// finish answers p's waiter with err (nil: durable, rc and ck set), once:
// the writer's answer and the watchdog's race, the first wins.
func (p *pending) finish(err error) {
	if p.answered.CompareAndSwap(false, true) {
		p.err = err
		close(p.done)
	}
}

// Open opens (or creates) the store in opt.Dir, recovers the chain head
// from the log (cutting a torn tail a crash left), and brings the index up
// to date with the log.
func Open(opt Options) (*Store, error) {
	if opt.Dir == "" {
		return nil, errors.New("audit: Options.Dir is required")
	}
	if opt.CheckpointEvery <= 0 {
		opt.CheckpointEvery = 1024
	}
	if opt.CheckpointInterval <= 0 {
		opt.CheckpointInterval = 10 * time.Second
	}
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = 5 * time.Second
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 1024
	}
	if opt.MinFreeSpace == 0 {
		opt.MinFreeSpace = 256 << 20
	}
	if opt.IndexFlushEntries <= 0 {
		opt.IndexFlushEntries = 1 << 18
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	s := &Store{opt: opt, log: opt.Logger.With("component", "audit"), dir: opt.Dir}
	if opt.Signer != nil {
		pub, ok := opt.Signer.Public().(ed25519.PublicKey)
		if !ok {
			return nil, errors.New("audit: Signer must be an Ed25519 key")
		}
		s.pub = pub
	}
	for _, p := range append([]Policy{opt.Default}, mapValues(opt.Services)...) {
		if p.StoreBodies && len(opt.BodyKeys) == 0 {
			return nil, errors.New("audit: a policy stores bodies but no BodyKeys are given")
		}
	}
	for _, k := range opt.BodyKeys {
		if _, err := newGCM(k.Secret); err != nil {
			return nil, fmt.Errorf("audit: body key %q: %w", k.ID, err)
		}
	}
	for _, k := range opt.SubjectKeys {
		if len(k.Secret) < 16 || k.ID == "" {
			return nil, fmt.Errorf("audit: subject key %q: needs an id and at least 16 bytes", k.ID)
		}
	}
	if len(opt.SubjectKeys) > 0 {
		s.subject = newPseudonymiser(opt.SubjectKeys[0])
	}
	if err := s.open(); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("%w: open %s: %v", ErrUnavailable, opt.Dir, err)
	}
	s.pubw = s.w
	s.wake = make(chan struct{}, 1)
	s.files, s.shut = make(chan struct{}, 1), make(chan struct{})
	s.quit = make(chan struct{})
	s.stopped = make(chan struct{})
	go s.writer()
	go s.watchdog()
	return s, nil
}

func (s *Store) open() error {
	if s.opt.Signer == nil {
		// Read-only: a mistyped directory is an error, not a new store.
		if !fileExists(filepath.Join(s.dir, "log")) && !fileExists(filepath.Join(s.dir, "MANIFEST")) &&
			!fileExists(filepath.Join(s.dir, migrateTmp)) {
			return errors.New("no audit store here (no log directory)")
		}
	} else if err := os.MkdirAll(s.dir, dirPerm); err != nil {
		return err
	}
	if s.opt.Signer != nil {
		// A store created before the files were private (0755/0644):
		// closing the directory closes everything in it.
		if st, err := os.Stat(s.dir); err == nil && st.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(s.dir, dirPerm); err != nil {
				return err
			}
			s.log.Warn("audit: the store's directory was readable by others; made it owner-only", "dir", s.dir, "was", st.Mode().Perm().String())
		}
	}
	var err error
	if s.lock, err = lockDir(filepath.Join(s.dir, "audit.lock")); err != nil {
		return err
	}
	if err := s.migrate(); err != nil {
		return fmt.Errorf("migrate the Badger store: %w", err)
	}
	// Without a signer the store is read-only: a torn tail is ignored,
	// not cut, so that verifying a stopped store leaves its log and
	// checkpoints as they are.
	writable := s.opt.Signer != nil
	if s.cks, err = openCkFile(filepath.Join(s.dir, "checkpoints"), writable, s.log); err != nil {
		return err
	}
	var signed uint64 // the log must not be cut below what a checkpoint signs
	if ck, ok, err := s.cks.last(); err != nil {
		return err
	} else if ok {
		if writable && !ck.Valid(s.pub) {
			return fmt.Errorf("the last checkpoint (record %d) does not verify under this store's key: the checkpoints file was altered, or the key is not this store's (run fsb audit verify with the public key)", ck.Seq)
		}
		signed = ck.Seq
	}
	if s.lg, err = openLog(filepath.Join(s.dir, "log"), s.log, writable, signed); err != nil {
		return err
	}
	s.damaged = s.lg.damaged
	s.lg.minFree = s.opt.MinFreeSpace
	if s.w, err = s.recoverHead(); err != nil {
		return err
	}
	if s.w.ckLatest == nil {
		s.w.ckTime = time.Now() // the interval runs from the first open
	}
	return s.openIndex()
}

// recoverHead reads the head from the last record and the last checkpoint;
// the last record must be consistent with itself.
func (s *Store) recoverHead() (chainState, error) {
	st := chainState{first: 1}
	a, err := readAnchor(s.anchorPath())
	if err != nil {
		return st, err
	}
	if a != nil {
		if a.Seq == 0 {
			return st, errors.New("the anchor file is damaged")
		}
		st.first, st.seq, st.head = a.Seq, a.Seq-1, a.Prev
	}
	if seq, v, ok, err := s.lg.lastFrame(); err != nil {
		return st, err
	} else if ok && seq >= st.first { // not a leftover of an interrupted prune
		e, err := parseEntry(seq, v)
		if err == nil && link(e.prev, e.digest) != e.hash {
			err = fmt.Errorf("last record %d does not match its chain hash (run fsb audit verify)", seq)
		}
		switch {
		case err == nil:
			st.seq, st.head, st.last = e.seq, e.hash, e.time
		case s.opt.Signer != nil:
			return st, fmt.Errorf("last record %d: %w", seq, err)
		default: // read-only: let Verify name the damage
			s.log.Warn("audit log: the last record is damaged", "seq", seq, "err", err)
			st.seq, st.head, st.last = e.seq, e.hash, e.time
		}
	}
	ck, ok, err := s.cks.last()
	if err != nil {
		return st, err
	}
	if ok && ck.Seq > st.seq {
		// The log ends before a record a signed checkpoint names: records
		// were lost or cut away (a checkpoint is written only after the
		// records it signs are synced). Chaining on would put new records
		// under seqs that checkpoint already signs.
		if s.opt.Signer != nil {
			return st, fmt.Errorf("the log ends at record %d but the signed checkpoint at %d names later records: records are missing (run fsb audit verify; restore from a backup)", st.seq, ck.Seq)
		}
		s.log.Warn("audit log: records a signed checkpoint names are missing", "head", st.seq, "checkpoint", ck.Seq)
	}
	if ok {
		st.ckSeq, st.ckTime, st.ckLatest = ck.Seq, ck.Time, &ck
	}
	return st, nil
}

func (s *Store) anchorPath() string { return filepath.Join(s.dir, "anchor") }

// openIndex opens the term index and adds to it every record after what
// it holds durably (derived data: the log is the truth). An index ahead of
// the log (restored or copied apart) is rebuilt. A read-only store (no
// Signer) writes nothing under Dir: it catches a lagging index up in
// memory, and rebuilds one far behind (a restore leaves none) in a scratch
// directory outside Dir, removed on Close.
func (s *Store) openIndex() error {
	readOnly := s.opt.Signer == nil
	opt := termindex.Options{Dir: filepath.Join(s.dir, "index"), FlushEntries: s.opt.IndexFlushEntries, Logger: s.log, ReadOnly: readOnly}
	open := func() (err error) {
		if s.idx, err = termindex.Open(opt); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		return nil
	}
	if err := open(); err != nil {
		return err
	}
	d := s.idx.Durable()
	ahead := d > s.w.seq
	if ahead {
		s.log.Warn("audit index is ahead of the log: rebuilding it", "index", d, "log", s.w.seq)
		d = 0
	}
	far := readOnly && s.w.seq-d > uint64(s.opt.IndexFlushEntries/8)
	if ahead || far {
		s.idx.Close()
		s.idxApart = readOnly
		switch {
		case far:
			var err error
			if s.scratch, err = os.MkdirTemp("", "fsb-audit-index-"); err != nil {
				return fmt.Errorf("index: %w", err)
			}
			s.log.Info("audit index far behind the log: rebuilding it in a scratch directory (the store is read-only)", "dir", s.scratch, "records", s.w.seq-d)
			opt.Dir, opt.ReadOnly, d = s.scratch, false, 0
		case readOnly:
			opt.Dir = "" // in memory: a read-only store leaves the files as they are
		default:
			if err := os.RemoveAll(opt.Dir); err != nil {
				return err
			}
		}
		if err := open(); err != nil {
			return err
		}
	}
	from := max(d+1, s.w.first)
	if from > s.w.seq {
		return nil
	}
	start := time.Now()
	n := 0
	vs := s.lg.snapshot()
	defer releaseAll(vs)
	var flushErr error
	err := walkFrames(vs, from, func(seq uint64, v []byte, err error) bool {
		if err != nil || seq < from || seq > s.w.seq {
			return true // damage: Verify names it
		}
		e, err := parseEntry(seq, v)
		if err != nil || e.redacted {
			return true
		}
		r, err := Decode(e.record)
		if err != nil {
			return true
		}
		s.idx.Add(seq, indexTerms(&r)...)
		if n++; s.scratch != "" && n%max(s.opt.IndexFlushEntries/8, 1) == 0 {
			flushErr = s.idx.Flush() // memory stays bounded while it catches up
		}
		return flushErr == nil
	})
	if n > 0 {
		s.log.Info("audit index brought up to date from the log", "records", n, "took", time.Since(start))
	}
	return cmp.Or(err, flushErr)
}

func mapValues(m map[string]Policy) []Policy {
	out := make([]Policy, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	return out
}

// closeFiles closes what the store opened (Open's failure, Close).
func (s *Store) closeFiles() error {
	var err error
	if s.idx != nil {
		// s.idx stays set: a query racing with Close gets the index's
		// error, not a nil pointer.
		err = s.idx.Close()
	}
	if s.cks != nil {
		s.cks.close()
	}
	if s.lg != nil {
		s.lg.close()
	}
	if s.scratch != "" {
		os.RemoveAll(s.scratch)
	}
	if s.lock != nil {
		s.lock.Close()
	}
	return err
}

// Close stops accepting records, commits what is queued, signs a final
// checkpoint and closes the files. It waits at most closeWait (twice
// WriteTimeout, at least 1s) for the writer to drain and for a running
// Prune or Backup to end: a write or sync that hangs (a dying disk, a lost
// network file system) or a backup client that stopped reading must not
// hang the shutdown with it. Then it returns ErrStuck, every waiting caller
// has been refused by then, and the files are closed when (if) that work
// ends.
func (s *Store) Close() error {
	first := false
	s.once.Do(func() {
		s.mu.Lock()
		s.closing = true // what is queued now is all the writer drains
		s.mu.Unlock()
		close(s.quit)
		first = true
		s.closeErr = make(chan error, 1)
		go func() {
			<-s.stopped
			s.closeErr <- s.shutdown()
		}()
	})
	wait := time.NewTimer(s.closeWait())
	defer wait.Stop()
	if !first {
		select {
		case <-s.shut:
			return nil
		case <-wait.C:
			return fmt.Errorf("%w (waited %v)", ErrStuck, s.closeWait())
		}
	}
	select {
	case err := <-s.closeErr:
		return err
	case <-wait.C:
		s.closed.Store(true)
		s.log.Error("audit: closing: a write, sync, prune or backup is still running; the files close when it ends", "waited", s.closeWait())
		return fmt.Errorf("%w (waited %v)", ErrStuck, s.closeWait())
	}
}

// closeWait bounds how long Close waits for the writer: twice
// WriteTimeout, at least a second (a drain of a full queue on a loaded
// machine is not a stuck writer).
func (s *Store) closeWait() time.Duration { return max(2*s.opt.WriteTimeout, time.Second) }

// shutdown closes the files once the writer has stopped.
func (s *Store) shutdown() error {
	s.closed.Store(true)
	s.files <- struct{}{} // no Prune or Backup is using the files; never given back
	defer close(s.shut)
	return s.closeFiles()
}

// useFiles waits for the files' turn (one Prune, Backup or Export at a time, never
// after Close) as long as ctx allows; release gives it back.
func (s *Store) useFiles(ctx context.Context) (release func(), err error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	select {
	case s.files <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("audit: waiting for a running prune or backup: %w", ctx.Err())
	}
	if s.closed.Load() {
		<-s.files
		return nil, ErrClosed
	}
	return func() { <-s.files }, nil
}

// PublicKey returns the checkpoint verification key (nil if read-only).
func (s *Store) PublicKey() ed25519.PublicKey { return s.pub }

// Head returns the last record's seq and chain hash.
func (s *Store) Head() Receipt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Receipt{Seq: s.pubw.seq, Hash: s.pubw.head}
}

// Damaged returns the seqs of the records Open found damaged and kept: a
// bad frame that good frames follow in a segment Open scanned (the active
// one, or a sealed one without a valid sidecar). Each was logged at ERROR;
// Get refuses them and Verify names the first. A store opens (and, if
// writable, chains on) despite them. Segments loaded from their sidecars
// are not read at open: only Verify checks those. Nil if none.
func (s *Store) Damaged() []uint64 { return slices.Clone(s.damaged) }

// QueueDepth is how many records (and requests) wait for the writer.
func (s *Store) QueueDepth() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
}

// LastCheckpoint returns the newest signed checkpoint, if any. If the
// writer is signing one that acknowledged records made due, it waits for
// it: a caller whose records made it due sees it.
func (s *Store) LastCheckpoint() (Checkpoint, bool) {
	s.awaitCheckpoint(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pubw.ckLatest == nil {
		return Checkpoint{}, false
	}
	return *s.pubw.ckLatest, true
}

func (s *Store) policy(service string) Policy {
	if p, ok := s.opt.Services[service]; ok {
		return p
	}
	return s.opt.Default
}

// maxWaiting bounds the records queued for the writer: beyond it a call
// is refused at once (the store is far behind; waiting would only pile up
// more calls).
func (s *Store) maxWaiting() int { return max(4*s.opt.MaxBatch, 8192) }

// append queues a record and waits until it is durable: until the writer
// acknowledges it, the watchdog finds it waiting longer than WriteTimeout,
// or ctx ends. There is no timer or select per record on the common path
// (they were ~5 µs of a call's CPU): one watchdog bounds every wait.
func (s *Store) append(ctx context.Context, p *pending) error {
	if s.opt.Signer == nil {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil { // nothing is queued for a call already given up
		return fmt.Errorf("%w: not durable in time: %w", ErrUnavailable, err)
	}
	p.done = make(chan struct{})
	p.at = time.Now()
	s.mu.Lock()
	switch {
	case s.broken != nil:
		err := s.broken
		s.mu.Unlock()
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	case s.closing:
		s.mu.Unlock()
		return ErrClosed
	case len(s.waiting) >= s.maxWaiting():
		s.mu.Unlock()
		return fmt.Errorf("%w: queue full (%d records wait for the disk)", ErrUnavailable, s.maxWaiting())
	}
	s.waiting = append(s.waiting, p)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // a token is there: the writer will look
	}
	if done := ctx.Done(); done != nil {
		select {
		case <-p.done:
		case <-done:
			// Answered now: still queued, the writer drops it (take); in
			// the batch being written, it is written all the same, and
			// the call is refused all the same (README, "The API").
			err := fmt.Errorf("%w: not durable in time: %w", ErrUnavailable, ctx.Err())
			p.finish(err)
			return err
		}
	} else {
		<-p.done
	}
	return p.err
}

// errLate answers a record the watchdog found waiting too long.
var errLate = fmt.Errorf("%w: not durable in time: %w", ErrUnavailable, context.DeadlineExceeded)

// watchdog answers every record waiting longer than WriteTimeout (queued,
// or in a batch whose write or sync hangs) with errLate, so that a stuck
// disk refuses calls rather than holding them. The writer's own answer
// for such a record comes later and is dropped (pending.finish).
func (s *Store) watchdog() {
	t := time.NewTicker(min(max(s.opt.WriteTimeout/8, time.Millisecond), time.Second))
	defer t.Stop()
	var late []*pending
	for {
		select {
		case <-s.stopped:
			return
		case <-t.C:
		}
		cut := time.Now().Add(-s.opt.WriteTimeout)
		late = late[:0]
		s.mu.Lock()
		for _, q := range [][]*pending{s.flight, s.waiting} {
			for _, p := range q {
				if !p.at.After(cut) {
					late = append(late, p)
				}
			}
		}
		s.mu.Unlock()
		for _, p := range late {
			p.finish(errLate)
		}
		clear(late)
	}
}

// maxBatchBytes caps the records of one batch (a larger record goes
// alone): recovery tells a batch cut by a power loss from damage by its
// span (segment.go, tornWindow).
const maxBatchBytes = 1 << 20

// framedSize is a little over what p's record takes in the log: its
// payload, the frame and entry heads, the frame's {"v","seq","time"}.
func framedSize(p *pending) int { return len(p.payload) + frameHead + entryHead + 80 }

// take moves up to MaxBatch waiting records (maxBatchBytes of them) into
// batch and makes them the flight (writer only).
func (s *Store) take(batch []*pending) []*pending {
	s.mu.Lock()
	batch = batch[:0]
	n, size := 0, 0
	for _, p := range s.waiting {
		if len(batch) == s.opt.MaxBatch {
			break
		}
		if p.answered.Load() {
			// Refused meanwhile (the watchdog or its ctx): the caller
			// answered 503, so its record is not written at all — an
			// outcome written now would record an answer never sent.
			releasePayload(p)
			n++
			continue
		}
		if size += framedSize(p); len(batch) > 0 && size > maxBatchBytes {
			break
		}
		batch = append(batch, p)
		n++
	}
	rest := copy(s.waiting, s.waiting[n:])
	clear(s.waiting[rest:])
	s.waiting = s.waiting[:rest]
	s.flight = batch
	s.mu.Unlock()
	return batch
}

// writer is the one goroutine that numbers, chains and writes records: it
// takes whatever is queued (no wait window: a lone caller is committed at
// once), appends the batch to the log with one write and one fdatasync
// (group commit), and acknowledges every waiter. What arrives during the
// sync is the next batch.
func (s *Store) writer() {
	defer close(s.stopped)
	tick := time.NewTicker(s.opt.CheckpointInterval)
	defer tick.Stop()
	batch := make([]*pending, 0, s.opt.MaxBatch)
	for {
		select {
		case <-s.wake:
		case <-tick.C:
			if s.w.seq > s.w.ckSeq && s.opt.Signer != nil && time.Since(s.w.ckTime) >= s.opt.CheckpointInterval/2 {
				s.commit(nil, true)
			}
			continue
		case <-s.quit:
			// Close set closing first: nothing joins the queue now.
			for batch = s.take(batch); len(batch) > 0; batch = s.take(batch) {
				s.commit(batch, false)
			}
			if s.w.seq > s.w.ckSeq && s.opt.Signer != nil {
				s.commit(nil, true)
			}
			return
		}
		for s.gather(); ; s.gather() {
			if batch = s.take(batch); len(batch) == 0 {
				break
			}
			s.commit(batch, false)
		}
	}
}

// gatherYields bounds gather's yields.
const gatherYields = 3

// gather lets the goroutines that are ready to run go first while the
// queue keeps growing (up to gatherYields times), so that a busy gateway
// commits bigger batches: fewer writes and syncs, less CPU per record (a
// write and fdatasync cost ~20–40 µs of CPU whatever the batch). With
// nothing else ready to run, Gosched returns at once and the batch goes
// now: an idle gateway waits for no one.
func (s *Store) gather() {
	prev := -1
	for range gatherYields {
		s.mu.Lock()
		n := len(s.waiting)
		s.mu.Unlock()
		if n == prev || n >= s.opt.MaxBatch {
			return
		}
		prev = n
		runtime.Gosched()
	}
}

// commit frames, chains and writes batch's records and answers their
// waiters once they are durable; then it signs a checkpoint if one is due
// (and seals the active segment if asked) and answers the requests to the
// writer. A record's waiter never waits for a checkpoint's signature and
// sync (every ~1024 records: that batch's calls waited for two syncs).
func (s *Store) commit(batch []*pending, forceCheckpoint bool) {
	s.mu.Lock()
	err := s.broken
	s.mu.Unlock()
	if err == nil {
		n := 0
		for _, p := range batch {
			n += framedSize(p)
		}
		err = s.checkSpace(n)
	}
	if err != nil { // refused before writing: not a commit
		s.fail(batch, err)
		return
	}
	st := s.w
	roll := false
	start := time.Now()
	now, records, err := s.writeRecords(batch, &st, &forceCheckpoint, &roll)
	s.report(records, time.Since(start), err)
	if err != nil {
		s.fail(batch, err)
		return
	}
	defer s.endSigning(s.startSigning(&st, now, forceCheckpoint)) // signed and published, or failed
	s.publish(st)
	requests := batch[:0:0]
	for _, p := range batch {
		if p.payload == nil {
			requests = append(requests, p)
			continue
		}
		s.idx.Add(p.rc.Seq, p.terms...)
		releasePayload(p)
		p.finish(nil)
	}
	start = time.Now()
	if err = s.checkpointAndRoll(&st, now, forceCheckpoint, roll); err != nil {
		s.report(0, time.Since(start), err)
		s.fail(requests, err) // and the store is broken for the next batch
		return
	}
	s.publish(st)
	for _, p := range requests {
		p.ck = st.ckLatest
		p.finish(nil)
	}
}

// report tells OnCommit of a batch's write (the records it made durable,
// how long the write and sync took, its error), or of a checkpoint or seal
// that failed after it (no records, its time, its error); a write of no
// records that did not fail is not told.
func (s *Store) report(records int, took time.Duration, err error) {
	if s.opt.OnCommit != nil && (records > 0 || err != nil) {
		s.opt.OnCommit(records, took, err)
	}
}

// publish makes st the chain state the writer continues from and readers
// see.
func (s *Store) publish(st chainState) {
	s.w = st
	s.mu.Lock()
	first := s.pubw.first // Prune may have moved it
	s.pubw = st
	s.pubw.first = max(first, st.first)
	s.mu.Unlock()
}

// writeRecords frames and chains batch's records into st and writes them
// to the log with one write and one fdatasync; it notes the requests to the
// writer among them (a checkpoint now, a roll). It returns the batch's
// record time and how many records it made durable (none if it failed).
func (s *Store) writeRecords(batch []*pending, st *chainState, forceCheckpoint, roll *bool) (time.Time, int, error) {
	now := time.Now().UTC()
	if now.Before(st.last) {
		now = st.last // record time never goes back, so time ranges map to seq ranges
	}
	buf, offs := s.buf[:0], s.offs[:0]
	first := st.seq + 1
	var tsBuf [len(timeLayout)]byte
	ts := appendTime(tsBuf[:0], now)
	for _, p := range batch {
		if p.payload == nil {
			*forceCheckpoint = *forceCheckpoint || p.checkpoint
			*roll = *roll || p.roll
			continue
		}
		st.seq++
		off := len(buf)
		offs = append(offs, int64(off))
		buf = append(buf, make([]byte, frameHead+entryHead)...)
		binary.BigEndian.PutUint64(buf[off+8:], st.seq)
		buf = frameAt(buf, st.seq, ts, p.payload)
		h := link(st.head, recordDigest(buf[off+frameHead+entryHead:]))
		e := buf[off+frameHead:]
		e[0] = entryFull
		copy(e[1:33], st.head[:])
		copy(e[33:65], h[:])
		sealFrame(buf[off:])
		p.rc = Receipt{Seq: st.seq, Hash: h}
		st.head, st.last = h, now
	}
	buf = slices.Grow(buf, pageSize) // room for appendBatch's padding: no copy
	s.buf, s.offs = buf, offs
	if cap(s.buf) > 4<<20 {
		s.buf = nil // a batch of large bodies: do not keep its buffer
	}
	if len(offs) > 0 {
		if err := s.lg.appendBatch(buf, first, offs); err != nil {
			return now, 0, err // none of them is known durable
		}
	}
	return now, len(offs), nil
}

// due reports whether st's head is to be signed now: records came since
// the last checkpoint, and CheckpointEvery records or CheckpointInterval
// have passed, or a checkpoint was asked for.
func (s *Store) due(st *chainState, now time.Time, force bool) bool {
	fresh := st.seq > st.ckSeq
	return fresh && (force || st.seq-st.ckSeq >= uint64(s.opt.CheckpointEvery) || now.Sub(st.ckTime) >= s.opt.CheckpointInterval)
}

// startSigning sets s.signing, before a batch's records are acknowledged,
// if the batch makes a checkpoint due: a caller that reads the checkpoints
// once its call returned then sees the one that signs its records
// (awaitCheckpoint). It returns what endSigning takes (nil if none is due).
func (s *Store) startSigning(st *chainState, now time.Time, force bool) chan struct{} {
	if !s.due(st, now, force) {
		return nil
	}
	c := make(chan struct{})
	s.mu.Lock()
	s.signing = c
	s.mu.Unlock()
	return c
}

// endSigning releases the readers startSigning made wait.
func (s *Store) endSigning(c chan struct{}) {
	if c == nil {
		return
	}
	s.mu.Lock()
	s.signing = nil
	s.mu.Unlock()
	close(c)
}

// awaitCheckpoint waits (at most WriteTimeout, or until ctx ends) while
// the writer signs a checkpoint that acknowledged records made due.
func (s *Store) awaitCheckpoint(ctx context.Context) {
	s.mu.Lock()
	c := s.signing
	s.mu.Unlock()
	if c == nil {
		return
	}
	t := time.NewTimer(s.opt.WriteTimeout)
	defer t.Stop()
	select {
	case <-c:
	case <-t.C:
	case <-ctx.Done():
	}
}

// checkpointAndRoll signs the head into the checkpoints file (one write
// and sync) if a checkpoint is due or forced — after the records it names
// are on disk — and seals the active segment if roll.
func (s *Store) checkpointAndRoll(st *chainState, now time.Time, force, roll bool) error {
	if s.due(st, now, force) {
		ck := Checkpoint{Seq: st.seq, Head: st.head, Time: now}
		sig, err := sign(s.opt.Signer, CheckpointMessage(ck.Seq, ck.Head, ck.Time))
		if err != nil {
			return err
		}
		ck.Signature = sig
		if err := s.cks.append(ck); err != nil {
			return err
		}
		st.ckSeq, st.ckTime, st.ckLatest = ck.Seq, ck.Time, &ck
	}
	if roll {
		return s.lg.roll()
	}
	return nil
}

// fail answers a batch that is not durable. A refusal before anything was
// written (errLowSpace) leaves the store as it was. Any other error came
// from a write or a sync: the store stays broken and refuses every record
// until it is reopened, because retrying is not safe — after a failed sync
// the kernel may report the next one clean without the data being on disk
// ("fsyncgate"), and a failed write may have left part of the batch in the
// file. Reopening cuts the torn tail and recovers the head from the log.
func (s *Store) fail(batch []*pending, err error) {
	if errors.Is(err, errLowSpace) {
		s.lg.dropPrepared() // 64 MiB of zeros back to the file system
		// Not sticky, and every batch meets it while the disk is full: log
		// it once a minute, not once a batch.
		s.mu.Lock()
		quiet := time.Since(s.lowSpaceLogged) < time.Minute
		if !quiet {
			s.lowSpaceLogged = time.Now()
		}
		s.mu.Unlock()
		if !quiet {
			s.log.Error("audit store nearly full: refusing calls until space is freed", "err", err)
		}
	} else {
		s.mu.Lock()
		first := s.broken == nil
		if first {
			s.broken = fmt.Errorf("a write failed, reopen the store: %w", err)
		}
		s.mu.Unlock()
		if first { // later batches meet s.broken: logged once
			s.log.Error("audit write failed: refusing calls until the store is reopened", "err", err, "records", len(batch))
		}
	}
	for _, p := range batch {
		releasePayload(p)
		p.rc = Receipt{}
		p.finish(fmt.Errorf("%w: %w", ErrUnavailable, err))
	}
}

// Checkpoint makes the writer sign the current head now (if any record is
// newer than the last checkpoint) and returns the newest checkpoint.
func (s *Store) Checkpoint(ctx context.Context) (Checkpoint, error) {
	p := &pending{checkpoint: true}
	if err := s.append(ctx, p); err != nil {
		return Checkpoint{}, err
	}
	if p.ck == nil {
		return Checkpoint{}, errors.New("audit: no records to checkpoint")
	}
	return *p.ck, nil
}
