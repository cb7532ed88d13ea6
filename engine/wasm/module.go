package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openfsb/fsb/engine/trace"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/sys"
)

// Module is one loaded plugin: its compiled code and a bounded pool of
// instances it owns. Safe for concurrent use; each instance serves one call
// at a time.
type Module struct {
	host     *Host
	sandbox  *sandbox
	compiled *compiled

	name, digest string
	trust        Trust
	limits       Limits
	recycle      Recycle
	memLimit     uint64 // MaxMemory rounded down to whole pages
	modCfg       wazero.ModuleConfig
	ops          []string // sorted operation exports
	opsWanted    []string // ModuleSpec.Operations

	// sem holds one token per instance in use (busy or being created), so
	// at most cap(sem) instances are live: a new one is created only when
	// none is idle, by a caller holding a token.
	sem     chan struct{}
	done    chan struct{} // closed by Close: waiters give up
	drained chan struct{} // closed once closed and no instance is left

	mu     sync.Mutex // guards the fields below; see RATIONALE.md, "Locks"
	idle   []*instance
	live   int // idle + in use
	peak   int
	closed bool

	calls, discarded, recycled atomic.Uint64
	instantiations, hits       atomic.Uint64
}

// Stats is a snapshot of a module's pool.
type Stats struct {
	Live      int    // instances alive, idle or in use
	Idle      int    // instances waiting for a call
	Peak      int    // most instances ever alive at once (never above the pool size)
	Calls     uint64 // calls that reached the pool (not those refused up front: unknown operation, input too large, deadline already past)
	Discarded uint64 // instances closed after a failed call
	Recycled  uint64 // healthy instances replaced after Recycle.Calls calls or memory growth
	// Instantiations counts the instances created (the probe instance of
	// Load included); one that failed to start is not counted.
	Instantiations uint64
	// Hits counts the calls served by an idle, already warm instance
	// (Calls - Hits waited, created an instance, or failed to get one).
	Hits uint64
}

// Name is the module's name from its spec.
func (m *Module) Name() string { return m.name }

// Operations lists the operations the module exports, sorted.
func (m *Module) Operations() []string { return slices.Clone(m.ops) }

// Stats reports the pool's state.
func (m *Module) Stats() Stats {
	m.mu.Lock()
	s := Stats{Live: m.live, Idle: len(m.idle), Peak: m.peak}
	m.mu.Unlock()
	s.Calls, s.Discarded, s.Recycled = m.calls.Load(), m.discarded.Load(), m.recycled.Load()
	s.Instantiations, s.Hits = m.instantiations.Load(), m.hits.Load()
	return s
}

// Call runs operation op on input with the step's configuration (JSON; nil
// means {}), and returns a copy of the output. For a JSON operation such as
// transform, an empty output means null (ABI.md).
//
// An untrusted module is stopped when Limits.Timeout or ctx's deadline
// passes, whichever is first; a trusted one only has its deadline checked
// before it starts. Waiting for a free instance is bounded by ctx alone.
// Errors are *Error wrapping one of the sentinels (or ctx's error when the
// caller cancelled); the instance of a failed call is discarded.
func (m *Module) Call(ctx context.Context, op string, input, config []byte) ([]byte, error) {
	if !slices.Contains(m.ops, op) {
		return nil, m.fail(op, ErrUnknownOp, "the module exports "+strings.Join(m.ops, ", "), nil)
	}
	if len(input) > m.limits.MaxInput {
		return nil, m.fail(op, ErrTooLarge, fmt.Sprintf("input of %d bytes exceeds maxInput %d", len(input), m.limits.MaxInput), nil)
	}
	if expired(ctx) {
		return nil, m.deadlineError(ctx, op, "before the call started")
	}
	m.calls.Add(1)
	inst, err := m.acquire(ctx, op)
	if err != nil {
		return nil, err
	}

	inst.state.config, inst.state.fault = config, nil
	inst.lin.refused = false
	callCtx := context.WithValue(ctx, stateKey{}, &inst.state)
	start := time.Now()
	m.arm(ctx, &inst.state, m.limits.Timeout)
	out, cerr := inst.call(callCtx, m, op, input)
	inst.state.config = nil // do not keep the caller's bytes alive
	m.logStderr(ctx, inst, op, cerr != nil)

	if cerr != nil {
		m.logFailure(ctx, cerr)
		m.discarded.Add(1)
		m.release(inst, false)
		return nil, cerr
	}
	if m.trust == Trusted {
		if took := time.Since(start); took > m.limits.Timeout {
			m.host.log.LogAttrs(ctx, slog.LevelWarn, "trusted wasm module overran its timeout",
				m.logAttrs(ctx, op, slog.Duration("took", took), slog.Duration("timeout", m.limits.Timeout))...)
		}
	}
	inst.calls++
	keep := inst.calls < m.recycle.Calls &&
		float64(inst.mem.Size()) <= m.recycle.Growth*float64(inst.initial)
	if !keep {
		m.recycled.Add(1)
	}
	m.release(inst, keep)
	return out, nil
}

