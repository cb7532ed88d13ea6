package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/openfsb/fsb/sdk/connector"
)

// Endpoint is one configured store in the connector process: a file
// source's server. The supervisor opens it in each process generation
// before its first call there, so it survives restarts. Its methods are
// safe for concurrent use.
type Endpoint struct {
	s        *Supervisor
	id       string
	protocol string
	config   []byte
}

var endpointSeq atomic.Uint64

// Endpoint registers a store of the given protocol ("ftp", "sftp") with
// its driver configuration (JSON, secrets resolved: it travels only over
// the mutually authenticated channel and lives only in the process's
// memory). The configuration is checked by the process on first use.
func (s *Supervisor) Endpoint(protocol string, config []byte) *Endpoint {
	id := fmt.Sprintf("%s-%d", protocol, endpointSeq.Add(1))
	return &Endpoint{s: s, id: id, protocol: protocol, config: append([]byte(nil), config...)}
}

// Open checks the configuration with the process now (Endpoint does not).
func (e *Endpoint) Open(ctx context.Context) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	return e.do(ctx, "open", func(ctx context.Context, g *gen) error { return nil })
}

// List lists the regular files of dir.
func (e *Endpoint) List(ctx context.Context, dir string) ([]connector.FileInfo, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var files []connector.FileInfo
	err := e.do(ctx, "list", func(ctx context.Context, g *gen) (err error) {
		files, err = g.rpc.List(ctx, e.id, dir)
		return err
	})
	return files, err
}

// Fetch opens the file name as a stream. With maxBytes > 0 a larger file
// is refused before any byte is sent (connector.ErrTooLarge). The reader
// fails (never hangs) if the process dies while it is read.
func (e *Endpoint) Fetch(ctx context.Context, name string, maxBytes int64) (io.ReadCloser, connector.FileInfo, error) {
	var rc io.ReadCloser
	var info connector.FileInfo
	var used *gen
	ctx, cancel := bound(ctx)
	err := e.do(ctx, "fetch", func(ctx context.Context, g *gen) (err error) {
		used = g
		rc, info, err = g.rpc.Fetch(ctx, e.id, name, maxBytes)
		return err
	})
	if err != nil {
		cancel()
		return nil, info, err
	}
	return &streamReader{rc: rc, cancel: cancel, e: e, g: used}, info, nil
}

// Check probes the endpoint's server through the process.
func (e *Endpoint) Check(ctx context.Context) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	return e.do(ctx, "check", func(ctx context.Context, g *gen) error { return g.rpc.Check(ctx, e.id) })
}

// Close forgets the endpoint in the running process.
func (e *Endpoint) Close() error {
	e.s.mu.Lock()
	g := e.s.cur
	e.s.mu.Unlock()
	if g == nil {
		return nil
	}
	g.mu.Lock()
	opened := g.opened[e.id]
	delete(g.opened, e.id)
	g.mu.Unlock()
	if !opened {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.s.cfg.StartTimeout)
	defer cancel()
	return g.rpc.Close(ctx, e.id)
}

// do runs fn (with ctx, which the caller bounded) against the running
// process, opening the endpoint there first. When the process fails under
// the call, it is taken out of service and the call is tried once more on
// its successor (within ctx: every operation only reads); a second
// failure returns connector.ErrPluginDown with a clear message. A process
// that no longer knows the endpoint gets it opened again.
func (e *Endpoint) do(ctx context.Context, op string, fn func(context.Context, *gen) error) error {
	for attempt := 0; ; attempt++ {
		g, err := e.s.acquire(ctx)
		if err != nil {
			return err
		}
		if err = e.ensureOpen(ctx, g); err == nil {
			err = fn(ctx, g)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, connector.ErrUnknownEndpoint) && attempt == 0:
			g.mu.Lock()
			delete(g.opened, e.id)
			g.mu.Unlock()
			continue
		case errors.Is(err, connector.ErrPluginDown) && attempt == 0:
			// Every operation only reads: try once more on a new process
			// (a process found dead between calls costs no call).
			e.s.retire(g)
			continue
		case errors.Is(err, connector.ErrPluginDown):
			e.s.retire(g)
			return fmt.Errorf("connector %s: %s failed: the process stopped answering (it is restarted): %w", e.s.cfg.Name, op, err)
		}
		return err
	}
}

func (e *Endpoint) ensureOpen(ctx context.Context, g *gen) error {
	g.mu.Lock()
	opened := g.opened[e.id]
	g.mu.Unlock()
	if opened {
		return nil
	}
	if err := g.rpc.Open(ctx, e.id, e.protocol, e.config); err != nil {
		return err
	}
	g.mu.Lock()
	g.opened[e.id] = true
	g.mu.Unlock()
	return nil
}

// streamReader wakes the watcher when the stream breaks because the
// process died.
type streamReader struct {
	rc     io.ReadCloser
	cancel context.CancelFunc
	e      *Endpoint
	g      *gen
	once   sync.Once
}

func (r *streamReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && errors.Is(err, connector.ErrPluginDown) {
		if r.g != nil {
			r.e.s.retire(r.g)
		}
		err = fmt.Errorf("connector %s: fetch failed while reading: the process stopped answering (it is restarted): %w", r.e.s.cfg.Name, err)
	}
	return n, err
}

func (r *streamReader) Close() error {
	r.once.Do(func() {
		r.rc.Close()
		r.cancel()
	})
	return nil
}
