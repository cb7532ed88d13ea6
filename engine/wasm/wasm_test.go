package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEcho(t *testing.T) {
	h := newHost(t, nil)
	for _, trust := range []Trust{Untrusted, Trusted} {
		t.Run(trust.String(), func(t *testing.T) {
			spec := specOf(t, "echo")
			spec.Trust = trust
			m := load(t, h, spec)
			if got := m.Operations(); len(got) != 1 || got[0] != "transform" {
				t.Errorf("Operations() = %q", got)
			}
			for _, in := range []string{`{"a":1}`, "x", strings.Repeat("y", 100_000)} {
				out, err := m.Call(context.Background(), "transform", []byte(in), nil)
				if err != nil || string(out) != in {
					t.Fatalf("Call(%.20q) = %.20q, %v", in, out, err)
				}
			}
			// An empty output is JSON null for a transform: Call returns no bytes.
			if out, err := m.Call(context.Background(), "transform", []byte("0"), nil); err != nil || len(out) != 0 {
				t.Errorf("empty output: %q, %v", out, err)
			}
			if out, err := m.Call(context.Background(), "transform", nil, nil); err != nil || len(out) != 0 {
				t.Errorf("empty input: %q, %v", out, err)
			}
		})
	}
}

func TestLoadRefuses(t *testing.T) {
	echo := wasmOf(t, "echo")
	tests := []struct {
		name   string
		spec   func() ModuleSpec
		wants  []string // all in the error message
		refuse bool     // wraps ErrRefused
	}{
		{"digest mismatch", func() ModuleSpec {
			s := specOf(t, "echo")
			s.Digest = digestOf([]byte("something else"))
			return s
		}, []string{`"echo"`, "digest mismatch", digestOf([]byte("something else")), digestOf(echo)}, true},
		{"no digest", func() ModuleSpec {
			s := specOf(t, "echo")
			s.Digest = ""
			return s
		}, []string{"no digest", digestOf(echo)}, true},
		{"a WASI command", func() ModuleSpec { return specOf(t, "command") },
			[]string{"exports _start", "-buildmode=c-shared"}, true},
		{"unknown capability", func() ModuleSpec {
			s := specOf(t, "echo")
			s.Capabilities = []string{"clock", "net"}
			return s
		}, []string{`unknown capability "net"`, `only "clock" and "random"`}, true},
		{"wrong signature, operation named", func() ModuleSpec {
			s := specOf(t, "badsig")
			s.Operations = []string{"transform"}
			return s
		}, []string{`"badsig"`, `export "transform" has type (i32) -> i32, want (i32, i32) -> i64`}, true},
		{"wrong signature, no operation left", func() ModuleSpec { return specOf(t, "badsig") },
			[]string{"exports no operation (a function (i32, i32) -> i64)", `"transform" has type (i32) -> i32`}, true},
		{"missing operation", func() ModuleSpec {
			s := specOf(t, "echo")
			s.Operations = []string{"transform", "decode"}
			return s
		}, []string{`missing export "decode" (i32, i32) -> i64`}, true},
		{"abi version 2", func() ModuleSpec { return specOf(t, "abi2") },
			[]string{`"abi2"`, "abi_version returned 2, this host supports 1"}, true},
		{"no alloc", func() ModuleSpec { return specOf(t, "noexport") },
			[]string{`"noexport"`, `missing export "alloc" (i32) -> i32`}, true},
		{"foreign import", func() ModuleSpec { return specOf(t, "badimport") },
			[]string{"imports a function the sandbox does not offer: env.now"}, true},
		{"memory above the limit", func() ModuleSpec { return specOf(t, "bigmem") },
			[]string{"memory starts at 512 pages (32 MiB), above maxMemory 16 MiB"}, true},
		{"start function spins", func() ModuleSpec {
			s := specOf(t, "initloop")
			s.Limits.Timeout = 10 * time.Millisecond
			return s
		}, []string{"cannot be instantiated: _initialize still running after 1s"}, true},
		{"not wasm", func() ModuleSpec {
			b := []byte("(module)")
			return ModuleSpec{Name: "text", Wasm: b, Digest: digestOf(b)}
		}, []string{`"text"`, "does not compile"}, true},
		{"bad limits", func() ModuleSpec {
			s := specOf(t, "echo")
			s.Limits = Limits{MaxMemory: 1000, Timeout: -1}
			return s
		}, []string{"maxMemory 1000 is below one 64 KiB page", "negative timeout"}, true},
	}
	h := newHost(t, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := h.Load(context.Background(), tc.spec())
			if err == nil {
				_ = m.Close(context.Background())
				t.Fatal("loaded")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
			if errors.Is(err, ErrRefused) != tc.refuse {
				t.Errorf("errors.Is(%v, ErrRefused) = %v", err, !tc.refuse)
			}
		})
	}
	// Nothing refused stays compiled.
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.compiled) != 0 || len(h.modules) != 0 {
		t.Errorf("after refusals: %d compiled, %d modules", len(h.compiled), len(h.modules))
	}
}