// acquire takes an idle instance or creates one, waiting within ctx when
// the pool is full.
func (m *Module) acquire(ctx context.Context, op string) (*instance, error) {
	select {
	case m.sem <- struct{}{}:
	default:
		if err := m.wait(ctx, op); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		<-m.sem
		return nil, m.fail(op, ErrClosed, "", nil)
	}
	if n := len(m.idle); n > 0 { // LIFO: the most recently used instance is the warmest
		inst := m.idle[n-1]
		m.idle[n-1] = nil
		m.idle = m.idle[:n-1]
		m.mu.Unlock()
		m.hits.Add(1)
		return inst, nil
	}
	m.live++
	m.peak = max(m.peak, m.live)
	m.mu.Unlock()

	inst, err := m.instantiate(ctx)
	if err != nil {
		m.release(nil, false)
		if ctx.Err() != nil {
			return nil, m.fail(op, ctx.Err(), "while starting an instance", err)
		}
		return nil, m.fail(op, ErrTrap, "starting an instance: "+err.Error(), err)
	}
	return inst, nil
}

// wait blocks until a token is free, ctx ends or the module closes. A
// context with a deadline but no Done channel gets a timer.
func (m *Module) wait(ctx context.Context, op string) error {
	done := ctx.Done()
	var timeout <-chan time.Time
	if done == nil {
		if dl, ok := ctx.Deadline(); ok {
			t := time.NewTimer(time.Until(dl))
			defer t.Stop()
			timeout = t.C
		}
	}
	select {
	case m.sem <- struct{}{}:
		return nil
	case <-done:
		if errors.Is(ctx.Err(), context.Canceled) {
			return m.fail(op, ctx.Err(), "while waiting for a free instance", nil)
		}
	case <-timeout:
	case <-m.done:
		return m.fail(op, ErrClosed, "", nil)
	}
	return m.fail(op, ErrTimeout, fmt.Sprintf("no instance free before the deadline (all %d busy)", cap(m.sem)), nil)
}

// release gives an instance back (keep) or closes it; nil only frees the
// slot of an instance that could not be created.
func (m *Module) release(inst *instance, keep bool) {
	m.mu.Lock()
	if keep && !m.closed {
		m.idle = append(m.idle, inst)
		m.mu.Unlock()
		<-m.sem
		return
	}
	m.live--
	last := m.closed && m.live == 0
	m.mu.Unlock()
	<-m.sem
	if inst != nil {
		inst.close()
	}
	if last {
		m.finish()
	}
}

// Close closes the idle instances at once and the busy ones as their calls
// return, waiting for them within ctx, then releases the compiled code.
// Calls waiting for an instance fail with ErrClosed.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.done)
		idle := m.idle
		m.idle = nil
		m.live -= len(idle)
		last := m.live == 0
		m.mu.Unlock()
		for _, inst := range idle {
			inst.close()
		}
		if last {
			m.finish()
		}
		m.host.forget(m)
	} else {
		m.mu.Unlock()
	}
	select {
	case <-m.drained:
		return nil
	case <-ctx.Done():
		m.mu.Lock()
		busy := m.live
		m.mu.Unlock()
		return fmt.Errorf("wasm module %q: closing with %d calls still running: %w", m.name, busy, ctx.Err())
	}
}

