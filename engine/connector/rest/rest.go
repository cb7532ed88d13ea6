// Package rest is the connector for REST/JSON sources: it owns the HTTP
// transport to one source — the connection pool, TLS and client certificates,
// URL building from an operation's template, per-attempt deadlines, retries
// with backoff, and the classification of transport failures.
//
// It must not know about flows, expressions, consumers or the gateway: it
// receives a rendered connector.Request and returns the raw bytes the source
// answered. Decoding the body is the executor's job. See RATIONALE.md for the
// choices a newcomer would question.
package rest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/connector"
)

// Client reaches one REST source. It is safe for concurrent use.
type Client struct {
	source   string
	endpoint endpoint
	tls      *tls.Config // nil for http
	dialer   *fasthttp.TCPDialer
	hc       *fasthttp.HostClient
	timeout  time.Duration
	health   *operation // nil: Check dials
	ops      map[string]*operation
}

// operation is an Operation compiled by New: Call only looks things up and
// appends bytes.
type operation struct {
	name        string
	method      string
	idempotent  bool
	prefix      string // scheme://host/base
	path        []pathPart
	query       []queryParam
	queryEnc    string
	headers     []header // source headers overlaid with operation headers
	timeout     time.Duration
	retry       policy
	maxBytes    int
	hasTemplate bool
}

// Header names as they travel, and the response headers handed back in
// connector.Response.Headers, under their canonical names.
const (
	headerAccept  = "Accept"
	headerTraceID = "BelGov-Trace-Id"
	contentJSON   = "application/json"
)

// Canonical byte forms of the headers every call sets (SetCanonical skips
// fasthttp's key normalisation).
var (
	acceptKey        = []byte(headerAccept)
	traceKey         = []byte(textproto.CanonicalMIMEHeaderKey(headerTraceID))
	contentJSONBytes = []byte(contentJSON)
)

var keptHeaders = func() []string {
	names := []string{"Content-Type", "ETag", "Last-Modified", "Location", "Retry-After", headerTraceID}
	for i, n := range names {
		names[i] = textproto.CanonicalMIMEHeaderKey(n)
	}
	return names
}()

// kept returns the keptHeaders entry equal to a (canonical) response header
// name, or "": the constant, so that the name costs no allocation.
func kept(k []byte) string {
	for _, name := range keptHeaders {
		if string(k) == name {
			return name
		}
	}
	return ""
}

// idempotentKey marks a fasthttp request whose operation is idempotent, for
// resendStale.
type idempotentKey struct{}

// New validates cfg, applies its defaults and builds the client. Nothing is
// dialled until the first call.
func New(cfg Config) (*Client, error) {
	c, err := build(cfg)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", cfg.Source, err)
	}
	return c, nil
}

