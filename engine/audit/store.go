package audit

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Options configure a Store. The zero value of every field but Dir has a
// sensible default; keys are the caller's and are never written to the store.
type Options struct {
	// Dir is the Badger directory. Required unless InMemory (tests only:
	// nothing is durable).
	Dir      string
	InMemory bool

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
	// durability when ctx has no earlier deadline (default 5s).
	WriteTimeout time.Duration
	// MaxBatch caps the records committed by one sync (default 1024).
	// 1 turns group commit off: one sync per record (benchmarks only).
	MaxBatch int
	// MinFreeSpace is the free space (bytes) the store's file system must
	// keep: below it every record is refused (ErrUnavailable, so calls get
	// serviceUnavailable) until space is freed. Default 256 MiB; negative
	// turns the check off. Badger writes through memory-mapped, sparse
	// files, so on a full disk it dies of SIGBUS instead of returning an
	// error (README.md, "Decisions"): the store must stop before that.
	MinFreeSpace int64
	// Logger receives the store's and Badger's warnings (default slog.Default()).
	Logger *slog.Logger
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
)

// Store is the audit trail on one node. Its methods are safe for
// concurrent use.
type Store struct {
	db  *badger.DB
	opt Options
	pub ed25519.PublicKey
	log *slog.Logger

	queue   chan *pending
	flights chan *flight  // batches handed to Badger, in order, for the acknowledger
	quit    chan struct{} // closed by Close: the writer drains and stops
	stopped chan struct{} // closed when the writer has stopped
	once    sync.Once
	pruneMu sync.Mutex // one Prune at a time

	subject *pseudonymiser // under SubjectKeys[0], if any

	// gap is the store's index layout (keys.go): an outcome at most gap
	// records after its request is found through the request's index
	// keys; 0 (a layout 1 store opened read-only) every record has its own.
	gap uint64
	// prunedThrough: Prune may have removed the index keys of requests up
	// to here, so their outcomes are indexed under all their terms.
	prunedThrough atomic.Uint64

	// Writer-owned chain state.
	w chainState

	mu     sync.Mutex
	pubw   chainState // a copy of w for readers, as of the last acknowledged batch
	broken error      // sticky: a write failed (fail)

	lowSpaceLogged time.Time
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

// pending is one record (or a checkpoint request) waiting for the writer.
type pending struct {
	payload    []byte // the record after its frame; nil for a checkpoint request
	terms      []term // secondary index terms
	request    uint64 // outcome: the request's seq, for the outcome link
	checkpoint bool
	done       chan struct{}
	rc         Receipt
	ck         *Checkpoint
	err        error
}

// Open opens (or creates) the store in opt.Dir and recovers the chain head
// from the last stored record.
func Open(opt Options) (*Store, error) {
	if opt.Dir == "" && !opt.InMemory {
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
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	s := &Store{opt: opt, log: opt.Logger.With("component", "audit")}
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

	bo := badger.DefaultOptions(opt.Dir).
		WithInMemory(opt.InMemory).
		WithSyncWrites(true). // each batch is one transaction, synced in the memtable it went into
		WithLogger(badgerLogger{s.log}).
		WithNumVersionsToKeep(1).
		WithMemTableSize(16 << 20).
		WithValueLogFileSize(64 << 20). // records stay in the LSM tree (NOTES.md): the value log stays small
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(8 << 20).
		WithNumCompactors(2).
		WithDetectConflicts(false) // one writer: nothing to detect
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrUnavailable, opt.Dir, err)
	}
	s.db = db
	if s.gap, err = loadLayout(db, opt.Signer != nil); err != nil {
		db.Close()
		return nil, err
	}
	if s.w, err = loadChainState(db); err != nil {
		db.Close()
		return nil, err
	}
	if s.w.ckLatest == nil {
		s.w.ckTime = time.Now() // the interval runs from the first open
	}
	s.pubw = s.w
	s.queue = make(chan *pending, 4*opt.MaxBatch)
	s.flights = make(chan *flight, maxInFlight-1) // plus the one the acknowledger holds
	s.quit = make(chan struct{})
	s.stopped = make(chan struct{})
	go s.writer()
	return s, nil
}

func mapValues(m map[string]Policy) []Policy {
	out := make([]Policy, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	return out
}

// loadLayout reads the index layout marker; a writable store without one
// (new, or written before layout 2) gets one before its first record.
func loadLayout(db *badger.DB, writable bool) (uint64, error) {
	var gap uint64
	err := db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(layoutKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			gap, err = decodeLayout(v)
			return err
		})
	})
	if err == nil && gap == 0 && writable {
		gap = defaultOutcomeGap
		err = db.Update(func(txn *badger.Txn) error { return txn.Set(layoutKey, encodeLayout(gap)) })
	}
	if err != nil {
		return 0, fmt.Errorf("%w: index layout: %v", ErrUnavailable, err)
	}
	return gap, nil
}

