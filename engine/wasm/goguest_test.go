package wasm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var goGuest struct {
	once sync.Once
	wasm []byte
	err  error
}

// goGuestWasm builds testdata/goguest for wasip1 once per test binary. It
// skips when no Go toolchain is on PATH (fatal when CI=true).
func goGuestWasm(tb testing.TB) []byte {
	tb.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal("go not on PATH: the Go guest cannot be built")
		}
		tb.Skip("go not on PATH: the Go guest cannot be built")
	}
	goGuest.once.Do(func() {
		dir, err := os.MkdirTemp("", "goguest")
		if err != nil {
			goGuest.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "goguest.wasm")
		cmd := exec.Command(gobin, "build", "-buildmode=c-shared", "-o", out, "./testdata/goguest")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			goGuest.err = errors.New(err.Error() + "\n" + string(msg))
			return
		}
		goGuest.wasm, goGuest.err = os.ReadFile(out)
	})
	if goGuest.err != nil {
		tb.Fatalf("building the Go guest: %v", goGuest.err)
	}
	return goGuest.wasm
}

func goGuestSpec(tb testing.TB) ModuleSpec {
	b := goGuestWasm(tb)
	return ModuleSpec{Name: "goguest", Wasm: b, Digest: digestOf(b), Operations: []string{"echo", "transform"}}
}

// A Go guest needs WASI, its _initialize, and its stderr to explain a panic.
func TestGoGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and compiles a 3 MB Go guest")
	}
	rec := &logRecorder{}
	h := newHost(t, rec)
	spec := goGuestSpec(t)
	spec.PoolSize = 2
	spec.Limits.MaxMemory = 64 << 20
	spec.Limits.Timeout = 10 * time.Second // filling 64 MiB through the Go collector is slow under -race
	m := load(t, h, spec)
	ctx := WithStep(context.Background(), "convert")
	call := func(op, in, cfg string) (string, error) {
		out, err := m.Call(ctx, op, []byte(in), []byte(cfg))
		return string(out), err
	}
	if out, err := call("echo", "hello", ""); err != nil || out != "hello" {
		t.Fatalf("echo: %q, %v", out, err)
	}
	if out, err := call("transform", `{"b":[1,2],"a":"x"}`, ""); err != nil || out != `{"a":"x","b":[1,2]}` {
		t.Fatalf("transform: %q, %v", out, err)
	}
	if out, err := call("transform", "$", `{"k":"v"}`); err != nil || out != `{"k":"v"}` {
		t.Fatalf("config: %q, %v", out, err)
	}
	var e *Error
	if _, err := call("transform", "{", ""); !errors.As(err, &e) || !errors.Is(err, ErrGuest) || e.Message != "unexpected end of JSON input" {
		t.Fatalf("bad JSON: %v (message %q)", err, e.Message)
	}

	// A Go panic prints to stderr and exits: a trap, its message logged.
	if _, err := call("echo", "!", ""); !errors.Is(err, ErrTrap) {
		t.Fatalf("panic: %v", err)
	}
	logged := false
	for _, r := range rec.all() {
		if r.msg == "wasm guest stderr" && strings.Contains(r.attrs["stderr"], "asked to panic") &&
			r.attrs["plugin"] == "goguest" && r.attrs["step"] == "convert" {
			logged = true
		}
	}
	if !logged {
		t.Errorf("the panic message was not logged: %+v", rec.all())
	}

	// Allocating without end hits the limit: the Go runtime's fatal
	// "out of memory" becomes ErrMemory.
	if _, err := call("echo", "+", ""); !errors.Is(err, ErrMemory) {
		t.Fatalf("out of memory: %v", err)
	}
	if out, err := call("echo", "still here", ""); err != nil || out != "still here" {
		t.Fatalf("after: %q, %v", out, err)
	}
	if s := m.Stats(); s.Discarded != 3 || s.Live > 2 {
		t.Errorf("stats %+v", s)
	}
}