// Each hostile module fails with its typed error, a clear message, and its
// instance discarded.
func TestHostileModules(t *testing.T) {
	tests := []struct {
		module  string
		limits  Limits
		kind    error
		detail  string
		message string // ErrGuest: the guest's message
	}{
		{"loop", Limits{Timeout: 50 * time.Millisecond}, ErrTimeout, "still running at its deadline (timeout 50ms)", ""},
		{"membomb", Limits{MaxMemory: 1 << 20}, ErrMemory, "memory limit of 1 MiB reached", ""},
		{"bigmax", Limits{MaxMemory: 1 << 20}, ErrMemory, "memory limit of 1 MiB reached", ""},
		{"trap", Limits{}, ErrTrap, "wasm error: unreachable", ""},
		{"bigout", Limits{}, ErrTooLarge, "output of 2147483647 bytes exceeds maxOutput 1048576", ""},
		{"badptr", Limits{}, ErrBadOutput, "output at 0xffff0000 (5 bytes) lies outside the 65536-byte memory", ""},
		{"fail", Limits{}, ErrGuest, "", "upstream said no"},
		// a failure message counts against maxOutput like any output
		{"fail", Limits{MaxOutput: 8}, ErrTooLarge, "failure message of 16 bytes exceeds maxOutput 8", ""},
	}
	rec := &logRecorder{}
	h := newHost(t, rec)
	for _, tc := range tests {
		t.Run(tc.module, func(t *testing.T) {
			spec := specOf(t, tc.module)
			spec.Limits, spec.PoolSize = tc.limits, 2
			m := load(t, h, spec)
			for range 3 { // and again: each call gets a fresh instance
				start := time.Now()
				_, err := m.Call(context.Background(), "transform", []byte(`{"x":1}`), nil)
				took := time.Since(start)
				var e *Error
				if !errors.As(err, &e) || !errors.Is(err, tc.kind) {
					t.Fatalf("err = %v, want %v", err, tc.kind)
				}
				want := fmt.Sprintf("wasm module %q operation %q: %v", tc.module, "transform", tc.kind)
				if tc.detail != "" {
					want += ": " + tc.detail
				}
				if err.Error() != want {
					t.Errorf("err = %q\nwant  %q", err, want)
				}
				if e.Message != tc.message {
					t.Errorf("Message = %q, want %q", e.Message, tc.message)
				}
				if tc.kind == ErrTimeout && took > tc.limits.Timeout+time.Second {
					t.Errorf("stopped after %v, timeout %v", took, tc.limits.Timeout)
				}
			}
			s := m.Stats()
			if s.Discarded != 3 || s.Calls != 3 || s.Live != 0 || s.Idle != 0 || s.Peak > 2 {
				t.Errorf("stats %+v", s)
			}
		})
	}
	// The guest's message reaches the log, not the error text.
	found := false
	for _, r := range rec.all() {
		if r.msg == "wasm call failed" && r.attrs["plugin"] == "fail" && r.attrs["message"] == "upstream said no" {
			found = true
		}
	}
	if !found {
		t.Error("the failure message was not logged")
	}
}

