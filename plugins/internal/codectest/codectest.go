// Package codectest checks a codec plugin (an operation other than
// transform, e.g. decode) in the sandbox against its native code, and
// measures both, for plugins/csv and plugins/fixedwidth.
package codectest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/openfsb/fsb/engine/wasm"
	"github.com/openfsb/fsb/plugins/internal/plugintest"
	"github.com/openfsb/fsb/sdk/guest"
)

// Case is one input and configuration.
type Case struct{ Name, In, Cfg string }

// MatchesNative builds pkg and checks that op gives the native output for
// every ok case, and fails for every failing one.
func MatchesNative(t *testing.T, name, pkg, op string, ok, failing []Case) {
	t.Helper()
	m := plugintest.Load(t, name, plugintest.Build(t, pkg), wasm.Untrusted)
	ctx := context.Background()
	for _, c := range ok {
		native, err := guest.Run(op, []byte(c.In), []byte(c.Cfg))
		if err != nil {
			t.Fatalf("%s: native: %v", c.Name, err)
		}
		out, err := m.Call(ctx, op, []byte(c.In), []byte(c.Cfg))
		if err != nil {
			t.Errorf("%s: wasm: %v", c.Name, err)
			continue
		}
		if string(out) != string(native) {
			t.Errorf("%s: wasm %s\nnative   %s", c.Name, out, native)
		}
	}
	for _, c := range failing {
		if out, err := m.Call(ctx, op, []byte(c.In), []byte(c.Cfg)); err == nil {
			t.Errorf("%s: wasm: no error, output %s", c.Name, out)
		}
	}
}

// Bench measures op natively and in the sandbox (untrusted) on in/cfg.
// limits raise the sandbox's defaults for large inputs.
func Bench(b *testing.B, name, pkg, op string, in, cfg []byte, limits wasm.Limits) {
	b.Run("native", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := guest.Run(op, in, cfg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("wasm", func(b *testing.B) {
		m := load(b, name, op, plugintest.Build(b, pkg), limits)
		ctx := context.Background()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			if _, err := m.Call(ctx, op, in, cfg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func load(tb testing.TB, name, op string, bin []byte, limits wasm.Limits) *wasm.Module {
	ctx := context.Background()
	host, err := wasm.NewHost(ctx, wasm.HostConfig{CacheDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { host.Close(ctx) })
	m, err := host.Load(ctx, wasm.ModuleSpec{Name: name, Wasm: bin, Digest: digest(bin), Trust: wasm.Untrusted, Limits: limits, Operations: []string{op}})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
