// Package reload owns the flow set a gateway serves while it runs: it loads,
// validates and compiles a flow directory into an immutable Snapshot (plans,
// connectors, plugins and the handler built on them), swaps a new one in
// atomically when the directory changes or on demand (SIGHUP), and closes
// an old one — its WASM modules and source connectors — when the last call
// that started on it ends.
//
// It knows the gateway only as a function that turns a Snapshot into a
// fasthttp handler (Options.Handler), and must not know about listeners,
// access, audit or configuration files.
package reload

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/sources"
	"github.com/openfsb/fsb/engine/spec"
)

// Snapshot is one loaded flow set and everything built from it. It is
// immutable once published; take one with Reloader.Acquire and give it back
// with Release, so that it is closed only after the last call on it ended.
type Snapshot struct {
	// Generation counts the snapshots of one Reloader: 1 for the first.
	Generation uint64
	// Digest identifies the directory content the snapshot was built from
	// (SHA-256 over file names and bytes): a reload that finds the same
	// digest keeps the current snapshot.
	Digest  string
	Dir     string
	Set     *spec.Set
	Plans   map[string]*flow.Plan
	Runtime *flow.Runtime // Conns and Plugins are this snapshot's own
	Loaded  time.Time

	// Handler serves the snapshot's flows (Options.Handler built it); nil
	// when no handler was asked for.
	Handler fasthttp.RequestHandler

	// refs is the number of holders: 1 for being current, plus one per
	// call in flight. It never goes up again once it reached 0.
	refs    atomic.Int64
	closed  chan struct{}
	closers []func()
}

// acquire takes a reference unless the snapshot is already released for
// good (refs reached 0): a closed snapshot can never be revived.
func (s *Snapshot) acquire() bool {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release gives back a reference taken by Reloader.Acquire. The last
// reference of a snapshot that is no longer current closes it (its plugins
// and connectors) in the background.
func (s *Snapshot) Release() {
	if s.refs.Add(-1) == 0 {
		go s.close()
	}
}

// Closed is closed once the snapshot's modules and connectors are closed.
func (s *Snapshot) Closed() <-chan struct{} { return s.closed }

func (s *Snapshot) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	close(s.closed)
}

// closeNow closes a snapshot that was never published.
func (s *Snapshot) closeNow() {
	s.refs.Store(0)
	s.close()
}

// closePlugins closes every plugin that can be closed (wasm modules), with
// a deadline: a module still running a call after it is given up on.
func closePlugins(plugins map[string]flow.Plugin, log *slog.Logger) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for name, p := range plugins {
			c, ok := p.(interface{ Close(context.Context) error })
			if !ok {
				continue
			}
			wg.Go(func() {
				if err := c.Close(ctx); err != nil {
					log.Warn("reload: closing an old plugin", "plugin", name, "err", err)
				}
			})
		}
		wg.Wait()
	}
}

func closeConns(conns map[string]connector.Connector) func() {
	return func() { sources.Close(conns) }
}

// ErrClosed is returned by Reload after Close.
var ErrClosed = errors.New("reload: closed")
