package reload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing/fstest"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/modules"
	"github.com/openfsb/fsb/engine/problem"
	"github.com/openfsb/fsb/engine/sources"
	"github.com/openfsb/fsb/engine/spec"
	"github.com/openfsb/fsb/engine/wasm"
)

// Options say where the flows are and how a snapshot is built from them.
type Options struct {
	// Dir is the flow directory (spec.LoadDir).
	Dir string
	// Host runs the plugins of every snapshot; required when a flow set
	// declares plugins. Snapshots share it, so a module whose bytes did not
	// change is not compiled again (wasm shares compiled code by digest);
	// each snapshot has its own instances, closed with the snapshot.
	Host *wasm.Host
	// Modules and Sources are passed to modules.Load and sources.Open (the
	// Plugins of Sources are set from the snapshot's).
	Modules modules.Options
	Sources sources.Options

	// WrapConnector and WrapPlugin, when set, wrap each source's connector
	// (circuit breakers, tracing) and each plugin (metrics, tracing) of a
	// new snapshot. The unwrapped values are what the snapshot closes.
	WrapConnector func(source string, c connector.Connector) connector.Connector
	WrapPlugin    func(plugin string, p flow.Plugin) flow.Plugin
	// Observer and Log go into every snapshot's flow.Runtime.
	Observer flow.Observer
	Log      *slog.Logger

	// Handler builds the handler that serves a snapshot (the gateway:
	// gateway.New(cfg).App().Handler()); nil builds none.
	Handler func(*Snapshot) (fasthttp.RequestHandler, error)

	// Debounce is how long Watch waits after the last change in the
	// directory before it reloads (default 250ms): an editor's save or a
	// `cp -r` is many events.
	Debounce time.Duration
	// OnReload hears about every reload attempt that found a change: the
	// new generation (0 when refused), how long it took and the error.
	OnReload func(generation uint64, took time.Duration, err error)
}

// Reloader holds the current snapshot and replaces it.
type Reloader struct {
	opt Options
	log *slog.Logger

	cur atomic.Pointer[Snapshot]

	mu     sync.Mutex // serialises reloads; guards gen and closed
	gen    uint64
	closed bool
}

// New loads the flow directory and returns a Reloader serving it. An
// invalid set is an error (a spec.ErrorList when the documents are at
// fault): there is nothing older to keep serving.
func New(ctx context.Context, opt Options) (*Reloader, error) {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Debounce <= 0 {
		opt.Debounce = 250 * time.Millisecond
	}
	r := &Reloader{opt: opt, log: opt.Log}
	files, digest, err := readDir(opt.Dir)
	if err != nil {
		return nil, err
	}
	r.gen = 1
	s, err := Build(ctx, opt, files, digest, 1)
	if err != nil {
		return nil, err
	}
	r.cur.Store(s)
	return r, nil
}

// Acquire returns the current snapshot with a reference the caller must
// give back with Release; nil after Close. Every call on a snapshot runs
// between the two, so a reload never closes what a call still uses.
func (r *Reloader) Acquire() *Snapshot {
	for {
		s := r.cur.Load()
		if s == nil {
			return nil
		}
		if s.acquire() {
			return s
		}
		// s was replaced and released meanwhile: the new one is published.
	}
}

// Current returns the current snapshot without a reference: for reading
// what is served (names, generation), not for running calls on it.
func (r *Reloader) Current() *Snapshot { return r.cur.Load() }

// Reload reads the directory again and, when its content changed and the
// new set is valid, builds and publishes a new snapshot; calls in flight
// finish on the old one, which is closed after the last of them. An
// invalid set is refused: its errors are logged (each file:line:col) and
// returned, and the current snapshot keeps serving. changed is false when
// the content is the same as the current snapshot's (logged at info as
// "reload: no change", so that a SIGHUP always leaves a line).
func (r *Reloader) Reload(ctx context.Context) (changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false, ErrClosed
	}
	start := time.Now()
	files, digest, err := readDir(r.opt.Dir)
	if err == nil && r.cur.Load().Digest == digest {
		r.log.Info("reload: no change", "generation", r.gen, "dir", r.opt.Dir)
		return false, nil
	}
	var s *Snapshot
	if err == nil {
		s, err = Build(ctx, r.opt, files, digest, r.gen+1)
	}
	took := time.Since(start)
	if err != nil {
		r.logRefusal(err)
		if r.opt.OnReload != nil {
			r.opt.OnReload(0, took, err)
		}
		return true, err
	}
	r.gen++
	old := r.cur.Swap(s)
	old.Release() // the current-reference: closed once its calls end
	r.log.Info("reload: new flow set serving", "generation", s.Generation, "flows", len(s.Plans), "took", took)
	if r.opt.OnReload != nil {
		r.opt.OnReload(s.Generation, took, nil)
	}
	return true, nil
}

func (r *Reloader) logRefusal(err error) {
	var errs spec.ErrorList
	if errors.As(err, &errs) {
		for _, e := range errs {
			r.log.Error("reload: refused, the current flow set keeps serving", "error", e.Error())
		}
		return
	}
	r.log.Error("reload: refused, the current flow set keeps serving", "err", err)
}