// loadChainState reads the head from the last record and the last
// checkpoint; the last record must be consistent with itself.
func loadChainState(db *badger.DB) (chainState, error) {
	var st chainState
	st.first = 1
	err := db.View(func(txn *badger.Txn) error {
		if it, err := txn.Get(anchorKey); err == nil {
			v, err := it.ValueCopy(nil)
			if err != nil {
				return err
			}
			a, ok := decodeAnchor(v)
			if !ok {
				return errors.New("anchor malformed")
			}
			st.first, st.seq, st.head = a.Seq, a.Seq-1, a.Prev
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		e, ok, err := lastEntry(txn)
		if err != nil {
			return err
		}
		if ok && e.seq >= st.first { // not a leftover of an interrupted prune
			if link(e.prev, e.digest) != e.hash {
				return fmt.Errorf("last record %d does not match its chain hash", e.seq)
			}
			st.seq, st.head, st.last = e.seq, e.hash, e.time
		}
		ck, ok, err := lastCheckpoint(txn)
		if err != nil {
			return err
		}
		if ok {
			st.ckSeq, st.ckTime, st.ckLatest = ck.Seq, ck.Time, &ck
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("%w: recover chain head: %v", ErrUnavailable, err)
	}
	return st, nil
}

func lastEntry(txn *badger.Txn) (entry, bool, error) {
	it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte{pRecord}})
	defer it.Close()
	it.Seek([]byte{pRecord, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	for ; it.Valid(); it.Next() {
		seq, ok := keySeq(it.Item().Key())
		if !ok {
			continue
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return entry{}, false, err
		}
		e, err := parseEntry(seq, v)
		if err != nil {
			return entry{}, false, fmt.Errorf("record %d: %w", seq, err)
		}
		return e, true, nil
	}
	return entry{}, false, nil
}

func lastCheckpoint(txn *badger.Txn) (Checkpoint, bool, error) {
	it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte{pCheckpoint}})
	defer it.Close()
	it.Seek([]byte{pCheckpoint, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	for ; it.Valid(); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return Checkpoint{}, false, err
		}
		if c, ok := decodeCheckpoint(v); ok {
			return c, true, nil
		}
	}
	return Checkpoint{}, false, nil
}

// Close stops accepting records, commits what is queued, signs a final
// checkpoint and closes the database.
func (s *Store) Close() error {
	s.once.Do(func() { close(s.quit) })
	<-s.stopped
	return s.db.Close()
}

// PublicKey returns the checkpoint verification key (nil if read-only).
func (s *Store) PublicKey() ed25519.PublicKey { return s.pub }

// Head returns the last record's seq and chain hash.
func (s *Store) Head() Receipt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Receipt{Seq: s.pubw.seq, Hash: s.pubw.head}
}

// LastCheckpoint returns the newest signed checkpoint, if any.
func (s *Store) LastCheckpoint() (Checkpoint, bool) {
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

// append queues a record and waits until it is durable.
func (s *Store) append(ctx context.Context, p *pending) error {
	if s.opt.Signer == nil {
		return ErrReadOnly
	}
	s.mu.Lock()
	broken := s.broken
	s.mu.Unlock()
	if broken != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, broken)
	}
	// WriteTimeout unless ctx ends first: a pooled timer, not a context per
	// record (context.WithTimeout was ~4% of a call's CPU).
	var expired <-chan time.Time
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > s.opt.WriteTimeout {
		t := writeTimers.Get().(*time.Timer)
		t.Reset(s.opt.WriteTimeout)
		defer func() {
			t.Stop() // no stale tick after Stop (Go 1.23 timers): reusable
			writeTimers.Put(t)
		}()
		expired = t.C
	}
	p.done = make(chan struct{})
	select {
	case <-s.quit:
		return ErrClosed
	default:
	}
	select {
	case s.queue <- p:
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("%w: queue full: %v", ErrUnavailable, ctx.Err())
	case <-expired:
		return fmt.Errorf("%w: queue full: %v", ErrUnavailable, context.DeadlineExceeded)
	}
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		// The record may still be written; the call is refused all the
		// same (a request record without an outcome is harmless).
		return fmt.Errorf("%w: not durable in time: %v", ErrUnavailable, ctx.Err())
	case <-expired:
		return fmt.Errorf("%w: not durable in time: %v", ErrUnavailable, context.DeadlineExceeded)
	case <-s.stopped:
		select {
		case <-p.done:
			return p.err
		default:
			return ErrClosed
		}
	}
}

