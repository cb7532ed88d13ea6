package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Trust says how far the operator trusts a module's code.
type Trust int

const (
	// Untrusted modules are stopped when their call's deadline passes: the
	// host rewrites them so that every loop checks an interrupt flag
	// (instrument.go; RATIONALE.md has the cost). The zero value, so a
	// forgotten setting is the safe one.
	Untrusted Trust = iota
	// Trusted modules run without deadline checks: a call that never
	// returns blocks its goroutine forever. Only for code the operator vouches for.
	Trusted
)

func (t Trust) String() string {
	switch t {
	case Untrusted:
		return "untrusted"
	case Trusted:
		return "trusted"
	}
	return fmt.Sprintf("Trust(%d)", int(t))
}

// HostConfig configures a Host.
type HostConfig struct {
	// CacheDir keeps compiled native code between runs. It is created 0700;
	// an existing directory that another user owns or may write is refused.
	// Empty: a private directory under os.UserCacheDir().
	CacheDir string
	// Log receives guest logs (fsb.log), guest stderr and call failures.
	// Nil: discarded.
	Log *slog.Logger
}

// Host runs WebAssembly modules in a sandbox. It owns one wazero runtime,
// created on first use, and a compilation cache on disk. Safe for
// concurrent use.
type Host struct {
	log   *slog.Logger
	cache wazero.CompilationCache

	// mu guards the fields below. It is never held while a Module's lock
	// is, nor the other way round (see RATIONALE.md, "Locks").
	mu       sync.Mutex
	closed   bool
	sandbox  *sandbox
	compiled map[compiledKey]*compiled
	modules  map[*Module]struct{}
}

// sandbox is the wazero runtime with the host modules a guest may import.
type sandbox struct {
	r wazero.Runtime
	// offered holds every function a guest may import, by module then name.
	offered map[string]map[string]api.FunctionDefinition
}

type compiledKey struct {
	trust  Trust
	digest string
}

// compiled is one module compiled (instrumented when untrusted), shared by
// every Module loaded from the same bytes with the same trust; ready is
// closed once cm or err is set.
type compiled struct {
	ready chan struct{}
	cm    wazero.CompiledModule
	err   error
	refs  int // guarded by Host.mu
}

// NewHost prepares the compilation cache. The runtime is created by the
// first Load.
func NewHost(ctx context.Context, cfg HostConfig) (*Host, error) {
	dir, err := prepareCacheDir(cfg.CacheDir)
	if err != nil {
		return nil, err
	}
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wasm compilation cache: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Host{
		log:      log,
		cache:    cache,
		compiled: map[compiledKey]*compiled{},
		modules:  map[*Module]struct{}{},
	}, nil
}

// prepareCacheDir creates the cache directory 0700 or checks that an
// existing one is private to this user.
func prepareCacheDir(dir string) (string, error) {
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("wasm compilation cache: no user cache directory (set a cache directory): %w", err)
		}
		dir = filepath.Join(base, "openfsb", "wasm")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("wasm compilation cache: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("wasm compilation cache: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("wasm compilation cache: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("wasm compilation cache %s: not a directory", dir)
	}
	if err := checkPrivate(fi); err != nil {
		return "", fmt.Errorf("wasm compilation cache %s: %w (it holds native code the host runs; use a directory only you can write, e.g. chmod 700)", dir, err)
	}
	return dir, nil
}

// sandboxFor returns the runtime, creating it on first use.
func (h *Host) sandboxFor(ctx context.Context) (*sandbox, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("wasm host: %w", ErrClosed)
	}
	if h.sandbox == nil {
		s, err := newSandbox(ctx, h.cache)
		if err != nil {
			return nil, err
		}
		h.sandbox = s
	}
	return h.sandbox, nil
}

// newSandbox creates the runtime. It does not close modules when a
// context ends (WithCloseOnContextDone): untrusted modules carry their own
// interrupt checks (instrument.go), which cost far less.
func newSandbox(ctx context.Context, cache wazero.CompilationCache) (*sandbox, error) {
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
	fail := func(err error) (*sandbox, error) {
		_ = r.Close(ctx)
		return nil, fmt.Errorf("wasm runtime: %w", err)
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
		return fail(err)
	}
	if err := instantiateFSB(ctx, r); err != nil {
		return fail(err)
	}
	s := &sandbox{r: r, offered: map[string]map[string]api.FunctionDefinition{}}
	for _, name := range []string{wasi_snapshot_preview1.ModuleName, fsbModule} {
		s.offered[name] = r.Module(name).ExportedFunctionDefinitions()
	}
	return s, nil
}

// compile returns the compiled module for key, compiling bin (already
// instrumented if need be) only if no Module holds it yet. Concurrent Loads
// of the same bytes compile once. Every successful call must be paired with
// release.
func (h *Host) compile(ctx context.Context, s *sandbox, key compiledKey, bin []byte) (*compiled, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, fmt.Errorf("wasm host: %w", ErrClosed)
	}
	c, found := h.compiled[key]
	if !found {
		c = &compiled{ready: make(chan struct{})}
		h.compiled[key] = c
	}
	c.refs++
	h.mu.Unlock()

	if !found {
		c.cm, c.err = s.r.CompileModule(ctx, bin)
		if c.err != nil { // let the next Load try again rather than share this error
			h.mu.Lock()
			if h.compiled[key] == c {
				delete(h.compiled, key)
			}
			h.mu.Unlock()
		}
		close(c.ready)
	} else {
		select {
		case <-c.ready:
		case <-ctx.Done():
			h.release(key, c)
			return nil, ctx.Err()
		}
	}
	if c.err != nil {
		h.release(key, c)
		return nil, c.err
	}
	return c, nil
}

// release drops one reference to a compiled module and closes it with the
// last one (the on-disk cache keeps it for the next compile).
func (h *Host) release(key compiledKey, c *compiled) {
	h.mu.Lock()
	c.refs--
	last := c.refs == 0
	if last && h.compiled[key] == c {
		delete(h.compiled, key)
	}
	h.mu.Unlock()
	if last && c.cm != nil {
		_ = c.cm.Close(context.Background())
	}
}

// Close closes every module (waiting, within ctx, for calls in flight), the
// runtimes and the compilation cache. Loads and Calls fail with ErrClosed
// afterwards.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	mods := make([]*Module, 0, len(h.modules))
	for m := range h.modules {
		mods = append(mods, m)
	}
	h.mu.Unlock()

	var errs []error
	for _, m := range mods {
		errs = append(errs, m.Close(ctx))
	}
	// Runtime.Close also closes any instance still running.
	if h.sandbox != nil {
		errs = append(errs, h.sandbox.r.Close(ctx))
	}
	errs = append(errs, h.cache.Close(ctx))
	return errors.Join(errs...)
}

func (h *Host) forget(m *Module) {
	h.mu.Lock()
	delete(h.modules, m)
	h.mu.Unlock()
}
