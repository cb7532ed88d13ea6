// Package breaker protects sources and the engine from overload: a circuit
// breaker per source (sony/gobreaker) as a connector.Connector wrapper, and
// a concurrency limiter that sheds load with serviceUnavailable instead of
// queueing without bound. It knows sources only through the connector
// contract and must not know about flows or the gateway's routes.
package breaker

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/openfsb/fsb/engine/connector"
)

// Settings say when a source's circuit opens and for how long. Zero values
// take the defaults.
type Settings struct {
	// ConsecutiveFailures opens the circuit (default 5).
	ConsecutiveFailures int
	// FailureRatio opens it too once MinRequests calls were seen in the
	// current window (default 0.5 of at least 20).
	FailureRatio float64
	MinRequests  int
	// Window is the rolling window the counts are kept over (default 60s).
	Window time.Duration
	// OpenFor is how long the circuit stays open before one trial call
	// (half-open) may go through (default 30s).
	OpenFor time.Duration
	// HalfOpenCalls is how many trial calls go through half-open (default 1).
	HalfOpenCalls int
}

func (s Settings) withDefaults() Settings {
	if s.ConsecutiveFailures <= 0 {
		s.ConsecutiveFailures = 5
	}
	if s.FailureRatio <= 0 || s.FailureRatio > 1 {
		s.FailureRatio = 0.5
	}
	if s.MinRequests <= 0 {
		s.MinRequests = 20
	}
	if s.Window <= 0 {
		s.Window = 60 * time.Second
	}
	if s.OpenFor <= 0 {
		s.OpenFor = 30 * time.Second
	}
	if s.HalfOpenCalls <= 0 {
		s.HalfOpenCalls = 1
	}
	return s
}

// State of a circuit, as metrics and logs name it.
const (
	Closed   = "closed"
	HalfOpen = "half-open"
	Open     = "open"
)

// Hooks hear about circuits (engine/metrics implements them). Both may be
// nil; they are called synchronously and must be quick.
type Hooks struct {
	// StateChange: a source's circuit went from one state to another.
	StateChange func(source, from, to string)
	// Rejected: a call was answered by an open circuit without reaching
	// the source.
	Rejected func(source string)
}

// Breaker is a connector with a circuit breaker in front of it.
type Breaker struct {
	source   string
	next     connector.Connector
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	hooks    Hooks
	openFor  time.Duration
	openedAt atomic.Int64 // unix nanoseconds of the last opening
}

// Wrap puts a circuit breaker in front of the connector of one source.
//
// A call fails for the breaker when the source is unreachable, times out,
// answers malformed, or answers with a 5xx status; a call the caller
// cancelled, one that could not be built, or an unknown operation does not
// count (they say nothing about the source). While the circuit is open, a
// call fails at once, without reaching the source, with a
// *connector.CircuitOpenError (errors.Is(err, connector.ErrCircuitOpen))
// carrying the time left: the flow turns it into a serviceUnavailable
// problem naming the step and the source by its name in the flow set, never
// a host, with that Retry-After. Check (health) always reaches the source.
func Wrap(source string, next connector.Connector, s Settings, hooks Hooks) *Breaker {
	s = s.withDefaults()
	b := &Breaker{source: source, next: next, hooks: hooks, openFor: s.OpenFor}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         source,
		MaxRequests:  uint32(s.HalfOpenCalls),
		Interval:     s.Window,
		BucketPeriod: s.Window / 10,
		Timeout:      s.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= uint32(s.ConsecutiveFailures) ||
				c.Requests >= uint32(s.MinRequests) && float64(c.TotalFailures) >= s.FailureRatio*float64(c.Requests)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.openedAt.Store(time.Now().UnixNano())
			}
			if b.hooks.StateChange != nil {
				b.hooks.StateChange(b.source, stateName(from), stateName(to))
			}
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errExcluded) },
	})
	return b
}

var (
	errFailed   = errors.New("source failed")
	errExcluded = errors.New("not the source's doing")
)

// Call implements connector.Connector.
func (b *Breaker) Call(ctx context.Context, req *connector.Request) (*connector.Response, error) {
	done, err := b.cb.Allow()
	if err != nil { // open, or half-open with its trial calls taken
		if b.hooks.Rejected != nil {
			b.hooks.Rejected(b.source)
		}
		return nil, b.openError(req)
	}
	resp, err := b.next.Call(ctx, req)
	done(verdict(resp, err))
	return resp, err
}

// verdict says what a call tells about the source's health.
func verdict(resp *connector.Response, err error) error {
	switch {
	case err == nil && resp != nil && resp.Status >= 500:
		return errFailed
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, connector.ErrBadRequest), errors.Is(err, connector.ErrUnknownOp),
		errors.Is(err, connector.ErrCircuitOpen): // a breaker further in said no
		return errExcluded
	}
	return errFailed
}

// openError is what an open circuit answers: a *connector.CircuitOpenError
// with the time left until a trial call may go through (at least 1s; half-
// open with its trial calls taken, the trial's outcome is awaited).
func (b *Breaker) openError(req *connector.Request) error {
	left := b.openFor - time.Since(time.Unix(0, b.openedAt.Load()))
	return &connector.CircuitOpenError{Source: b.source, Operation: req.Operation, RetryAfter: max(left, time.Second)}
}

// State returns the circuit's state: Closed, HalfOpen or Open.
func (b *Breaker) State() string { return stateName(b.cb.State()) }

// Source is the name of the source the breaker guards.
func (b *Breaker) Source() string { return b.source }

// Unwrap returns the connector behind the breaker.
func (b *Breaker) Unwrap() connector.Connector { return b.next }

// Check implements connector.Connector: health always probes the source.
func (b *Breaker) Check(ctx context.Context) error { return b.next.Check(ctx) }

// Close implements connector.Connector.
func (b *Breaker) Close() error { return b.next.Close() }

func stateName(s gobreaker.State) string {
	switch s {
	case gobreaker.StateOpen:
		return Open
	case gobreaker.StateHalfOpen:
		return HalfOpen
	}
	return Closed
}

var _ connector.Connector = (*Breaker)(nil)