func build(cfg Config) (*Client, error) {
	if cfg.Source == "" {
		return nil, errors.New("source name is empty")
	}
	ep, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	c := &Client{source: cfg.Source, endpoint: ep, ops: make(map[string]*operation, len(cfg.Operations))}

	switch {
	case cfg.Timeout < 0:
		return nil, errors.New("timeout must not be negative")
	case cfg.MaxResponseBytes < 0:
		return nil, errors.New("max response bytes must not be negative")
	case cfg.MaxConns < 0:
		return nil, errors.New("max conns must not be negative")
	case cfg.MaxIdle < 0:
		return nil, errors.New("max idle must not be negative")
	}
	c.timeout = orDefault(cfg.Timeout, DefaultTimeout)
	maxBytes := orDefault(cfg.MaxResponseBytes, DefaultMaxResponseBytes)
	retry, err := compilePolicy(cfg.Retry)
	if err != nil {
		return nil, err
	}

	if ep.https {
		if c.tls, err = buildTLS(cfg.TLS, ep.host); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	} else if cfg.TLS != nil {
		return nil, errors.New("tls settings given for an http:// base url")
	}

	// The pool is sized once for every operation: its limits are the largest
	// any operation asks for, and each call then applies its own.
	longest, largest := c.timeout, maxBytes
	for name, o := range cfg.Operations {
		op, err := compileOperation(name, o, ep.prefix, cfg.Headers, c.timeout, maxBytes, retry)
		if err != nil {
			return nil, fmt.Errorf("operation %q: %w", name, err)
		}
		c.ops[name] = op
		longest, largest = max(longest, op.timeout), max(largest, op.maxBytes)
	}
	if cfg.HealthPath != "" {
		op, err := compileOperation("health", Operation{Method: "GET", Path: cfg.HealthPath}, ep.prefix, cfg.Headers, c.timeout, maxBytes, policy{attempts: 1})
		if err != nil {
			return nil, fmt.Errorf("health path: %w", err)
		}
		if op.hasTemplate {
			return nil, errors.New("health path must not have placeholders")
		}
		c.health = op
	}

	c.dialer = &fasthttp.TCPDialer{}
	c.hc = &fasthttp.HostClient{
		Addr:                ep.addr,
		Name:                "fsb",
		IsTLS:               ep.https,
		DialTimeout:         c.dial,
		MaxConns:            orDefault(cfg.MaxConns, DefaultMaxConns),
		MaxIdleConnDuration: orDefault(cfg.MaxIdle, DefaultMaxIdle),
		// A call waits for a free connection until its own deadline
		// (fasthttp takes the smaller of the two) instead of failing at once.
		MaxConnWaitTimeout: longest,
		// Backstops only: every attempt carries its own deadline.
		ReadTimeout:         longest,
		WriteTimeout:        longest,
		ReadBufferSize:      8 << 10,
		MaxResponseBodySize: largest,
		// The path is built and escaped here; fasthttp must send it as is
		// (its normalisation would decode %2F in a value back into a slash).
		DisablePathNormalizing: true,
		// One transparent re-send for a request lost on a connection the
		// source had closed; every other retry is ours (see resendStale).
		MaxIdemponentCallAttempts: 2,
		SecureErrorLogMessage:     true,
	}
	c.hc.RetryIfErr = c.resendStale
	return c, nil
}

func compileOperation(name string, o Operation, prefix string, sourceHeaders map[string]string, timeout time.Duration, maxBytes int, retry policy) (*operation, error) {
	if name == "" {
		return nil, errors.New("operation name is empty")
	}
	op := &operation{name: name, method: strings.ToUpper(o.Method), prefix: prefix}
	idem, known := idempotentMethods[op.method]
	if !known {
		return nil, fmt.Errorf("unknown method %q", o.Method)
	}
	op.idempotent = idem
	if o.Idempotent != nil {
		op.idempotent = *o.Idempotent
	}
	var err error
	if op.path, err = compilePath(o.Path); err != nil {
		return nil, err
	}
	op.hasTemplate = slices.ContainsFunc(op.path, func(p pathPart) bool { return p.param != "" })
	op.query, op.queryEnc = compileQuery(o.Query)
	if op.headers, err = mergeHeaders(sourceHeaders, o.Headers); err != nil {
		return nil, err
	}
	switch {
	case o.Timeout < 0:
		return nil, errors.New("timeout must not be negative")
	case o.MaxResponseBytes < 0:
		return nil, errors.New("max response bytes must not be negative")
	}
	op.timeout = orDefault(o.Timeout, timeout)
	op.maxBytes = orDefault(o.MaxResponseBytes, maxBytes)
	op.retry = retry
	if o.Retry != nil {
		if op.retry, err = compilePolicy(*o.Retry); err != nil {
			return nil, err
		}
	}
	return op, nil
}

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// resendStale is fasthttp's RetryIfErr. It is asked once per DoDeadline
// (MaxIdemponentCallAttempts is 2), after the first failed try, and lets
// fasthttp re-send only a request lost on a stale kept-alive connection
// (see resendable). fasthttp keeps the attempt's deadline for the re-send.
//
// A source that closed one idle connection has usually closed them all (it
// restarted, or its keep-alive timeout passed for all of them), and the pool
// would hand the re-send the next stale one: so every idle connection is
// dropped first, and the re-send (and the calls that follow) dial afresh.
func (c *Client) resendStale(req *fasthttp.Request, _ int, err error) (resetTimeout, retry bool) {
	if !staleConn(err) {
		return false, false
	}
	c.hc.CloseIdleConnections()
	return false, resendable(req.UserValue(idempotentKey{}) != nil, err)
}

