package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// watDir holds the WAT sources of the test modules.
var watDir = filepath.Join("..", "..", "testdata", "wasm")

var compiledWAT sync.Map // name → []byte

// wasmOf compiles testdata/wasm/<name>.wat with wabt's wat2wasm (once per
// test binary) and returns the module's bytes.
func wasmOf(tb testing.TB, name string) []byte {
	tb.Helper()
	if b, ok := compiledWAT.Load(name); ok {
		return b.([]byte)
	}
	tool, err := exec.LookPath("wat2wasm")
	if err != nil {
		const how = "wat2wasm not found: install it with `apt-get update && apt-get install -y wabt`"
		if os.Getenv("CI") == "true" {
			tb.Fatal(how)
		}
		tb.Skip(how)
	}
	out := filepath.Join(tb.TempDir(), name+".wasm")
	if msg, err := exec.Command(tool, filepath.Join(watDir, name+".wat"), "-o", out).CombinedOutput(); err != nil {
		tb.Fatalf("wat2wasm %s.wat: %v\n%s", name, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	compiledWAT.Store(name, b)
	return b
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// specOf declares a test module named after its file, with its digest.
func specOf(tb testing.TB, name string) ModuleSpec {
	b := wasmOf(tb, name)
	return ModuleSpec{Name: name, Wasm: b, Digest: digestOf(b)}
}

// newHost starts a host with a private cache and the logs in rec (may be nil).
func newHost(tb testing.TB, rec *logRecorder) *Host {
	tb.Helper()
	cfg := HostConfig{CacheDir: filepath.Join(tb.TempDir(), "cache")}
	if rec != nil {
		cfg.Log = slog.New(rec)
	}
	h, err := NewHost(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

func load(tb testing.TB, h *Host, spec ModuleSpec) *Module {
	tb.Helper()
	m, err := h.Load(context.Background(), spec)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// logRecorder is a slog.Handler that keeps every record with its attributes.
type logRecorder struct {
	mu      sync.Mutex
	records []logRecord
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	lr := logRecord{level: rec.Level, msg: rec.Message, attrs: map[string]string{}}
	rec.Attrs(func(a slog.Attr) bool {
		lr.attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	r.records = append(r.records, lr)
	r.mu.Unlock()
	return nil
}

func (r *logRecorder) all() []logRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]logRecord(nil), r.records...)
}

// deadlineOnly is the flow engine's hot-path context: a deadline and no
// Done channel, which nothing but time can end.
type deadlineOnly struct {
	context.Context
	at time.Time
}

func (d deadlineOnly) Deadline() (time.Time, bool) { return d.at, true }
func (d deadlineOnly) Done() <-chan struct{}       { return nil }
func (d deadlineOnly) Err() error                  { return nil }

// settleGoroutines waits (bounded) for the goroutine count to fall back to
// at most want, and fails with a dump when it does not.
func settleGoroutines(tb testing.TB, want int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			tb.Fatalf("goroutine leak: %d running, want at most %d\n%s", n, want, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