// writeTimers are stopped timers for append's WriteTimeout.
var writeTimers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// writer is the one goroutine that numbers and chains records: it takes
// whatever is queued (no wait window), frames and chains it, and hands it
// to Badger as one transaction that Badger writes and syncs (SyncWrites)
// on its own goroutine. It does not wait for that: while Badger syncs one
// batch, the writer prepares the next, up to maxInFlight batches ahead.
// The acknowledger (ack) answers the waiters of each batch in order, once
// its sync is done.
func (s *Store) writer() {
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		s.ack()
	}()
	defer func() {
		close(s.flights)
		<-acked
		close(s.stopped)
	}()
	tick := time.NewTicker(s.opt.CheckpointInterval)
	defer tick.Stop()
	batch := make([]*pending, 0, s.opt.MaxBatch)
	var buf []byte
	for {
		batch = batch[:0]
		select {
		case p := <-s.queue:
			batch = append(batch, p)
		case <-tick.C:
			if s.w.seq > s.w.ckSeq && s.opt.Signer != nil && time.Since(s.w.ckTime) >= s.opt.CheckpointInterval/2 {
				buf = s.commit(nil, true, buf)
			}
			continue
		case <-s.quit:
			for {
				batch = batch[:0]
			drain:
				for len(batch) < s.opt.MaxBatch {
					select {
					case p := <-s.queue:
						batch = append(batch, p)
					default:
						break drain
					}
				}
				if len(batch) == 0 {
					break
				}
				buf = s.commit(batch, false, buf)
			}
			if s.w.seq > s.w.ckSeq && s.opt.Signer != nil {
				s.commit(nil, true, buf)
			}
			return
		}
	more:
		for len(batch) < s.opt.MaxBatch {
			select {
			case p := <-s.queue:
				batch = append(batch, p)
			default:
				break more
			}
		}
		buf = s.commit(batch, false, buf)
	}
}

// maxInFlight bounds the batches handed to Badger and not yet durable.
const maxInFlight = 4

// flight is one batch handed to Badger: its waiters, the chain state once
// it is durable, and one result per transaction it was split into.
type flight struct {
	batch []*pending
	st    chainState
	txns  int
	res   chan error
	err   error // set before handing over: nothing was written
}

// commit frames and chains batch, hands it to Badger without waiting, and
// queues it for the acknowledger. A failure is answered in order too.
func (s *Store) commit(batch []*pending, forceCheckpoint bool, buf []byte) []byte {
	// A copy: the writer reuses its slice for the next batch.
	f := &flight{batch: append([]*pending(nil), batch...), st: s.w}
	s.mu.Lock()
	err := s.broken
	s.mu.Unlock()
	if err == nil && s.db.IsClosed() {
		err = badger.ErrDBClosed
	}
	if err == nil {
		err = s.checkSpace()
	}
	if err == nil {
		err = s.writeBatch(f, forceCheckpoint, &buf)
	}
	if err != nil {
		f.err = err
	} else {
		s.w = f.st // the next batch chains onto this one
	}
	s.flights <- f
	return buf
}

// ack answers each flight's waiters, in the order the writer sent them,
// once every transaction of the flight is durable. After any failure it
// refuses the flights behind it too, even if Badger wrote them: their
// records chain onto one that is not on disk (the store is broken from
// then on, see fail).
func (s *Store) ack() {
	for f := range s.flights {
		err := f.err
		for range f.txns {
			if e := <-f.res; e != nil && err == nil {
				err = e
			}
		}
		if err == nil {
			s.mu.Lock()
			err = s.broken
			s.mu.Unlock()
		}
		if err != nil {
			s.fail(f.batch, err)
			continue
		}
		s.mu.Lock()
		first := s.pubw.first // Prune may have moved it
		s.pubw = f.st
		s.pubw.first = max(first, f.st.first)
		s.mu.Unlock()
		for _, p := range f.batch {
			p.ck = f.st.ckLatest
			close(p.done)
		}
	}
}

