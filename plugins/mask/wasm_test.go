package mask_test

import (
	"context"
	"testing"

	"github.com/openfsb/fsb/engine/wasm"
	"github.com/openfsb/fsb/plugins/internal/plugintest"
	"github.com/openfsb/fsb/sdk/guest"
)

const pkg = "github.com/openfsb/fsb/plugins/mask/wasm"

// TestWasm builds the plugin, runs every case in the sandbox and checks the
// output is the native one (and every error case fails there too).
func TestWasm(t *testing.T) {
	bin := plugintest.Build(t, pkg)
	m := plugintest.Load(t, "mask", bin, wasm.Untrusted)
	ctx := context.Background()
	for _, c := range okCases() {
		native, err := guest.Run("transform", []byte(c.in), []byte(c.cfg))
		if err != nil {
			t.Fatalf("%s: native: %v", c.name, err)
		}
		out, err := m.Call(ctx, "transform", []byte(c.in), []byte(c.cfg))
		if err != nil {
			t.Errorf("%s: wasm: %v", c.name, err)
			continue
		}
		if string(out) != string(native) {
			t.Errorf("%s: wasm %s\nnative   %s", c.name, out, native)
		}
	}
	for _, c := range errCases() {
		var cfg []byte
		if c.cfg != "" {
			cfg = []byte(c.cfg)
		}
		out, err := m.Call(ctx, "transform", []byte(c.in), cfg)
		if err == nil {
			t.Errorf("%s: wasm: no error, output %s", c.name, out)
		}
	}
}

func BenchmarkMaskWasm(b *testing.B) {
	in := benchInput(b)
	bin := plugintest.Build(b, pkg)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		trust wasm.Trust
	}{{"untrusted", wasm.Untrusted}, {"trusted", wasm.Trusted}} {
		b.Run(tc.name, func(b *testing.B) {
			m := plugintest.Load(b, "mask", bin, tc.trust)
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Call(ctx, "transform", in, benchCfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
