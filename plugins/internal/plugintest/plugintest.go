// Package plugintest builds a plugin's wasm/ package and loads it in the
// engine's sandbox, for the plugins' tests and benchmarks.
package plugintest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/wasm"
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
	sum := sha256.Sum256(bin)
	m, err := host.Load(ctx, wasm.ModuleSpec{
		Name:   name,
		Wasm:   bin,
		Digest: hex.EncodeToString(sum[:]),
		Trust:  trust,
		Limits: wasm.Limits{MaxMemory: 32 << 20},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}
