package wasm

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

// TestInstrumentKeepsBehaviour: an untrusted (instrumented) module answers
// what the trusted (original) one does. indirect.wat reaches each of its
// digits through a different kind of function index that the rewrite moves.
func TestInstrumentKeepsBehaviour(t *testing.T) {
	h := newHost(t, nil)
	for _, tc := range []struct{ module, in, want string }{
		{"indirect", "x", "ok:12357"},
		{"echo", `{"a":[1,2,3]}`, `{"a":[1,2,3]}`},
		{"echo", "=" + strings.Repeat("abc", 1000), ""}, // the sum loop: compared below
	} {
		var outs [2]string
		for _, trust := range []Trust{Trusted, Untrusted} {
			spec := specOf(t, tc.module)
			spec.Name += "-" + trust.String()
			spec.Trust = trust
			m := load(t, h, spec)
			out, err := m.Call(context.Background(), "transform", []byte(tc.in), nil)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.module, trust, err)
			}
			outs[trust] = string(out)
		}
		if outs[Trusted] != outs[Untrusted] {
			t.Errorf("%s(%.20q): trusted %q, untrusted %q", tc.module, tc.in, outs[Trusted], outs[Untrusted])
		}
		if tc.want != "" && outs[Untrusted] != tc.want {
			t.Errorf("%s(%.20q) = %q, want %q", tc.module, tc.in, outs[Untrusted], tc.want)
		}
	}
}

// TestInstrumentRefuses: what the rewrite cannot handle is refused at Load
// with the reason.
func TestInstrumentRefuses(t *testing.T) {
	echo := wasmOf(t, "echo")
	for _, tc := range []struct {
		name string
		bin  []byte
		want string
	}{
		{"not wasm", []byte("(module)"), "not a WebAssembly binary"},
		{"version 2", append([]byte("\x00asm\x02\x00\x00\x00"), echo[8:]...), "binary format version 2"},
		{"truncated", echo[:len(echo)/2], "unexpected end of the module"},
		{"unknown section", append(append([]byte{}, echo...), 0x0e, 0x00), "unknown section id 14"},
		{"reserved import", reservedImport, `imports from "openfsb_interrupt"`},
	} {
		_, err := instrument(tc.bin)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// reservedImport is (module (import "openfsb_interrupt" "poll" (func))).
var reservedImport = []byte("\x00asm\x01\x00\x00\x00" +
	"\x01\x04\x01\x60\x00\x00" + // type section: () -> ()
	"\x02\x1a\x01\x11openfsb_interrupt\x04poll\x00\x00")

// TestSpinningGuestLetsGCRun: a guest spinning until its deadline still
// lets the Go runtime stop the world, because its loop calls the host's
// poll; native code that never left the loop would hold up every
// goroutine of the process until it returned.
func TestSpinningGuestLetsGCRun(t *testing.T) {
	h := newHost(t, nil)
	spec := specOf(t, "loop")
	spec.Limits.Timeout = 2 * time.Second
	m := load(t, h, spec)
	done := make(chan error, 1)
	go func() {
		_, err := m.Call(context.Background(), "transform", []byte("x"), nil)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // the guest is spinning
	start := time.Now()
	runtime.GC()
	if took := time.Since(start); took > time.Second {
		t.Errorf("a collection took %v while a guest spun", took)
	}
	select {
	case err := <-done:
		t.Fatalf("the spinning call ended before its deadline: %v", err)
	default:
	}
	if err := <-done; !errors.Is(err, ErrTimeout) {
		t.Errorf("err = %v, want ErrTimeout", err)
	}
}

// FuzzInstrument: the rewrite never panics, and a module wazero compiles
// still compiles once instrumented.
func FuzzInstrument(f *testing.F) {
	for _, name := range []string{"echo", "indirect", "loop", "wasi", "membomb", "trap", "initloop"} {
		f.Add(wasmOf(f, name))
	}
	f.Add(reservedImport)
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	f.Cleanup(func() { _ = r.Close(ctx) })
	f.Fuzz(func(t *testing.T, bin []byte) {
		out, err := instrument(bin)
		if err != nil {
			return
		}
		orig, err := r.CompileModule(ctx, bin)
		if err != nil {
			return
		}
		_ = orig.Close(ctx)
		cm, err := r.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("compiles, but not once instrumented: %v", err)
		}
		_ = cm.Close(ctx)
	})
}