// dial opens a connection within timeout, TLS handshake included, so a
// stalled handshake cannot outlive the attempt's deadline.
func (c *Client) dial(addr string, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = c.timeout
	}
	deadline := time.Now().Add(timeout)
	conn, err := c.dialer.DialDualStackTimeout(addr, timeout)
	if err != nil || c.tls == nil {
		return conn, err
	}
	tc := tls.Client(conn, c.tls)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return tc, nil
}

// Call performs one operation. See connector.Connector.
func (c *Client) Call(ctx context.Context, r *connector.Request) (*connector.Response, error) {
	op, ok := c.ops[r.Operation]
	if !ok {
		return nil, c.fail(r.Operation, connector.ErrUnknownOp, "", nil)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.ctxFail(op.name, err)
	}

	req := acquireRequest()
	resp := acquireResponse()
	// Once an attempt is abandoned (ctx cancelled while it was in flight),
	// req and resp belong to the worker still running it, which releases
	// them when it ends. A successful answer lends resp to the caller.
	abandoned, lent := false, false
	defer func() {
		if !abandoned {
			releaseRequest(req)
			if !lent {
				releaseResponse(resp)
			}
		}
	}()
	resp.Header.SetNoDefaultContentType(true)

	// A context that can be cancelled gets abortable attempts (see
	// doAbortable), which may outlive the call: the request then owns a copy
	// of the body rather than the caller's slice.
	abortable := ctx.Done() != nil
	if err := c.buildRequest(req, op, r, abortable); err != nil {
		return nil, c.fail(op.name, connector.ErrBadRequest, err.Error(), err)
	}

	attempts := 1
	if op.idempotent {
		attempts = op.retry.attempts
	}
	for n := 1; ; n++ {
		deadline := attemptDeadline(ctx, op.timeout)
		var err error
		if abortable {
			if abandoned, err = c.doAbortable(ctx, req, resp, deadline); abandoned {
				return nil, c.ctxFail(op.name, err)
			}
		} else {
			err = c.hc.DoDeadline(req, resp, deadline)
		}
		var last error
		var after time.Duration // Retry-After, when the source sent one
		switch {
		case err != nil:
			kind, detail := classify(err)
			ce := c.fail(op.name, kind, detail, err)
			ce.Attempts = n
			last = ce
			if !retryable(kind) || n >= attempts {
				return nil, last
			}
		case n < attempts && op.retry.retriesStatus(resp.StatusCode()):
			after = connector.RetryAfter(string(resp.Header.Peek("Retry-After")))
		default:
			out, err := c.response(op, resp, n)
			lent = err == nil
			return out, err
		}

		delay := connector.RetryDelay(op.retry.backoff, op.retry.maxBackoff, n, after)
		if !connector.Backoff(ctx, delay) {
			// No time left for another try: hand back what the last one got.
			if last != nil {
				return nil, last
			}
			out, err := c.response(op, resp, n)
			lent = err == nil
			return out, err
		}
		if slog.Default().Enabled(ctx, slog.LevelDebug) {
			status := 0
			if err == nil {
				status = resp.StatusCode()
			}
			slog.DebugContext(ctx, "rest: retrying", "source", c.source, "operation", op.name,
				"attempt", n+1, "waited", delay, "status", status, "cause", err)
		}
	}
}

// Pooled request objects, through variables so tests can count them.
var (
	acquireRequest  = fasthttp.AcquireRequest
	releaseRequest  = fasthttp.ReleaseRequest
	acquireResponse = fasthttp.AcquireResponse
	releaseResponse = fasthttp.ReleaseResponse
)

// inflight is one attempt run by doAbortable on another goroutine. It is
// pooled with its done channel, so handing an attempt over allocates nothing.
type inflight struct {
	hc       *fasthttp.HostClient
	req      *fasthttp.Request
	resp     *fasthttp.Response
	deadline time.Time
	err      error
	// state goes from stateRunning to stateFinished (the worker, when
	// DoDeadline returns) or to stateAbandoned (the caller, when ctx is
	// cancelled first); whoever moves it decides who releases req and resp.
	state atomic.Int32
	done  chan struct{} // capacity 1; sent on only when finished
}

