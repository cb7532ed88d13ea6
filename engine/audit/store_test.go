package audit

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBeginFinishRecordsTheCall(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	req := request(1)
	req.Body = []byte(`{"ssin":"85010112345"}`)
	c, err := s.Begin(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if c.Receipt().Seq != 1 {
		t.Fatalf("first record seq %d", c.Receipt().Seq)
	}
	rc, err := c.Finish(ctx, outcome(1))
	if err != nil {
		t.Fatal(err)
	}
	if rc.Seq != 2 {
		t.Fatalf("outcome seq %d", rc.Seq)
	}
	if _, err := c.Finish(ctx, outcome(1)); !errors.Is(err, ErrFinished) {
		t.Fatalf("second Finish: %v", err)
	}

	e, err := s.Get(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := e.Record
	if r.Kind != KindRequest || r.Organisation != req.Organisation || r.Purpose != req.Purpose ||
		r.LegalBasis != req.LegalBasis || r.TraceIn != req.TraceIn || r.Decision == nil || !r.Decision.Allowed {
		t.Errorf("request record: %+v", r)
	}
	if r.Subject != Pseudonym(subjectKey, req.Subject) || r.SubjectClear != "" {
		t.Errorf("subject stored as %q / %q", r.Subject, r.SubjectClear)
	}
	if bytes.Contains(e.Raw, []byte(req.Subject)) {
		t.Errorf("subject in clear in the stored bytes: %s", e.Raw)
	}
	if r.RequestBody != nil {
		t.Errorf("body stored without a policy asking for it")
	}
	if e.Hash != c.Receipt().Hash || link(e.Prev, recordDigest(e.Raw)) != e.Hash {
		t.Errorf("receipt and chain disagree")
	}

	o, ok, err := s.Outcome(ctx, 1)
	if err != nil || !ok {
		t.Fatalf("outcome of 1: %v %v", ok, err)
	}
	if o.Seq != 2 || o.Record.Request != 1 || o.Record.Status != 200 || o.Record.Call != c.ID() ||
		o.Record.Digest != Digest(outcome(1).Response) || len(o.Record.Sources) != 1 ||
		o.Record.Sources[0].Latency != 1500*time.Microsecond || o.Record.Sources[0].TraceID != "src-1" {
		t.Errorf("outcome record: %+v", o.Record)
	}

	got, err := ParseReceipt(rc.String())
	if err != nil || got != rc {
		t.Errorf("receipt round trip: %v %v", got, err)
	}
}

func TestRefuseRecordsTheDecision(t *testing.T) {
	s := newStore(t)
	rc, err := s.Refuse(context.Background(), Request{ClientIP: "198.51.100.7", Service: "person", TraceOut: "t"},
		Refusal{Reason: "ip not allowed", Status: 403, Problem: "urn:problem-type:belgif:missingPermission"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Get(context.Background(), rc.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.Record; r.Kind != KindRefused || r.Decision == nil || r.Decision.Allowed || r.Decision.Reason != "ip not allowed" || r.Status != 403 {
		t.Errorf("refused record: %+v", r)
	}
}

func TestPolicyBodiesAndClearSubject(t *testing.T) {
	opt := testOptions(t.TempDir())
	opt.Services = map[string]Policy{"svc1": {StoreBodies: true, SubjectInClear: true}}
	s := openStore(t, opt)
	defer s.Close()
	ctx := context.Background()
	req := request(1) // svc1
	req.Body = []byte(`{"ssin":"85010112345"}`)
	c, err := s.Begin(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.Finish(ctx, outcome(1))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := s.Get(ctx, c.Receipt().Seq)
	if e.Record.SubjectClear != req.Subject {
		t.Errorf("clear subject not kept: %q", e.Record.SubjectClear)
	}
	if bytes.Contains(e.Raw, []byte("ssin")) {
		t.Errorf("body stored in clear: %s", e.Raw)
	}
	plain, err := OpenBody(opt.BodyKeys, &e.Record, RequestBodyPart)
	if err != nil || !bytes.Equal(plain, req.Body) {
		t.Errorf("request body: %q %v", plain, err)
	}
	o, _ := s.Get(ctx, rc.Seq)
	plain, err = OpenBody(opt.BodyKeys, &o.Record, ResponseBodyPart)
	if err != nil || !bytes.Equal(plain, outcome(1).Response) {
		t.Errorf("response body: %q %v", plain, err)
	}
	// A body moved to another call does not open.
	moved := o.Record
	moved.Call = "another"
	if _, err := OpenBody(opt.BodyKeys, &moved, ResponseBodyPart); err == nil {
		t.Error("a body opened under another call id")
	}
	if _, err := OpenBody([]Key{{ID: "b1", Secret: make([]byte, 32)}}, &o.Record, ResponseBodyPart); err == nil {
		t.Error("a body opened with the wrong key")
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	for name, mod := range map[string]func(*Options){
		"bodies without key": func(o *Options) { o.BodyKeys = nil; o.Default.StoreBodies = true },
		"short body key":     func(o *Options) { o.BodyKeys = []Key{{ID: "x", Secret: []byte("short")}} },
		"short subject key":  func(o *Options) { o.SubjectKeys = []Key{{ID: "x", Secret: []byte("short")}} },
		"no dir":             func(o *Options) { o.Dir = "" },
	} {
		opt := testOptions(t.TempDir())
		mod(&opt)
		if s, err := Open(opt); err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

// TestReopenContinuesTheChain: a clean close and reopen, then a reopen of a
// copy taken while the store was open (a crash image: no clean shutdown,
// no final checkpoint): both recover the head and continue with contiguous
// seqs.
func TestReopenContinuesTheChain(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, testOptions(dir))
	for i := range 5 {
		call(t, s, i)
	}
	head := s.Head()
	crash := filepath.Join(t.TempDir(), "crash")
	copyTree(t, dir, crash) // while open: what a SIGKILL would leave on disk
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for _, d := range []string{dir, crash} {
		s := openStore(t, testOptions(d))
		if got := s.Head(); got != head {
			t.Fatalf("%s: head after reopen %+v, want %+v", d, got, head)
		}
		rq, _ := call(t, s, 9)
		if rq.Seq != head.Seq+1 {
			t.Fatalf("%s: next seq %d, want %d", d, rq.Seq, head.Seq+1)
		}
		if rep := verify(t, s); !rep.OK() || rep.Last != head.Seq+2 {
			t.Fatalf("%s: verify after reopen: %+v %v", d, rep, rep.Problem)
		}
		s.Close()
	}
}

// TestUnwritableStoreFailsClosed: when the store cannot write, Begin,
// Refuse and Finish fail promptly with ErrUnavailable; nothing hangs.
func TestUnwritableStoreFailsClosed(t *testing.T) {
	ctx := context.Background()
	t.Run("database gone under the writer", func(t *testing.T) {
		s := openStore(t, testOptions(t.TempDir()))
		c, err := s.Begin(ctx, request(1))
		if err != nil {
			t.Fatal(err)
		}
		s.lg.active().f.Close() // the disk vanished, as far as the writer can tell
		start := time.Now()
		if _, err := s.Begin(ctx, request(2)); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Begin: %v", err)
		}
		if _, err := c.Finish(ctx, outcome(1)); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Finish: %v", err)
		}
		if _, err := s.Refuse(ctx, request(3), Refusal{Reason: "x"}); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Refuse: %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("failing took %v", d)
		}
		s.Close()
	})
	t.Run("a failed write is sticky until reopened", func(t *testing.T) {
		dir := t.TempDir()
		s := openStore(t, testOptions(dir))
		call(t, s, 1)
		head := s.Head()
		// Fail one batch the way Badger does (an error from the write),
		// then make the database usable again: the store must still refuse,
		// since a retried sync can report success without the data on disk.
		s.fail(nil, errors.New("simulated write error"))
		if _, err := s.Begin(ctx, request(2)); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Begin after a failed write: %v", err)
		}
		if s.Head() != head {
			t.Fatal("the head moved")
		}
		s.Close()
		s = openStore(t, testOptions(dir))
		defer s.Close()
		if rq, _ := call(t, s, 3); rq.Seq != head.Seq+1 {
			t.Fatalf("reopened store continues at %d, want %d", rq.Seq, head.Seq+1)
		}
		if rep := verify(t, s); !rep.OK() {
			t.Fatal(rep.Problem)
		}
	})
	t.Run("file system nearly full", func(t *testing.T) {
		free, ok := freeSpace(t.TempDir())
		if !ok {
			t.Skip("no statfs here")
		}
		opt := testOptions(t.TempDir())
		opt.MinFreeSpace = int64(min(free, 1<<61) + 1<<40) // more than there is
		s := openStore(t, opt)
		defer s.Close()
		_, err := s.Begin(ctx, request(1))
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errLowSpace) {
			t.Fatalf("Begin on a full file system: %v", err)
		}
		s.mu.Lock()
		broken := s.broken
		s.mu.Unlock()
		if broken != nil || s.Head().Seq != 0 {
			t.Fatalf("a refusal for space broke the store (%v) or wrote (head %d)", broken, s.Head().Seq)
		}
	})
	t.Run("directory cannot be created", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		os.WriteFile(file, nil, 0o644)
		if _, err := Open(testOptions(filepath.Join(file, "audit"))); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Open under a file: %v", err)
		}
	})
	t.Run("closed store", func(t *testing.T) {
		s := openStore(t, testOptions(t.TempDir()))
		s.Close()
		if _, err := s.Begin(ctx, request(1)); !errors.Is(err, ErrClosed) {
			t.Errorf("Begin after Close: %v", err)
		}
	})
	t.Run("no signer", func(t *testing.T) {
		opt := testOptions(t.TempDir())
		openStore(t, opt).Close()
		opt.Signer = nil
		s := openStore(t, opt)
		defer s.Close()
		if _, err := s.Begin(ctx, request(1)); !errors.Is(err, ErrReadOnly) {
			t.Errorf("Begin without a signer: %v", err)
		}
	})
	t.Run("no signer, no store", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "mistyped")
		opt := testOptions(dir)
		opt.Signer = nil
		if _, err := Open(opt); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no audit store here") {
			t.Errorf("a read-only Open of a missing directory: %v", err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("a read-only Open created %s: %v", dir, err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		s := openStore(t, testOptions(t.TempDir()))
		defer s.Close()
		dctx, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
		defer cancel()
		if _, err := s.Begin(dctx, request(1)); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Begin past its deadline: %v", err)
		}
	})
}

