// Package connector is the contract between the flow executor and the
// transports that reach data sources (rest, and later soap, file, native
// plugins). It owns only the request/response shapes and the interface; it
// must not know about flows, the gateway or any one transport.
package connector

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Request is one call to a source operation, already rendered from the flow's
// expressions. Values are plain strings; Body is raw JSON (nil for none).
type Request struct {
	Operation string            // operation name within the source
	Path      map[string]string // values for {placeholders} in the operation path
	Query     map[string]string
	Headers   map[string]string
	Body      []byte // raw JSON, nil when the operation sends no body
	TraceID   string // fresh BelGov-Trace-Id for this outgoing call
}

// Response is what the source answered. Body is the raw response bytes; the
// connector never decodes it (decoding is the executor's job, done lazily).
type Response struct {
	Status  int
	Headers Headers // selected response headers, canonical names
	Body    []byte
	// Attempts is how many tries the connector made (1 without retries).
	Attempts int
	// Release, when set, hands Body's memory back to the connector (it may
	// lend a pooled buffer rather than copy it). Call it once, after the
	// last use of Body; a nil Release means Body is the caller's to keep.
	Release func()
}

// Done calls r.Release if it is set.
func (r *Response) Done() {
	if r != nil && r.Release != nil {
		r.Release()
		r.Release = nil
	}
}

// Header is one response header a connector kept.
type Header struct{ Name, Value string }

// Headers are the response headers a connector kept (Content-Type, Etag,
// Last-Modified, Location, Retry-After, Belgov-Trace-Id), in canonical form.
// A short slice: cheaper on the hot path than a map.
type Headers []Header

// Get returns the value of the header with that canonical name, or "".
func (h Headers) Get(name string) string {
	for _, x := range h {
		if x.Name == name {
			return x.Value
		}
	}
	return ""
}

// Connector reaches one source. Implementations are safe for concurrent use.
type Connector interface {
	// Call performs one operation. It must bound the call by ctx.Deadline()
	// itself, because the executor gives a call that only time can end a
	// context whose Done is nil; and it must return promptly when ctx is
	// cancelled. It must not keep req after returning. A non-2xx status is
	// not an error: it is returned in Response for the flow to judge.
	// Errors are transport failures, wrapped around one of the sentinel
	// errors below so callers can classify them with errors.Is.
	Call(ctx context.Context, req *Request) (*Response, error)
	// Check probes reachability for health reporting; nil means reachable.
	Check(ctx context.Context) error
	// Close releases pooled connections.
	Close() error
}

// Sentinel errors for classifying transport failures.
var (
	ErrTimeout     = errors.New("timed out")
	ErrUnavailable = errors.New("source unreachable")
	ErrTooLarge    = errors.New("response exceeds the configured maximum size")
	ErrBadResponse = errors.New("malformed response")
	ErrBadRequest  = errors.New("request cannot be built")
	ErrUnknownOp   = errors.New("unknown operation")
	// ErrCircuitOpen: the source's circuit breaker is open (engine/breaker)
	// and the call was not made. The error returned is a *CircuitOpenError,
	// which carries the time until the circuit lets a trial call through.
	ErrCircuitOpen = errors.New("circuit open")
)

// CircuitOpenError is returned, instead of calling the source, while the
// source's circuit is open. errors.Is(err, ErrCircuitOpen) matches it. It
// is not Retryable: retrying at once would only be refused again.
type CircuitOpenError struct {
	Source     string
	Operation  string
	RetryAfter time.Duration // until the circuit lets a trial call through (at least 1s)
}

func (e *CircuitOpenError) Error() string {
	return fmt.Sprintf("source %q operation %q: %v: not called, retry after %s", e.Source, e.Operation, ErrCircuitOpen, e.RetryAfter)
}

// Is makes errors.Is(err, ErrCircuitOpen) hold.
func (e *CircuitOpenError) Is(target error) bool { return target == ErrCircuitOpen }

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1:
// the value of a Retry-After header.
func (e *CircuitOpenError) RetryAfterSeconds() int {
	return max(int((e.RetryAfter+time.Second-1)/time.Second), 1)
}

// Error wraps a transport failure with the source and operation it concerns.
// Its message is safe to show a consumer: no host names, addresses or paths.
type Error struct {
	Source    string
	Operation string
	Kind      error // one of the sentinels above
	Detail    string
	Err       error // underlying cause, for logs only
	// Attempts is how many tries were made before giving up (0: unknown).
	Attempts int
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("source %q operation %q: %v", e.Source, e.Operation, e.Kind)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// Sleep waits d, or until ctx is cancelled or its deadline passes (also for
// a context whose Done is nil), whichever comes first. It returns nil after
// the full wait, else context.DeadlineExceeded or ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	cut := error(nil)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		d, cut = max(time.Until(dl), 0), context.DeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return cut
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Backoff waits d before a retry, unless ctx ends first. It does not start
// a wait the deadline would cut short (there is no time for another try
// then), and it reports whether the wait completed.
func Backoff(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return false
	}
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Retryable reports whether a failed call may succeed if tried again: a
// timeout or an unreachable source, and not a cancellation. Connectors and
// the executor's step retries use this one rule.
func Retryable(err error) bool {
	return (errors.Is(err, ErrTimeout) || errors.Is(err, ErrUnavailable)) && !errors.Is(err, context.Canceled)
}

// RetryDelay is the wait before attempt n+1 (n ≥ 1): exponential from base,
// capped at maxDelay, with full jitter; a source's Retry-After (after > 0)
// wins, capped too.
func RetryDelay(base, maxDelay time.Duration, n int, after time.Duration) time.Duration {
	if after > 0 {
		return min(after, maxDelay)
	}
	d := maxDelay
	if shift := n - 1; shift < 32 {
		d = min(base<<shift, maxDelay)
	}
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// RetryAfter reads a Retry-After header: delay seconds or an HTTP date
// (any of the three formats HTTP allows). 0 when absent or unreadable.
func RetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, 1<<20)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