// echo.wat misbehaves on demand; after each failure the next call works.
func TestPoolSurvivesFailures(t *testing.T) {
	tests := []struct {
		input  string
		kind   error
		detail string
	}{
		{"!", ErrTrap, "wasm error: unreachable"},
		{"?", ErrGuest, ""},
		{"#", ErrBadOutput, "output at 0xffffff00 (1 bytes) lies outside the 65536-byte memory"},
		{">", ErrTooLarge, "output of 2147483632 bytes exceeds maxOutput 1024"},
		{"~", ErrTimeout, "still running at its deadline (timeout 50ms)"},
		{"+", ErrMemory, "memory limit of 256 KiB reached"},
		{"*", ErrTrap, "fsb.log: message at 0xfffffff0 (100 bytes) lies outside memory"},
		{strings.Repeat("a", 2000), ErrTooLarge, "input of 2000 bytes exceeds maxInput 1024"},
		{strings.Repeat("a", 4<<20), ErrTooLarge, "input of 4194304 bytes exceeds maxInput 1024"},
	}
	h := newHost(t, nil)
	spec := specOf(t, "echo")
	spec.Limits = Limits{Timeout: 50 * time.Millisecond, MaxMemory: 256 << 10, MaxInput: 1024, MaxOutput: 1024}
	spec.PoolSize = 1
	m := load(t, h, spec)
	for _, tc := range tests {
		t.Run(tc.input[:1], func(t *testing.T) {
			before := m.Stats()
			_, err := m.Call(context.Background(), "transform", []byte(tc.input), nil)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
			if tc.detail != "" && !strings.HasSuffix(err.Error(), ": "+tc.detail) {
				t.Errorf("err = %q, want detail %q", err, tc.detail)
			}
			after := m.Stats()
			refusedEarly := tc.kind == ErrTooLarge && len(tc.input) > 1
			if discarded := after.Discarded - before.Discarded; discarded != map[bool]uint64{true: 0, false: 1}[refusedEarly] {
				t.Errorf("%d instances discarded", discarded)
			}
			out, err := m.Call(context.Background(), "transform", []byte("ok"), nil)
			if err != nil || string(out) != "ok" {
				t.Fatalf("next call: %q, %v", out, err)
			}
			if s := m.Stats(); s.Live != 1 || s.Idle != 1 || s.Peak != 1 {
				t.Errorf("stats %+v", s)
			}
		})
	}
	if _, err := m.Call(context.Background(), "decode", nil, nil); !errors.Is(err, ErrUnknownOp) ||
		!strings.Contains(err.Error(), "the module exports transform") {
		t.Errorf("unknown operation: %v", err)
	}
}

// The flow engine passes contexts with a deadline and no Done channel; the
// deadline must stop a runaway guest all the same.
func TestDeadlineOnlyContextStopsLoop(t *testing.T) {
	h := newHost(t, nil)
	spec := specOf(t, "echo")
	spec.Limits.Timeout = 10 * time.Second
	m := load(t, h, spec)
	ctx := deadlineOnly{context.Background(), time.Now().Add(50 * time.Millisecond)}
	start := time.Now()
	_, err := m.Call(ctx, "transform", []byte("~"), nil)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("stopped after %v", took)
	}
	// A deadline already past fails before the guest runs: nothing discarded.
	past := deadlineOnly{context.Background(), time.Now().Add(-time.Second)}
	if _, err := m.Call(past, "transform", []byte("x"), nil); !errors.Is(err, ErrTimeout) {
		t.Errorf("past deadline: %v", err)
	}
	if s := m.Stats(); s.Discarded != 1 {
		t.Errorf("stats %+v", s)
	}
	// A cancelled caller gets its own error back.
	cctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := m.Call(cctx, "transform", []byte("~"), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestWaitForInstanceIsBoundedByContext(t *testing.T) {
	h := newHost(t, nil)
	spec := specOf(t, "echo")
	spec.PoolSize = 1
	spec.Limits.Timeout = 300 * time.Millisecond
	m := load(t, h, spec)
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		_, _ = m.Call(context.Background(), "transform", []byte("~"), nil)
	}()
	for m.Stats().Idle != 0 { // until the spinning call holds the only instance
		time.Sleep(time.Millisecond)
	}
	for _, ctx := range []func() context.Context{
		func() context.Context {
			return deadlineOnly{context.Background(), time.Now().Add(20 * time.Millisecond)}
		},
		func() context.Context {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			t.Cleanup(cancel)
			return ctx
		},
	} {
		_, err := m.Call(ctx(), "transform", []byte("x"), nil)
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "no instance free before the deadline (all 1 busy)") {
			t.Errorf("err = %v", err)
		}
	}
	<-busy
	if out, err := m.Call(context.Background(), "transform", []byte("x"), nil); err != nil || string(out) != "x" {
		t.Errorf("after: %q, %v", out, err)
	}
}