const (
	stateRunning int32 = iota
	stateFinished
	stateAbandoned
)

var inflightPool = sync.Pool{New: func() any { return &inflight{done: make(chan struct{}, 1)} }}

// do runs the attempt on a worker.
func (f *inflight) do() {
	f.err = f.hc.DoDeadline(f.req, f.resp, f.deadline)
	if f.state.CompareAndSwap(stateRunning, stateFinished) {
		f.done <- struct{}{} // the caller waits and puts f back
		return
	}
	// The caller has gone: req and resp are ours.
	releaseRequest(f.req)
	releaseResponse(f.resp)
	f.put()
}

// put returns f to the pool, holding nothing.
func (f *inflight) put() {
	f.hc, f.req, f.resp, f.deadline, f.err = nil, nil, nil, time.Time{}, nil
	f.state.Store(stateRunning)
	inflightPool.Put(f)
}

// Abortable attempts run on workers: goroutines that wait up to workerIdle
// for the next attempt (idle workers take attempts in turn, so under steady
// load their number stays at the peak of concurrent attempts). A fresh
// goroutine per attempt would grow its stack to DoDeadline's depth every
// time, which cost more than the rest of the hand-over together.
var work = make(chan *inflight) // idle workers wait here

// workerIdle is how long a worker waits for the next attempt before it ends.
const workerIdle = 10 * time.Second

// startAttempt hands f to an idle worker, or starts one.
func startAttempt(f *inflight) {
	select {
	case work <- f:
	default:
		go worker(f)
	}
}

func worker(f *inflight) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f.do()
		f = nil
		idle.Reset(workerIdle)
		select {
		case f = <-work:
		case <-idle.C:
			return
		}
	}
}

// doAbortable is DoDeadline that returns as soon as ctx is cancelled.
// fasthttp cannot abort a request, so the attempt runs on a worker and, when
// ctx is cancelled first, is abandoned: doAbortable reports abandoned and
// ctx.Err(), and the worker releases req and resp when the request ends
// (answer, failure or deadline), holding its connection until then. A ctx
// that expires is not abandoned: the attempt's deadline is never later than
// ctx's, so fasthttp ends it then, as it would without the worker.
func (c *Client) doAbortable(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) (abandoned bool, err error) {
	f := inflightPool.Get().(*inflight)
	f.hc, f.req, f.resp, f.deadline = c.hc, req, resp, deadline
	startAttempt(f)
	select {
	case <-f.done:
	case <-ctx.Done():
		if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) && f.state.CompareAndSwap(stateRunning, stateAbandoned) {
			return true, err
		}
		<-f.done // finished meanwhile, or ends by its deadline
	}
	err = f.err
	f.put()
	return false, err
}

// buildRequest fills req for op. With ownBody the body is copied into req
// (which may outlive the call); otherwise req refers to the caller's slice.
func (c *Client) buildRequest(req *fasthttp.Request, op *operation, r *connector.Request, ownBody bool) error {
	var buf [256]byte
	uri := append(buf[:0], op.prefix...)
	uri, err := appendPath(uri, op.path, r.Path)
	if err != nil {
		return err
	}
	uri = appendQuery(uri, op.query, op.queryEnc, r.Query)
	req.SetRequestURIBytes(uri)
	req.Header.SetMethod(op.method)
	req.Header.SetNoDefaultContentType(true)

	for _, h := range op.headers {
		req.Header.SetCanonical(h.nameB, h.valueB)
	}
	for k, v := range r.Headers {
		if err := checkHeader(k, v); err != nil {
			return err
		}
		req.Header.Set(k, v)
	}
	req.Header.SetCanonical(acceptKey, contentJSONBytes)
	if r.TraceID != "" {
		if err := checkHeader(headerTraceID, r.TraceID); err != nil {
			return err
		}
		req.Header.SetCanonical(traceKey, []byte(r.TraceID))
	}
	if r.Body != nil {
		req.Header.SetContentType(contentJSON)
		// It is sent again, unchanged, on each attempt. The caller keeps
		// the body alive for the whole call, so it need not be copied —
		// unless an abandoned attempt may still be sending it afterwards.
		if ownBody {
			req.SetBody(r.Body)
		} else {
			req.SetBodyRaw(r.Body)
		}
	}
	if op.idempotent {
		req.SetUserValue(idempotentKey{}, true)
	}
	return nil
}