// Handler serves each request on the snapshot current when it arrives, and
// holds a reference to it until the answer is written.
func (r *Reloader) Handler() fasthttp.RequestHandler {
	return func(c *fasthttp.RequestCtx) {
		s := r.Acquire()
		if s == nil || s.Handler == nil {
			p := problem.Unavailable("the service is shutting down")
			c.SetStatusCode(p.Status)
			c.SetContentType(problem.ContentType)
			c.SetBody(p.JSON())
			if s != nil {
				s.Release()
			}
			return
		}
		defer s.Release()
		s.Handler(c)
	}
}

// Close stops reloading and releases the current snapshot, then waits
// within ctx until it is closed (its calls ended, its plugins and
// connectors closed).
func (r *Reloader) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	s := r.cur.Swap(nil)
	r.mu.Unlock()
	if s == nil {
		return nil
	}
	s.Release()
	select {
	case <-s.Closed():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("reload: calls still running on generation %d: %w", s.Generation, ctx.Err())
	}
}

// Build loads, validates and compiles files (name under dir → content) into
// a snapshot with one reference (the current-reference), with the same
// functions `fsb validate` and `fsb serve` use: spec.LoadFS, flow.Compile,
// modules.Load and sources.Open. Errors in the documents come back as one
// spec.ErrorList with every problem; on any error nothing stays open.
func Build(ctx context.Context, opt Options, files map[string][]byte, digest string, gen uint64) (*Snapshot, error) {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	set, err := spec.LoadFS(mapFS(files), opt.Dir)
	var errs spec.ErrorList
	if err != nil && !errors.As(err, &errs) {
		return nil, err
	}
	plans, cerr := flow.Compile(set)
	var cerrs spec.ErrorList
	if errors.As(cerr, &cerrs) {
		errs = append(errs, cerrs...)
	} else if cerr != nil {
		errs = append(errs, &spec.Error{Pos: spec.Pos{File: opt.Dir}, Msg: cerr.Error()})
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	s := &Snapshot{Generation: gen, Digest: digest, Dir: opt.Dir, Set: set, Plans: plans, Loaded: time.Now(), closed: make(chan struct{})}
	s.refs.Store(1)
	fail := func(err error) (*Snapshot, error) {
		s.closeNow()
		return nil, err
	}
	var plugins map[string]flow.Plugin
	if len(set.Plugins) > 0 {
		if opt.Host == nil {
			return fail(errors.New("reload: the flow set declares plugins but no wasm host was given"))
		}
		if plugins, err = modules.Load(ctx, opt.Host, set, opt.Modules); err != nil {
			return fail(err) // modules.Load closed what it loaded
		}
		s.closers = append(s.closers, closePlugins(plugins, opt.Log))
	}
	sopt := opt.Sources
	sopt.Plugins = plugins // plugins first: a soap source's codec is one
	conns, err := sources.Open(set, sopt)
	if err != nil {
		return fail(fmt.Errorf("open sources: %w", err))
	}
	s.closers = append(s.closers, closeConns(conns))
	rt := &flow.Runtime{Conns: conns, Plugins: plugins, Observer: opt.Observer, Log: opt.Log}
	if opt.WrapConnector != nil {
		rt.Conns = make(map[string]connector.Connector, len(conns))
		for name, c := range conns {
			rt.Conns[name] = opt.WrapConnector(name, c)
		}
	}
	if opt.WrapPlugin != nil && plugins != nil {
		rt.Plugins = make(map[string]flow.Plugin, len(plugins))
		for name, p := range plugins {
			rt.Plugins[name] = opt.WrapPlugin(name, p)
		}
	}
	s.Runtime = rt
	if opt.Handler != nil {
		h, err := opt.Handler(s)
		if err != nil {
			return fail(fmt.Errorf("build the handler: %w", err))
		}
		s.Handler = h
	}
	return s, nil
}

// Load reads dir and builds its snapshot once, for `fsb serve --check` and
// tests; the caller releases it (Snapshot.Release closes it).
func Load(ctx context.Context, opt Options) (*Snapshot, error) {
	files, digest, err := readDir(opt.Dir)
	if err != nil {
		return nil, err
	}
	return Build(ctx, opt, files, digest, 1)
}

// readDir reads every *.yaml and *.yml file under dir, keyed as spec names
// them (dir/relative), and digests names and contents.
func readDir(dir string) (map[string][]byte, string, error) {
	fsys := os.DirFS(dir)
	files := map[string][]byte{}
	var names []string
	err := fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			files[p] = b
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("read flow directory %s: %w", dir, err)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(files[n]))
		h.Write(files[n])
	}
	return files, hex.EncodeToString(h.Sum(nil)), nil
}

// mapFS serves the bytes readDir read, so that what is digested is exactly
// what is loaded even if the directory changes meanwhile.
func mapFS(files map[string][]byte) fs.FS {
	m := fstest.MapFS{}
	for n, b := range files {
		m[path.Clean(n)] = &fstest.MapFile{Data: b, Mode: 0o644}
	}
	return m
}