// finish runs once, when the module is closed and its last instance gone.
func (m *Module) finish() {
	close(m.drained)
	m.host.release(m.key(), m.compiled)
}

func (m *Module) key() compiledKey { return compiledKey{m.trust, m.digest} }

func (m *Module) fail(op string, kind error, detail string, cause error) *Error {
	return &Error{Module: m.name, Operation: op, Kind: kind, Detail: detail, Err: cause}
}

func (m *Module) deadlineError(ctx context.Context, op, when string) *Error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return m.fail(op, ctx.Err(), when, nil)
	}
	return m.fail(op, ErrTimeout, "deadline passed "+when, nil)
}

// failure classifies an error of a guest function called during a call.
func (m *Module) failure(inst *instance, op, fn string, err error) *Error {
	e := m.fail(op, ErrTrap, "", err)
	var exit *sys.ExitError
	switch {
	case inst.state.fault != nil:
		e.Detail = inst.state.fault.Error()
	case inst.state.stopped == stoppedTimeout:
		e.Kind, e.Detail = ErrTimeout, fmt.Sprintf("still running at its deadline (timeout %v)", m.limits.Timeout)
	case inst.state.stopped == stoppedCancel:
		e.Kind, e.Detail = context.Canceled, "the caller cancelled the call"
	case inst.lin.refused:
		e.Kind, e.Detail = ErrMemory, "memory limit of "+sizeOf(m.memLimit)+" reached"
	case errors.As(err, &exit):
		e.Detail = fmt.Sprintf("the module exited with code %d", exit.ExitCode())
	default:
		e.Detail = firstLine(err)
	}
	if fn != op {
		e.Detail = "in " + fn + ": " + e.Detail
	}
	return e
}

func (m *Module) logAttrs(ctx context.Context, op string, more ...slog.Attr) []slog.Attr {
	attrs := m.callAttrs(ctx, make([]slog.Attr, 0, 4+len(more)))
	return append(append(attrs, slog.String("operation", op)), more...)
}

// callAttrs appends the plugin's name and, when the flow engine gave them,
// the step and trace id.
func (m *Module) callAttrs(ctx context.Context, attrs []slog.Attr) []slog.Attr {
	attrs = append(attrs, slog.String("plugin", m.name))
	c := trace.CallOf(ctx)
	if c.Step != "" {
		attrs = append(attrs, slog.String("step", c.Step))
	}
	if c.TraceID != "" {
		attrs = append(attrs, slog.String("traceId", c.TraceID))
	}
	return attrs
}

// logFailure logs what Error() leaves out: the guest's message, the trace.
func (m *Module) logFailure(ctx context.Context, e *Error) {
	log := m.host.log
	if !log.Enabled(ctx, slog.LevelWarn) {
		return
	}
	more := []slog.Attr{slog.String("error", e.Error())}
	if e.Message != "" {
		more = append(more, slog.String("message", e.Message))
	}
	if e.Err != nil {
		more = append(more, slog.String("cause", e.Err.Error()))
	}
	log.LogAttrs(ctx, slog.LevelWarn, "wasm call failed", m.logAttrs(ctx, e.Operation, more...)...)
}

// logStderr logs and empties what the guest wrote to stderr during a call.
func (m *Module) logStderr(ctx context.Context, inst *instance, op string, failed bool) {
	if inst.stderr.empty() {
		return
	}
	text, truncated := inst.stderr.take()
	level := slog.LevelInfo
	if failed {
		level = slog.LevelWarn
	}
	m.host.log.LogAttrs(ctx, level, "wasm guest stderr",
		m.logAttrs(ctx, op, slog.String("stderr", text), slog.Bool("truncated", truncated))...)
}

// arm sets the end of an untrusted module's call (hostPoll); a
// trusted module's code has no poll.
func (m *Module) arm(ctx context.Context, st *callState, timeout time.Duration) {
	if m.trust == Untrusted {
		st.arm(ctx, timeout)
	}
}

// expired reports a context that is done or whose deadline has passed
// (which a deadline-only context never reports by itself).
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}
