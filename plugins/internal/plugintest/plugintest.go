// Package plugintest builds a plugin's wasm/ package and loads it in the
// engine's sandbox, for the plugins' tests and benchmarks.
package plugintest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/wasm"
	"github.com/openfsb/fsb/sdk/guest"
)

// Build compiles the plugin package pkg (an import path) for wasip1 as a
// reactor into a temporary directory and returns the module. It skips the
// test under -short or without a go command.
func Build(tb testing.TB, pkg string) []byte {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds a wasm module (several seconds); skipped with -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		tb.Skip("no go command in PATH")
	}
	out := filepath.Join(tb.TempDir(), "plugin.wasm")
	cmd := exec.Command(goTool, "build", "-buildmode=c-shared", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Load loads bin in a fresh host (closed when the test ends) with 32 MiB of
// memory and the given trust.
func Load(tb testing.TB, name string, bin []byte, trust wasm.Trust) *wasm.Module {
	tb.Helper()
	ctx := context.Background()
	host, err := wasm.NewHost(ctx, wasm.HostConfig{CacheDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { host.Close(ctx) })
	m, err := host.Load(ctx, wasm.ModuleSpec{
		Name:   name,
		Wasm:   bin,
		Digest: digest(bin),
		Trust:  trust,
		Limits: wasm.Limits{MaxMemory: 32 << 20},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// BuiltWith is the Go toolchain the committed modules (plugins/*/*.wasm)
// were built with. Another toolchain builds other bytes from the same
// source, so MatchesCommitted only compares under this one.
const BuiltWith = "go1.26.8"

// MatchesCommitted builds the plugin package pkg as `fsb plugin build`
// does and checks that the committed module at path is exactly that build:
// the module the demo runs (and its pinned digest) comes from the source
// beside it. Under another toolchain it skips, or fails when CI=true.
func MatchesCommitted(t *testing.T, pkg, path string) {
	t.Helper()
	if v := runtime.Version(); v != BuiltWith {
		msg := fmt.Sprintf("the committed modules were built with %s, this is %s: rebuild them (plugins/README.md) to compare", BuiltWith, v)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	committed, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the committed module: %v", err)
	}
	built := Build(t, pkg)
	if got, want := digest(built), digest(committed); got != want {
		src := strings.TrimPrefix(pkg, "github.com/openfsb/fsb/")    // plugins/<name>/wasm
		out := filepath.Join(filepath.Dir(src), filepath.Base(path)) // plugins/<name>/<name>.wasm
		t.Errorf("%s is not the build of its source: committed sha256:%s, built sha256:%s\n"+
			"rebuild it from the repository root with `go run ./cmd/fsb plugin build -o %s %s` and update its digest where it is declared (flows/plugins.yaml, the READMEs)",
			path, want, got, out, src)
	}
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Case is one input and configuration of a plugin test.
type Case struct{ Name, In, Cfg string }

// MatchesNative builds the plugin package pkg, runs every ok case in the
// sandbox and checks the output is the native one (guest.Run), and checks
// every failing case fails in the sandbox too.
func MatchesNative(t *testing.T, name, pkg string, ok, failing []Case) {
	t.Helper()
	m := Load(t, name, Build(t, pkg), wasm.Untrusted)
	ctx := context.Background()
	for _, c := range ok {
		native, err := guest.Run("transform", []byte(c.In), []byte(c.Cfg))
		if err != nil {
			t.Fatalf("%s: native: %v", c.Name, err)
		}
		out, err := m.Call(ctx, "transform", []byte(c.In), []byte(c.Cfg))
		if err != nil {
			t.Errorf("%s: wasm: %v", c.Name, err)
			continue
		}
		if string(out) != string(native) {
			t.Errorf("%s: wasm %s\nnative   %s", c.Name, out, native)
		}
	}
	for _, c := range failing {
		var cfg []byte
		if c.Cfg != "" {
			cfg = []byte(c.Cfg)
		}
		if out, err := m.Call(ctx, "transform", []byte(c.In), cfg); err == nil {
			t.Errorf("%s: wasm: no error, output %s", c.Name, out)
		}
	}
}

// BenchWasm measures the plugin on in/cfg in the sandbox, untrusted (with
// timeout enforcement) and trusted.
func BenchWasm(b *testing.B, name, pkg string, in, cfg []byte) {
	bin := Build(b, pkg)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		trust wasm.Trust
	}{{"untrusted", wasm.Untrusted}, {"trusted", wasm.Trusted}} {
		b.Run(tc.name, func(b *testing.B) {
			m := Load(b, name, bin, tc.trust)
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			before := m.Stats()
			for b.Loop() {
				if _, err := m.Call(ctx, "transform", in, cfg); err != nil {
					b.Fatal(err)
				}
			}
			// Recycled instances cost a fresh instantiation each: say how often.
			after := m.Stats()
			b.ReportMetric(float64(after.Recycled-before.Recycled)/float64(after.Calls-before.Calls), "recycled/op")
		})
	}
}

// BenchNative measures the plugin's registered handler natively.
func BenchNative(b *testing.B, in, cfg []byte) {
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := guest.Run("transform", in, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// Input reads a test document or fails the benchmark.
func Input(b *testing.B, path string) []byte {
	in, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return in
}
