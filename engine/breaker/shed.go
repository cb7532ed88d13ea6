package breaker

import (
	"context"
	"net/textproto"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/problem"
	"github.com/openfsb/fsb/engine/trace"
)

// Limiter bounds how many calls the engine runs at once. A call that finds
// every slot taken waits at most MaxWait, and only while fewer than
// MaxQueue calls wait; otherwise it is shed at once with serviceUnavailable
// — a quick, honest answer instead of a queue that grows until every call
// times out.
type Limiter struct {
	slots    chan struct{}
	maxWait  time.Duration
	maxQueue int64
	waiting  atomic.Int64
	shed     atomic.Uint64
	onShed   func()
	exempt   map[string]bool
	retry    string
}

// LimiterOptions configure a Limiter; zero values take the defaults.
type LimiterOptions struct {
	// MaxWait is the longest a call waits for a slot (default 0: no wait).
	MaxWait time.Duration
	// MaxQueue is how many calls may wait at once (default MaxConcurrent).
	MaxQueue int
	// RetryAfter is the Retry-After of a shed call (default 1s).
	RetryAfter time.Duration
	// OnShed hears about every shed call (metrics).
	OnShed func()
	// Exempt paths are never shed nor counted (default /health), so that
	// a load balancer does not take a busy node for a dead one.
	Exempt []string
}

// NewLimiter allows maxConcurrent calls at once (at least 1).
func NewLimiter(maxConcurrent int, o LimiterOptions) *Limiter {
	maxConcurrent = max(maxConcurrent, 1)
	if o.MaxQueue <= 0 {
		o.MaxQueue = maxConcurrent
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	if o.Exempt == nil {
		o.Exempt = []string{"/health"}
	}
	l := &Limiter{slots: make(chan struct{}, maxConcurrent), maxWait: o.MaxWait, maxQueue: int64(o.MaxQueue),
		onShed: o.OnShed, exempt: map[string]bool{}, retry: strconv.Itoa(max(int(o.RetryAfter/time.Second), 1))}
	for _, p := range o.Exempt {
		l.exempt[p] = true
	}
	return l
}

// Acquire takes a slot, waiting within MaxWait and ctx; false means the
// call is shed (and counted). Every true must be paired with Release.
func (l *Limiter) Acquire(ctx context.Context) bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
	}
	if l.maxWait > 0 && l.waiting.Add(1) <= l.maxQueue {
		t := time.NewTimer(l.maxWait)
		var done <-chan struct{}
		if ctx != nil {
			done = ctx.Done()
		}
		select {
		case l.slots <- struct{}{}:
			t.Stop()
			l.waiting.Add(-1)
			return true
		case <-t.C:
		case <-done:
			t.Stop()
		}
		l.waiting.Add(-1)
	} else if l.maxWait > 0 {
		l.waiting.Add(-1)
	}
	l.shed.Add(1)
	if l.onShed != nil {
		l.onShed()
	}
	return false
}

// Release gives a slot back.
func (l *Limiter) Release() { <-l.slots }

// InFlight is how many calls hold a slot; Shed how many were shed so far.
func (l *Limiter) InFlight() int { return len(l.slots) }
func (l *Limiter) Shed() uint64  { return l.shed.Load() }

// Capacity is the number of slots.
func (l *Limiter) Capacity() int { return cap(l.slots) }

// Middleware is the limiter as the first fiber handler of an app.
func (l *Limiter) Middleware() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if l.exempt[c.Path()] {
			return c.Next()
		}
		if !l.Acquire(c.UserContext()) {
			l.answer(c.Context())
			return nil
		}
		defer l.Release()
		return c.Next()
	}
}

// Wrap is the limiter in front of a fasthttp handler (a gateway app's
// Handler(), or engine/reload's).
func (l *Limiter) Wrap(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(c *fasthttp.RequestCtx) {
		if l.exempt[string(c.Path())] {
			next(c)
			return
		}
		if !l.Acquire(nil) {
			l.answer(c)
			return
		}
		defer l.Release()
		next(c)
	}
}

var (
	shedBody = problem.Unavailable("the service is busy; retry after the time in Retry-After").JSON()
	traceKey = []byte(textproto.CanonicalMIMEHeaderKey(trace.Header))
)

func (l *Limiter) answer(c *fasthttp.RequestCtx) {
	c.Response.Reset()
	c.SetStatusCode(fasthttp.StatusServiceUnavailable)
	c.Response.Header.SetCanonical(traceKey, []byte(trace.NewID()))
	c.Response.Header.Set(fasthttp.HeaderRetryAfter, l.retry)
	c.SetContentType(problem.ContentType)
	c.SetBody(shedBody)
}
