package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

var (
	testKey     = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	testPub     = testKey.Public().(ed25519.PublicKey)
	subjectKey  = Key{ID: "s1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	bodyKey     = Key{ID: "b1", Secret: []byte("fedcba9876543210fedcba9876543210")}
	quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))
)

func testOptions(dir string) Options {
	return Options{
		Dir:                dir,
		Signer:             testKey,
		CheckpointEvery:    4,
		CheckpointInterval: time.Hour,
		SubjectKeys:        []Key{subjectKey},
		BodyKeys:           []Key{bodyKey},
		Logger:             quietLogger,
	}
}

func openStore(t testing.TB, opt Options) *Store {
	t.Helper()
	s, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newStore(t testing.TB) *Store {
	t.Helper()
	s := openStore(t, testOptions(t.TempDir()))
	t.Cleanup(func() { s.Close() })
	return s
}

func request(i int) Request {
	return Request{
		Organisation:   fmt.Sprintf("org%d", i%3),
		Application:    "app",
		Credential:     "cert:ab12",
		ClientIP:       "192.0.2.10",
		EndUser:        "official-7",
		Purpose:        "tax-check",
		Grant:          "g-1",
		LegalBasis:     "law: Law of 8 August 1983, art. 5",
		Service:        fmt.Sprintf("svc%d", i%2),
		ServiceVersion: "v1",
		Subject:        fmt.Sprintf("8501011234%d", i%5),
		TraceIn:        fmt.Sprintf("in-%d", i),
		TraceOut:       fmt.Sprintf("out-%d", i),
	}
}

func outcome(i int) Outcome {
	return Outcome{
		Status:   200,
		Response: fmt.Appendf(nil, `{"n":%d}`, i),
		Released: []string{"name", "address"},
		Sources: []SourceCall{{
			Source: "register", Operation: "get", TraceID: fmt.Sprintf("src-%d", i),
			Status: 200, Latency: 1500 * time.Microsecond, Bytes: 812, Attempts: 1,
			Digest: Digest([]byte("answer")),
		}},
	}
}

// call writes one request and outcome record (two seqs).
func call(t testing.TB, s *Store, i int) (Receipt, Receipt) {
	t.Helper()
	ctx := context.Background()
	c, err := s.Begin(ctx, request(i))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.Finish(ctx, outcome(i))
	if err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	return c.Receipt(), rc
}

// settle returns once the writer has finished every batch queued before
// it, checkpoint included: a call's answer does not wait for the
// checkpoint its record made due (commit), the tests' counts of signed
// records do.
func settle(t testing.TB, s *Store) {
	t.Helper()
	if err := s.append(context.Background(), &pending{}); err != nil {
		t.Fatal(err)
	}
}

// fillStore opens a store with opt, makes calls from…to-1 and closes it.
func fillStore(t testing.TB, opt Options, from, to int) {
	t.Helper()
	s := openStore(t, opt)
	for i := from; i < to; i++ {
		call(t, s, i)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func verify(t testing.TB, s *Store) Report {
	t.Helper()
	rep, err := Verify(context.Background(), s, testPub)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// rawFrame is one frame of the log as the tamper tests see it.
type rawFrame struct {
	seq   uint64
	entry []byte
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// rawFrames reads every frame of the log under dir, in order.
func rawFrames(t testing.TB, dir string) []rawFrame {
	t.Helper()
	var out []rawFrame
	for _, name := range segFiles(t, dir) {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.TrimRight(b, "\x00") // a prepared segment's unused zeros
		for off := len(segMagic); off < len(b); {
			seq, e, n, err := cutFrame(b[off:])
			if err != nil {
				t.Fatalf("%s at %d: %v", name, off, err)
			}
			out = append(out, rawFrame{seq, bytes.Clone(e)})
			off += n
		}
	}
	return out
}

// writeFrames replaces the log under dir by one segment holding frames,
// with valid checksums (someone who knows the format), and no sidecars.
func writeFrames(t testing.TB, dir string, frames []rawFrame) {
	t.Helper()
	old, _ := filepath.Glob(filepath.Join(dir, "log", "*"))
	for _, f := range old {
		os.Remove(f)
	}
	b := []byte(segMagic)
	for _, f := range frames {
		b = appendFrame(b, f.seq, f.entry)
	}
	if err := os.WriteFile(filepath.Join(dir, "log", fmt.Sprintf("%020d.seg", 1)), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// frameOf returns the index in frames of seq.
func frameOf(t testing.TB, frames []rawFrame, seq uint64) int {
	t.Helper()
	for i, f := range frames {
		if f.seq == seq {
			return i
		}
	}
	t.Fatalf("no frame %d", seq)
	return -1
}

// copyTree copies dir recursively (a crash image when the store is open).
func copyTree(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // renamed or removed by the store meanwhile (an index run's temp file)
		}
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// crashImage copies an open store's directory: what a SIGKILL would leave.
func crashImage(t testing.TB, s *Store) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "image")
	copyTree(t, s.dir, dir)
	return dir
}

// openReadOnly opens dir without a signer (what fsb audit verify does).
func openReadOnly(t testing.TB, dir string) *Store {
	t.Helper()
	opt := testOptions(dir)
	opt.Signer = nil
	s := openStore(t, opt)
	t.Cleanup(func() { s.Close() })
	return s
}

// editCheckpoint rewrites the checkpoint frame at seq (checksum fixed).
func editCheckpoint(t testing.TB, dir string, seq uint64, edit func(c *Checkpoint)) {
	t.Helper()
	p := filepath.Join(dir, "checkpoints")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off+ckSize <= len(b); off += ckSize {
		c, ok := decodeCkFrame(b[off : off+ckSize])
		if !ok || c.Seq != seq {
			continue
		}
		edit(&c)
		f, err := encodeCkFrame(c.Seq, c.Head, c.Time, c.Signature)
		if err != nil {
			t.Fatal(err)
		}
		copy(b[off:], f)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no checkpoint at %d", seq)
}