// TestHammer: P goroutines × N calls; every receipt is unique, the seqs
// are contiguous, the chain verifies and the indexes are complete.
func TestHammer(t *testing.T) {
	const P, N = 32, 40
	opt := testOptions(t.TempDir())
	opt.CheckpointEvery = 64
	s := openStore(t, opt)
	defer s.Close()
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for p := range P {
		wg.Go(func() {
			for n := range N {
				i := p*N + n
				c, err := s.Begin(ctx, request(i))
				if err != nil {
					t.Error(err)
					return
				}
				rc, err := c.Finish(ctx, outcome(i))
				if err != nil {
					t.Error(err)
					return
				}
				if rc.Seq <= c.Receipt().Seq {
					t.Errorf("outcome %d before request %d", rc.Seq, c.Receipt().Seq)
				}
				mu.Lock()
				for _, q := range []uint64{c.Receipt().Seq, rc.Seq} {
					if seen[q] {
						t.Errorf("seq %d handed out twice", q)
					}
					seen[q] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	total := uint64(2 * P * N)
	for q := uint64(1); q <= total; q++ {
		if !seen[q] {
			t.Fatalf("seq %d missing: seqs are not contiguous", q)
		}
	}
	rep := verify(t, s)
	if !rep.OK() || rep.Records != total || rep.Last != total {
		t.Fatalf("verify: %+v %v", rep, rep.Problem)
	}
	page, err := s.Query(ctx, Query{Organisation: "org0", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * P * N / 3; len(page.Entries) < want || len(page.Entries) > want+2 {
		t.Errorf("org0 has %d records, want about %d", len(page.Entries), want)
	}
}

func TestValidUTF8MatchesJSON(t *testing.T) {
	s := newStore(t)
	req := request(1)
	req.Organisation = "org\xff\xfe" // invalid UTF-8: index keys must match the stored record
	c, err := s.Begin(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := s.Get(context.Background(), c.Receipt().Seq)
	if !strings.HasPrefix(e.Record.Organisation, "org\uFFFD\uFFFD") {
		t.Fatalf("stored %q", e.Record.Organisation)
	}
	p, err := s.Query(context.Background(), Query{Organisation: e.Record.Organisation})
	if err != nil || len(p.Entries) != 1 {
		t.Fatalf("query by the stored organisation: %d %v", len(p.Entries), err)
	}
}

// TestWriteTimeout: a record the writer does not make durable in
// WriteTimeout (or before ctx ends) is refused, not waited for; a full
// queue refuses at once. No writer runs here: the watchdog alone answers.
func TestWriteTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		full    bool
		timeout time.Duration // WriteTimeout
		ctx     time.Duration
		want    string
		atLeast time.Duration // the answer comes no sooner
	}{
		{"queue full", true, time.Hour, 0, "queue full", 0},
		{"not durable", false, 30 * time.Millisecond, 0, "not durable in time: context deadline exceeded", 30 * time.Millisecond},
		{"ctx first", false, time.Hour, 10 * time.Millisecond, "not durable in time: context deadline exceeded", 10 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Store{opt: Options{Signer: testKey, WriteTimeout: tc.timeout, MaxBatch: 1},
				wake: make(chan struct{}, 1), stopped: make(chan struct{})}
			defer close(s.stopped)
			go s.watchdog()
			if tc.full {
				for range s.maxWaiting() {
					s.waiting = append(s.waiting, &pending{})
				}
			}
			for range 2 {
				ctx := context.Background()
				if tc.ctx > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.ctx)
					defer cancel()
				}
				start := time.Now()
				err := s.append(ctx, &pending{payload: []byte("{}")})
				if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("append: %v, want %q", err, tc.want)
				}
				if d := time.Since(start); d > 2*time.Second || d < tc.atLeast {
					t.Fatalf("answered after %v, want %v to 2s", d, tc.atLeast)
				}
			}
		})
	}
}

// TestOnCommitAndQueueDepth: the writer reports every batch it synced
// (records, duration, error) and the queue is empty once calls return.
func TestOnCommitAndQueueDepth(t *testing.T) {
	opt := testOptions(t.TempDir())
	var mu sync.Mutex
	var batches, records int
	opt.OnCommit = func(n int, d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil || n <= 0 || d <= 0 {
			t.Errorf("OnCommit(%d, %v, %v)", n, d, err)
		}
		batches++
		records += n
	}
	s := openStore(t, opt)
	defer s.Close()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() { call(t, s, i) })
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if records != 32 || batches == 0 || batches > 32 {
		t.Errorf("OnCommit saw %d records in %d batches, want 32", records, batches)
	}
	if d := s.QueueDepth(); d != 0 {
		t.Errorf("queue depth %d after every call returned", d)
	}
}

// TestCloseRacingAppends: calls racing Close each get an answer — durable
// (and then in the log after reopen) or ErrClosed — and none hangs.
func TestCloseRacingAppends(t *testing.T) {
	for round := range 20 {
		dir := t.TempDir()
		s := openStore(t, testOptions(dir))
		var mu sync.Mutex
		var acked []uint64
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() {
				for j := 0; ; j++ {
					c, err := s.Begin(context.Background(), request(i*1000+j))
					if err != nil {
						if !errors.Is(err, ErrClosed) {
							t.Errorf("Begin: %v", err)
						}
						return
					}
					mu.Lock()
					acked = append(acked, c.Receipt().Seq)
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a call racing Close got no answer")
		}
		s = openStore(t, testOptions(dir))
		for _, seq := range acked {
			if _, err := s.Get(context.Background(), seq); err != nil {
				t.Fatalf("acknowledged record %d: %v", seq, err)
			}
		}
		if rep := verify(t, s); !rep.OK() {
			t.Fatalf("verify: %v", rep.Problem)
		}
		s.Close()
	}
}

// TestReadOnlyOpenWritesNothing: a store opened without a signer (fsb audit
// query or verify -dir, on a copy or a stopped server's directory) changes
// no file: an index that lags the log is brought up to date in memory,
// queries find every record, and the directory is as it was after Close.
func TestReadOnlyOpenWritesNothing(t *testing.T) {
	dir := t.TempDir()
	opt := testOptions(dir)
	fillStore(t, opt, 0, 6)
	// The index is derived data: remove it, as if it lagged the log.
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	before := treeOf(t, dir)
	ro := opt
	ro.Signer = nil
	r := openStore(t, ro)
	p, err := r.Query(context.Background(), Query{Subject: request(0).Subject})
	if err != nil || !slices.Equal(seqs(p), []uint64{1, 11}) { // the requests of calls 0 and 5
		t.Errorf("subject query on a read-only store: %v %v", seqs(p), err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if after := treeOf(t, dir); !maps.Equal(before, after) {
		t.Errorf("a read-only open changed the directory:\nbefore %v\nafter  %v", before, after)
	}
}

// treeOf maps every file under dir to its size and modification time.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out[path] = fmt.Sprintf("%d@%d", info.Size(), info.ModTime().UnixNano())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReadOnlyIndexFarBehind: a read-only store whose index is missing (a
// restored backup holds none) rebuilds it in a scratch directory outside
// Dir, its memory bounded by the flush size, removed on Close (a reviewer
// found it all held in memory).
func TestReadOnlyIndexFarBehind(t *testing.T) {
	dir := t.TempDir()
	opt := testOptions(dir)
	opt.IndexFlushEntries = 64
	fillStore(t, opt, 0, 200)
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	ro := opt
	ro.Signer = nil
	r := openStore(t, ro)
	scratch := r.scratch
	defer func() {
		r.Close()
		if _, err := os.Stat(scratch); scratch == "" || !os.IsNotExist(err) {
			t.Errorf("scratch index %q after Close: %v", scratch, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "index")); !os.IsNotExist(err) {
			t.Errorf("a read-only open wrote an index under Dir: %v", err)
		}
	}()
	if p, err := r.Query(context.Background(), Query{Subject: request(0).Subject}); err != nil || len(p.Entries) != 40 {
		t.Errorf("subject query on the rebuilt index: %d entries, %v", len(p.Entries), err)
	}
	st := r.idx.Stats()
	t.Logf("read-only index: %+v", st)
	if st.MemEntries > 2*opt.IndexFlushEntries {
		t.Errorf("a read-only open holds %d index pairs in %d frozen memtables (FlushEntries %d): memory grows with the log, unbounded",
			st.MemEntries, st.Frozen, opt.IndexFlushEntries)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc")
	}
	return len(ents)
}

// TestReadOnlyAheadIndexFDs: a read-only open of a store whose
// index is ahead of its log (copied apart) rebuilds it in memory; every
// run file it opened is closed by Close.
func TestReadOnlyAheadIndexFDs(t *testing.T) {
	dir := t.TempDir()
	opt := testOptions(dir)
	opt.IndexFlushEntries = 8
	fillStore(t, opt, 0, 4)
	old := t.TempDir()
	copyTree(t, dir, old)
	fillStore(t, opt, 4, 40)
	os.RemoveAll(filepath.Join(old, "index"))
	copyTree(t, filepath.Join(dir, "index"), filepath.Join(old, "index"))
	runs, _ := filepath.Glob(filepath.Join(old, "index", "*"))
	before := openFDs(t)
	ro := opt
	ro.Dir, ro.Signer = old, nil
	for range 3 {
		r := openStore(t, ro)
		p, err := r.Query(context.Background(), Query{Subject: request(1).Subject})
		if err != nil || len(p.Entries) != 1 { // call 1 only: the old log holds calls 0-3
			t.Errorf("query: %d %v", len(p.Entries), err)
		}
		r.Close()
	}
	if after := openFDs(t); after != before {
		t.Errorf("fds %d -> %d (index files %v)", before, after, runs)
	}
}

// TestCheckpointAfterTheAnswer: a record's waiter is answered once the
// record is durable, not after the checkpoint it made due: a checkpoint
// that cannot be written leaves the call answered (its records are on
// disk and verify after a reopen), the store broken for the next one, and
// OnCommit (the failures metric) told.
func TestCheckpointAfterTheAnswer(t *testing.T) {
	opt := testOptions(t.TempDir())
	var failures atomic.Int32
	opt.OnCommit = func(n int, d time.Duration, err error) {
		if err != nil {
			failures.Add(1)
		}
	}
	s, c := beganBeforeACheckpoint(t, opt)
	s.cks.f.Close() // the checkpoint due at record 2 cannot be written
	ctx := context.Background()
	rc, err := c.Finish(ctx, outcome(1))
	if err != nil || rc.Seq != 2 {
		t.Fatalf("Finish: %+v, %v; want record 2, answered although its checkpoint failed", rc, err)
	}
	if _, err := s.Begin(ctx, request(2)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Begin after the failed checkpoint: %v, want ErrUnavailable (the store is broken)", err)
	}
	if failures.Load() != 1 {
		t.Errorf("OnCommit heard %d failures, want the checkpoint's", failures.Load())
	}
	s.Close()
	r := openStore(t, opt)
	defer r.Close()
	if v := verify(t, r); !v.OK() || v.Last != 2 {
		t.Fatalf("after reopen: %+v %v; want records 1-2", v, v.Problem)
	}
}

// beganBeforeACheckpoint opens a store whose record 2 makes a checkpoint
// due and begins a call (record 1); Finish writes record 2.
func beganBeforeACheckpoint(t *testing.T, opt Options) (*Store, *Call) {
	t.Helper()
	opt.CheckpointEvery = 2
	s := openStore(t, opt)
	t.Cleanup(func() { s.Close() })
	c, err := s.Begin(context.Background(), request(1))
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// gateSigner is testKey's signer waiting for gate to close before each
// signature.
type gateSigner struct{ gate chan struct{} }

func (s *gateSigner) Public() crypto.PublicKey { return testKey.Public() }

func (s *gateSigner) Sign(r io.Reader, msg []byte, o crypto.SignerOpts) ([]byte, error) {
	<-s.gate
	return ed25519.PrivateKey(testKey).Sign(r, msg, o)
}

// TestRightAfterCall: a call is answered while the checkpoint its record
// made due is still being signed; whoever reads the checkpoints then — a
// proof, the last checkpoint (the admin API's head, a witness), Verify —
// waits for that signature and sees the checkpoint that signs the call.
func TestRightAfterCall(t *testing.T) {
	readers := map[string]func(t *testing.T, s *Store) uint64{
		"Proof": func(t *testing.T, s *Store) uint64 {
			p, err := s.Proof(context.Background(), 2)
			if err != nil {
				t.Error(err)
			} else if err := VerifyProof(testPub, p); err != nil {
				t.Error(err)
			}
			return p.Checkpoint.Seq
		},
		"LastCheckpoint": func(t *testing.T, s *Store) uint64 {
			ck, _ := s.LastCheckpoint()
			return ck.Seq
		},
		"Verify": func(t *testing.T, s *Store) uint64 {
			rep := verify(t, s)
			if !rep.OK() {
				t.Error(rep.Problem)
			}
			return rep.Signed
		},
	}
	for name, read := range readers {
		t.Run(name, func(t *testing.T) {
			opt := testOptions(t.TempDir())
			sig := &gateSigner{gate: make(chan struct{})}
			opt.Signer = sig
			s, c := beganBeforeACheckpoint(t, opt)
			release := time.AfterFunc(5*time.Second, func() { close(sig.gate) }) // a hung test fails rather than hangs
			rc, err := c.Finish(context.Background(), outcome(1))
			if err != nil {
				t.Fatal(err)
			}
			if !release.Stop() {
				t.Fatal("Finish waited for the checkpoint's signature")
			}
			time.AfterFunc(20*time.Millisecond, func() { close(sig.gate) }) // signed while the reader waits
			if got := read(t, s); got < rc.Seq {
				t.Fatalf("%s right after the call sees the checkpoint at %d, want one at or after record %d", name, got, rc.Seq)
			}
		})
	}
}

// TestPooledPayloadsUnderCancellation: many callers whose contexts
// end while their records wait (so take drops and releases them), a
// watchdog that answers late records while the writer still holds them,
// and records of every size (pooled, too small for the pooled buffer, too
// large to pool): every record in the log holds exactly what its own call
// wrote, so no payload buffer or holder was handed to two records.
func TestPooledPayloadsUnderCancellation(t *testing.T) {
	const P, N = 24, 60
	opt := testOptions(t.TempDir())
	opt.CheckpointEvery = 256
	opt.WriteTimeout = 2 * time.Millisecond
	s := openStore(t, opt)
	defer s.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for p := range P {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 7))
			for n := range N {
				i := p*N + n
				req := request(i)
				req.EndUser = strings.Repeat(strconv.Itoa(i%10), []int{0, 50, 3000, 9000}[rng.IntN(4)])
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if rng.IntN(3) == 0 {
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(rng.IntN(300))*time.Microsecond)
				}
				c, err := s.Begin(ctx, req)
				if err == nil {
					o := outcome(i)
					o.Sources[0].Subject = fmt.Sprintf("7901011234%d", i%7)
					o.Released = append(o.Released, strings.Repeat("f", []int{1, 4000, 10000}[rng.IntN(3)]))
					_, err = c.Finish(ctx, o)
				}
				cancel()
				if err != nil { // refusals are expected: what is written must be right
					mu.Lock()
					refused++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	settle(t, s)
	rep := verify(t, s)
	if !rep.OK() {
		t.Fatalf("verify: %+v %v", rep, rep.Problem)
	}
	t.Logf("%d records written, %d calls refused", rep.Records, refused)
	if refused == 0 || rep.Records < 100 {
		t.Errorf("the test exercises too little: %d records, %d refused", rep.Records, refused)
	}
	page, err := s.Query(context.Background(), Query{Limit: 1000})
	for err == nil {
		for _, e := range page.Entries {
			r := e.Record
			i, perr := strconv.Atoi(strings.TrimPrefix(r.TraceIn, "in-"))
			if perr != nil {
				t.Fatalf("seq %d: trace %q", e.Seq, r.TraceIn)
			}
			want := request(i)
			if r.TraceOut != want.TraceOut || r.Organisation != want.Organisation || r.Service != want.Service {
				t.Errorf("seq %d mixes two calls: %s", e.Seq, e.Raw)
			}
			switch r.Kind {
			case KindRequest:
				if strings.Trim(r.EndUser, strconv.Itoa(i%10)) != "" || r.Purpose != want.Purpose {
					t.Errorf("seq %d: request of call %d holds another's end user: %.200s", e.Seq, i, e.Raw)
				}
			case KindOutcome:
				if len(r.Sources) != 1 || r.Sources[0].TraceID != fmt.Sprintf("src-%d", i) ||
					r.Sources[0].Subject != Pseudonym(subjectKey, fmt.Sprintf("7901011234%d", i%7)) ||
					r.Purpose != want.Purpose || r.LegalBasis != want.LegalBasis {
					t.Errorf("seq %d: outcome of call %d: %.300s", e.Seq, i, e.Raw)
				}
			}
		}
		if page.Next == "" {
			break
		}
		page, err = s.Query(context.Background(), Query{Limit: 1000, Cursor: page.Next})
	}
	if err != nil {
		t.Fatal(err)
	}
}
