// Package modules loads the WebAssembly modules that Plugin documents
// declare into a wasm.Host, for the flow engine's transform steps. It owns
// the mapping from a Plugin document to a wasm.ModuleSpec (file, digest,
// limits, capabilities); the sandbox itself is engine/wasm's.
package modules

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/spec"
	"github.com/openfsb/fsb/engine/wasm"
)

// Load reads, verifies and compiles every plugin of the set. It reports
// every plugin that fails, each with its document's position.
func Load(ctx context.Context, host *wasm.Host, set *spec.Set) (map[string]flow.Plugin, error) {
	out := map[string]flow.Plugin{}
	var errs []error
	for _, name := range sortedNames(set.Plugins) {
		pl := set.Plugins[name]
		m, err := load(ctx, host, pl)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: plugin %q: %w", pl.Pos, name, err))
			continue
		}
		out[name] = m
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func load(ctx context.Context, host *wasm.Host, pl *spec.Plugin) (*wasm.Module, error) {
	b, err := os.ReadFile(pl.ModulePath())
	if err != nil {
		return nil, fmt.Errorf("read module: %w", err)
	}
	ms := wasm.ModuleSpec{
		Name:         pl.Name,
		Wasm:         b,
		Digest:       strings.TrimPrefix(pl.Digest, "sha256:"),
		Capabilities: pl.Capabilities,
		PoolSize:     pl.Pool,
	}
	if pl.Trusted {
		ms.Trust = wasm.Trusted
	}
	if l := pl.Limits; l != nil {
		ms.Limits = wasm.Limits{MaxMemory: int(l.MaxMemory), Timeout: l.Timeout.D(), MaxInput: int(l.MaxInput), MaxOutput: int(l.MaxOutput)}
	}
	return host.Load(ctx, ms)
}

func sortedNames(m map[string]*spec.Plugin) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