// response builds the caller's view of the pooled fasthttp response: the kept
// headers copied, the body lent (see Release).
func (c *Client) response(op *operation, resp *fasthttp.Response, attempts int) (*connector.Response, error) {
	body := resp.Body()
	if len(body) > op.maxBytes {
		return nil, c.fail(op.name, connector.ErrTooLarge, "", fasthttp.ErrBodyTooLarge)
	}
	// Lend the pooled response's body instead of copying it: the caller
	// calls Release when done (a passthrough then copies it only once, into
	// the consumer's answer).
	out := &connector.Response{Status: resp.StatusCode(), Attempts: attempts, Body: body,
		Release: func() { releaseResponse(resp) }}
	// One pass over the headers (fasthttp keeps names canonical), rather
	// than a Peek per kept name: each Peek normalises its key again.
	resp.Header.VisitAll(func(k, v []byte) {
		name := kept(k)
		if len(v) == 0 || name == "" {
			return
		}
		out.Headers = append(out.Headers, connector.Header{Name: name, Value: string(v)})
	})
	return out, nil
}

// attemptDeadline is the earlier of ctx's deadline and now+timeout.
func attemptDeadline(ctx context.Context, timeout time.Duration) time.Time {
	d := time.Now().Add(timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// Check probes the source: GET HealthPath wanting a 2xx when configured,
// otherwise a connection (with its TLS handshake for https).
func (c *Client) Check(ctx context.Context) error {
	const op = "health check"
	if err := ctx.Err(); err != nil {
		return c.ctxFail(op, err)
	}
	deadline := attemptDeadline(ctx, c.timeout)
	if c.health == nil {
		conn, err := c.dial(c.endpoint.addr, time.Until(deadline))
		if err != nil {
			kind, detail := classify(err)
			return c.fail(op, kind, detail, err)
		}
		return conn.Close()
	}

	req := acquireRequest()
	defer releaseRequest(req)
	// The body is read (not skipped) so the connection can go back to the
	// pool clean; MaxResponseBodySize bounds it.
	resp := acquireResponse()
	defer releaseResponse(resp)
	if err := c.buildRequest(req, c.health, &connector.Request{}, false); err != nil {
		return c.fail(op, connector.ErrBadRequest, err.Error(), err)
	}
	if err := c.hc.DoDeadline(req, resp, deadline); err != nil {
		kind, detail := classify(err)
		return c.fail(op, kind, detail, err)
	}
	if s := resp.StatusCode(); s < 200 || s > 299 {
		return c.fail(op, connector.ErrUnavailable, fmt.Sprintf("health check answered status %d", s), nil)
	}
	return nil
}

// Close closes the idle pooled connections and empties the DNS cache, so
// that fasthttp's DNS-cache cleaner goroutine ends at its next tick (within
// a second) rather than two cache lifetimes later. fasthttp's connection
// cleaner cannot be stopped: it ends once it wakes and finds no connection,
// within MaxIdle (RATIONALE.md, "Close"). Calls made afterwards still work
// and open new connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	c.dialer.FlushDNSCache()
	return nil
}

func (c *Client) fail(op string, kind error, detail string, cause error) *connector.Error {
	return &connector.Error{Source: c.source, Operation: op, Kind: kind, Detail: detail, Err: cause}
}

// ctxFail reports a context that ended before a call could start, or was
// cancelled while its request was in flight (see doAbortable). The
// connector contract has no sentinel for cancellation: a cancelled call is
// reported as unavailable, and errors.Is(err, context.Canceled) still holds.
func (c *Client) ctxFail(op string, err error) *connector.Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return c.fail(op, connector.ErrTimeout, "", err)
	}
	return c.fail(op, connector.ErrUnavailable, "call cancelled", err)
}

var _ connector.Connector = (*Client)(nil)