// fsb.config and fsb.log see the configuration and the step of their own
// call, whatever runs beside them.
func TestHostFunctionsReachTheirCall(t *testing.T) {
	rec := &logRecorder{}
	h := newHost(t, rec)
	spec := specOf(t, "echo")
	spec.PoolSize = 4
	m := load(t, h, spec)
	const workers, calls = 8, 150
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := range workers {
		wg.Go(func() {
			for i := range calls {
				cfg := fmt.Sprintf(`{"g":%d,"i":%d,"pad":%q}`, g, i, strings.Repeat("p", i))
				out, err := m.Call(context.Background(), "transform", []byte("$"), []byte(cfg))
				if err != nil || string(out) != cfg {
					errs <- fmt.Errorf("config call %d/%d: %q, %v", g, i, out, err)
					return
				}
				ctx := WithStep(context.Background(), fmt.Sprintf("step-%d-%d", g, i))
				msg := fmt.Sprintf("%%log-%d-%d", g, i)
				if _, err := m.Call(ctx, "transform", []byte(msg), nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// A call without configuration reads {}.
	if out, err := m.Call(context.Background(), "transform", []byte("$"), nil); err != nil || string(out) != "{}" {
		t.Errorf("no config: %q, %v", out, err)
	}
	logged := 0
	for _, r := range rec.all() {
		if !strings.HasPrefix(r.msg, "%log-") {
			continue
		}
		logged++
		if want := "step-" + strings.TrimPrefix(r.msg, "%log-"); r.attrs["step"] != want || r.attrs["plugin"] != "echo" || r.level != 0 {
			t.Errorf("log %q has step %q plugin %q level %v", r.msg, r.attrs["step"], r.attrs["plugin"], r.level)
		}
	}
	if logged != workers*calls {
		t.Errorf("%d guest logs, want %d", logged, workers*calls)
	}
}

func TestCapabilities(t *testing.T) {
	h := newHost(t, nil)
	call := func(m *Module, in string) []byte {
		t.Helper()
		out, err := m.Call(context.Background(), "transform", []byte(in), nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	clock := func(m *Module) time.Time {
		return time.Unix(0, int64(binary.LittleEndian.Uint64(call(m, "c"))))
	}
	spec := specOf(t, "wasi")
	spec.PoolSize, spec.Recycle.Calls = 1, 1 // a fresh instance per call
	sandboxed := load(t, h, spec)
	if got := clock(sandboxed); got.Year() != 2022 {
		t.Errorf("sandboxed clock reads %v, want the fixed 2022 epoch", got)
	}
	if a, b := call(sandboxed, "r"), call(sandboxed, "r"); !bytes.Equal(a, b) {
		t.Errorf("sandboxed randomness differs between instances: %x %x", a, b)
	}

	spec.Capabilities = []string{CapClock, CapRandom}
	granted := load(t, h, spec)
	if got := clock(granted); time.Since(got).Abs() > time.Minute {
		t.Errorf("granted clock reads %v", got)
	}
	if a, b := call(granted, "r"), call(granted, "r"); bytes.Equal(a, b) {
		t.Errorf("granted randomness repeats: %x", a)
	}
}

func TestRecycle(t *testing.T) {
	h := newHost(t, nil)
	spec := specOf(t, "echo")
	spec.PoolSize, spec.Recycle.Calls = 1, 3
	m := load(t, h, spec)
	for range 10 {
		if _, err := m.Call(context.Background(), "transform", []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if s := m.Stats(); s.Recycled != 3 || s.Discarded != 0 || s.Live != 1 {
		t.Errorf("by calls: %+v", s)
	}
	// The probe instance served calls 1-3, then one new instance per three
	// calls: 4, 7 and 10 started one, the other seven found one warm.
	if s := m.Stats(); s.Instantiations != 4 || s.Hits != 7 || s.Calls != 10 {
		t.Errorf("instantiations and hits: %+v", s)
	}
	// An input four times the initial memory makes the instance grow past 2×.
	if _, err := m.Call(context.Background(), "transform", bytes.Repeat([]byte("x"), 256<<10), nil); err != nil {
		t.Fatal(err)
	}
	if s := m.Stats(); s.Recycled != 4 || s.Live != 0 {
		t.Errorf("by growth: %+v", s)
	}
}

func TestCompiledOncePerDigest(t *testing.T) {
	h := newHost(t, nil)
	spec := specOf(t, "echo")
	a, b := load(t, h, spec), load(t, h, spec)
	spec.Trust = Trusted
	c := load(t, h, spec)
	refs := func() (n []int) {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, trust := range []Trust{Untrusted, Trusted} {
			if e := h.compiled[compiledKey{trust, digestOf(spec.Wasm)}]; e != nil {
				n = append(n, e.refs)
			} else {
				n = append(n, 0)
			}
		}
		return n
	}
	if got := refs(); got[0] != 2 || got[1] != 1 {
		t.Errorf("refs = %v, want [2 1]", got)
	}
	if a.compiled.cm != b.compiled.cm {
		t.Error("two Loads of one digest compiled twice")
	}
	for _, m := range []*Module{a, b, c} {
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := refs(); got[0] != 0 || got[1] != 0 {
		t.Errorf("after Close refs = %v", got)
	}
}

func TestCloseReleasesEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	h, err := NewHost(context.Background(), HostConfig{CacheDir: filepath.Join(t.TempDir(), "c")})
	if err != nil {
		t.Fatal(err)
	}
	spec := specOf(t, "echo")
	spec.PoolSize = 4
	m := load(t, h, spec)
	spec.Trust = Trusted
	trusted := load(t, h, spec)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				_, _ = m.Call(context.Background(), "transform", []byte("x"), nil)
				_, _ = trusted.Call(context.Background(), "transform", []byte("x"), nil)
			}
		})
	}
	wg.Wait()
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := m.Stats(); s.Live != 0 || s.Idle != 0 {
		t.Errorf("after Module.Close: %+v", s)
	}
	if _, err := m.Call(context.Background(), "transform", []byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Call after Close: %v", err)
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := trusted.Stats(); s.Live != 0 {
		t.Errorf("after Host.Close: %+v", s)
	}
	if _, err := h.Load(context.Background(), specOf(t, "echo")); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after Close: %v", err)
	}
	if len(h.compiled) != 0 || len(h.modules) != 0 {
		t.Errorf("host keeps %d compiled, %d modules", len(h.compiled), len(h.modules))
	}
	settleGoroutines(t, before)
}

// Close while a call runs: waiters fail at once, the running call finishes
// and its instance is closed when it returns.
func TestCloseDuringCalls(t *testing.T) {
	h := newHost(t, nil)
	spec := specOf(t, "echo")
	spec.PoolSize = 1
	spec.Limits.Timeout = 200 * time.Millisecond
	m := load(t, h, spec)
	running := make(chan error, 1)
	go func() {
		_, err := m.Call(context.Background(), "transform", []byte("~"), nil)
		running <- err
	}()
	for m.Stats().Idle != 0 {
		time.Sleep(time.Millisecond)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := m.Call(context.Background(), "transform", []byte("x"), nil)
		waiting <- err
	}()
	time.Sleep(10 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-waiting; !errors.Is(err, ErrClosed) {
		t.Errorf("waiting call: %v", err)
	}
	if err := <-running; !errors.Is(err, ErrTimeout) {
		t.Errorf("running call: %v", err)
	}
	if s := m.Stats(); s.Live != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestCacheDir(t *testing.T) {
	t.Run("created private", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		h, err := NewHost(context.Background(), HostConfig{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close(context.Background())
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("mode %v, %v", fi.Mode(), err)
		}
	})
	t.Run("writable by others", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("no mode bits")
		}
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		_, err := NewHost(context.Background(), HostConfig{CacheDir: dir})
		if err == nil || !strings.Contains(err.Error(), "writable by group or others") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("default under the user cache", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv("XDG_CACHE_HOME", home)
		t.Setenv("HOME", home)
		h, err := NewHost(context.Background(), HostConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close(context.Background())
		base, _ := os.UserCacheDir()
		if _, err := os.Stat(filepath.Join(base, "openfsb", "wasm")); err != nil {
			t.Error(err)
		}
	})
}