// writeBatch frames and chains f.batch into f.st and commits it as Badger
// transactions (one, unless the batch exceeds a transaction's limits)
// without waiting: each reports on f.res once Badger has written and
// synced it. Badger writes the transactions in commit order, each synced
// in the memtable it went into.
func (s *Store) writeBatch(f *flight, forceCheckpoint bool, buf *[]byte) error {
	st := &f.st
	var txns []*badger.Txn
	txn := s.db.NewTransaction(true)
	set := func(k, v []byte) error {
		err := txn.SetEntry(badger.NewEntry(k, v))
		if errors.Is(err, badger.ErrTxnTooBig) {
			txns = append(txns, txn)
			txn = s.db.NewTransaction(true)
			err = txn.SetEntry(badger.NewEntry(k, v))
		}
		return err
	}
	defer func() {
		if txn != nil {
			txn.Discard()
		}
		for _, t := range txns {
			t.Discard()
		}
	}()
	now := time.Now().UTC()
	if now.Before(st.last) {
		now = st.last // record time never goes back, so time ranges map to seq ranges
	}
	for _, p := range f.batch {
		if p.payload == nil {
			forceCheckpoint = forceCheckpoint || p.checkpoint
			continue
		}
		st.seq++
		*buf = frame((*buf)[:0], st.seq, now, p.payload)
		h := link(st.head, recordDigest(*buf))
		// Index keys go first: if a crash cuts a large batch, a record is
		// never on disk without them (a stray index key is skipped by queries).
		// An outcome close to its request is found through the request's
		// index keys (keys.go, layout 2).
		implicit := p.request != 0 && st.seq-p.request <= s.gap && p.request > s.prunedThrough.Load()
		for _, t := range p.terms {
			if implicit && t.shared {
				continue
			}
			if err := set(indexKey(t.field, t.val, st.seq), nil); err != nil {
				return err
			}
		}
		if p.request != 0 {
			if err := set(seqKey(pOutcome, p.request), seqKey(pRecord, st.seq)[1:]); err != nil {
				return err
			}
		}
		if err := set(seqKey(pRecord, st.seq), appendEntry(make([]byte, 0, entryHead+len(*buf)), st.head, h, *buf)); err != nil {
			return err
		}
		p.rc = Receipt{Seq: st.seq, Hash: h}
		st.head, st.last = h, now
	}
	fresh := st.seq > st.ckSeq
	due := fresh && (st.seq-st.ckSeq >= uint64(s.opt.CheckpointEvery) || now.Sub(st.ckTime) >= s.opt.CheckpointInterval)
	if due || (forceCheckpoint && fresh) {
		ck := Checkpoint{Seq: st.seq, Head: st.head, Time: now}
		sig, err := sign(s.opt.Signer, CheckpointMessage(ck.Seq, ck.Head, ck.Time))
		if err != nil {
			return err
		}
		ck.Signature = sig
		if err := set(seqKey(pCheckpoint, ck.Seq), encodeCheckpoint(ck)); err != nil {
			return err
		}
		st.ckSeq, st.ckTime, st.ckLatest = ck.Seq, ck.Time, &ck
	}
	txns = append(txns, txn)
	txn = nil
	f.res = make(chan error, len(txns))
	for i, t := range txns {
		t.CommitWith(func(err error) { f.res <- err })
		txns[i] = nil
		f.txns++
	}
	txns = nil
	return nil
}

// fail answers a batch that is not durable. A refusal before anything was
// written (errLowSpace) leaves the store as it was. Any other error came
// from Badger's write or sync: the store stays broken and refuses every
// record until it is reopened, because neither retrying is safe — after a
// failed sync the kernel may report the next one clean without the data
// being on disk ("fsyncgate"), and after a failed memtable rotation Badger
// kills the process on its next write (y.AssertTrue on a nil memtable).
// Reopening recovers the head from what is stored.
func (s *Store) fail(batch []*pending, err error) {
	if errors.Is(err, errLowSpace) {
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
		s.log.Error("audit write failed: refusing calls until the store is reopened", "err", err, "records", len(batch))
		s.mu.Lock()
		if s.broken == nil {
			s.broken = fmt.Errorf("a write failed, reopen the store: %w", err)
		}
		s.mu.Unlock()
	}
	for _, p := range batch {
		p.err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		p.rc = Receipt{}
		close(p.done)
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

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(fmt.Sprintf(f, a...), "from", "badger") }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(fmt.Sprintf(f, a...), "from", "badger") }
func (b badgerLogger) Infof(f string, a ...any)    { b.debugf(f, a...) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.debugf(f, a...) }

// debugf formats only if debug logs are on: Badger logs at debug level on
// every write request (~1% of a call's CPU when formatted for nothing).
func (b badgerLogger) debugf(f string, a ...any) {
	if b.l.Enabled(context.Background(), slog.LevelDebug) {
		b.l.Debug(fmt.Sprintf(f, a...), "from", "badger")
	}
}
