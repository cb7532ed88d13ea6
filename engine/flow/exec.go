package flow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/textproto"
	"strconv"
	"sync"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/expr"
	"github.com/openfsb/fsb/engine/problem"
	"github.com/openfsb/fsb/engine/trace"
)

// deadlineCtx carries a deadline without a timer. Nothing can cancel it, so
// its Done is nil; Err reports the deadline once it has passed; callees
// (connectors) bound their work by Deadline. Steps outside parallel and
// foreach run under it: a timer context per request costs ~2µs, and a
// cancellable context makes connectors hand each call to another goroutine.
type deadlineCtx struct {
	context.Context // values only
	deadline        time.Time
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *deadlineCtx) Done() <-chan struct{}       { return nil }
func (c *deadlineCtx) Err() error {
	if time.Now().Before(c.deadline) {
		return nil
	}
	return context.DeadlineExceeded
}

// withDeadline returns a deadlineCtx ending at the earlier of d and ctx's
// deadline (a zero d keeps ctx's).
func withDeadline(ctx context.Context, d time.Time) context.Context {
	if pd, ok := ctx.Deadline(); ok && (d.IsZero() || pd.Before(d)) {
		d = pd
	}
	if d.IsZero() {
		return ctx
	}
	if dc, ok := ctx.(*deadlineCtx); ok {
		if d.Equal(dc.deadline) {
			return ctx
		}
		return &deadlineCtx{dc.Context, d}
	}
	return &deadlineCtx{withoutCancel(ctx), d}
}

// cancellable derives a context that the caller can cancel and that ends at
// ctx's deadline — also when ctx is a deadlineCtx, whose Done never closes.
func cancellable(ctx context.Context) (context.Context, context.CancelFunc) {
	if dc, ok := ctx.(*deadlineCtx); ok {
		return context.WithDeadline(dc.Context, dc.deadline)
	}
	return context.WithCancel(ctx)
}

// ended is ctx.Err(), also reporting a deadline that has passed before the
// context's own timer fired (a call may see its deadline a moment earlier).
func ended(ctx context.Context) error {
	if dc, ok := ctx.(*deadlineCtx); ok {
		return dc.Err() // one clock reading
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// withoutCancel drops ctx's cancellation (keeping its values); a context
// that cannot be cancelled is returned as is.
func withoutCancel(ctx context.Context) context.Context {
	if ctx.Done() == nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// sourceTraceKey is how connectors spell the trace header (canonical MIME form).
var sourceTraceKey = textproto.CanonicalMIMEHeaderKey(trace.Header)

// Runtime is what a plan needs to run: the connectors by source name and who
// wants to hear about source calls. It is shared by all requests.
type Runtime struct {
	Conns    map[string]connector.Connector
	Plugins  map[string]Plugin // by plugin name
	Observer Observer          // may be nil
	Log      *slog.Logger
}

// Plugin runs one operation of a sandboxed module (engine/wasm implements
// it): JSON in, bytes out. An error that is a timeout has a Timeout() bool
// method saying so, or is context.DeadlineExceeded.
type Plugin interface {
	Call(ctx context.Context, op string, input, config []byte) ([]byte, error)
}

// Observer hears about every source call (for logs, audit, metrics). It is
// called synchronously and must not keep ctx or c after it returns (both
// may belong to a pooled run); copy what it needs.
type Observer interface {
	SourceCall(ctx context.Context, c *SourceCall)
}

// SourceCall describes one finished call to a source. A call its source's
// open circuit rejected (engine/breaker) never reached the source: its Err
// matches connector.ErrCircuitOpen, its Status is 0 and its Attempts 0.
type SourceCall struct {
	Flow, Step, Source, Operation string
	Subject                       string // the call step's subject, in clear ("": the flow's own)
	TraceID                       string // the fresh id sent to the source
	ParentTraceID                 string // the gateway's id for the consumer response
	SourceTraceID                 string // the id the source answered with, if any
	Status                        int
	Bytes                         int
	Attempts                      int
	Duration                      time.Duration
	Err                           error
	Body                          []byte // the answer, if any; valid only during SourceCall (the connector may lend it)
}

// Invocation is one consumer request, validated.
type Invocation struct {
	Input    expr.Input
	Consumer expr.Consumer
	TraceID  string // this response's BelGov-Trace-Id
}

// Outcome is the answer: a JSON body with a status and headers, or a problem.
type Outcome struct {
	Status  int
	Body    []byte
	Headers map[string]string // set by the flow's headers (e.g. Location)
	Problem *problem.Problem
	buf     []byte // pooled storage of Body
	pooled  bool
}

// Release hands the outcome and its body buffer back for reuse; neither may
// be used after. Calling it is optional (unreleased, they are collected).
func (o *Outcome) Release() {
	if !o.pooled || cap(o.buf) > maxPooledBody {
		return
	}
	*o = Outcome{buf: o.buf[:0], pooled: true}
	outcomes.Put(o)
}

// Outcomes and their output buffers are pooled: a gateway answers thousands
// of bodies a second, and allocating each one is most of what its garbage
// collector would have to do.
var outcomes = sync.Pool{New: func() any { return &Outcome{buf: make([]byte, 0, 4096), pooled: true} }}

func acquireOutcome() *Outcome { return outcomes.Get().(*Outcome) }

const maxPooledBody = 256 << 10

// run is the state of one execution. Runs are pooled per plan: a request
// reuses the maps and structs of an earlier one instead of allocating them.
// Nothing may keep a reference into a run after Plan.Run or Plan.Serve returns (every
// branch and iteration has been joined by then, and connectors do not keep
// requests after Call).
type run struct {
	plan    *Plan
	rt      *Runtime
	inv     Invocation
	dctx    deadlineCtx // the run's context when nothing but its deadline can end it
	env     expr.Env
	inPath  map[string]any // input.path and input.query, reused
	inQuery map[string]any
	results []expr.Result         // by index of plan.ids; env.Steps points here
	raw     [][]byte              // raw call bodies by node slot (not for foreach iterations)
	lent    []*connector.Response // responses whose bodies are lent, by slot
	reqs    []connector.Request   // the request of each call by slot, maps reused
	calls   []trace.CallContext   // the context of each call by slot, reused
	obs     []SourceCall          // what the Observer hears of each call by slot, reused
}

func (p *Plan) acquireRun(rt *Runtime) *run {
	r, _ := p.runs.Get().(*run)
	if r == nil {
		r = &run{plan: p, results: make([]expr.Result, len(p.ids)), raw: make([][]byte, p.nslots),
			lent: make([]*connector.Response, p.nslots), reqs: make([]connector.Request, p.nslots),
			calls: make([]trace.CallContext, p.nslots), obs: make([]SourceCall, p.nslots)}
		r.env.Steps = make(map[string]*expr.Result, len(p.ids))
		for i, id := range p.ids {
			r.env.Steps[id] = &r.results[i]
		}
	}
	for i := range r.results {
		r.results[i] = expr.Result{Skipped: true}
	}
	r.rt = rt
	return r
}

func (p *Plan) releaseRun(r *run) {
	for i, resp := range r.lent {
		resp.Done()
		r.lent[i], r.raw[i] = nil, nil
	}
	for i := range r.reqs { // personal data does not linger in the pool
		q := &r.reqs[i]
		clear(q.Path)
		clear(q.Query)
		clear(q.Headers)
		q.Body, q.TraceID = nil, ""
	}
	clear(r.calls) // no context of this run outlives it
	clear(r.obs)
	r.rt, r.inv, r.dctx = nil, Invocation{}, deadlineCtx{}
	r.env.Input, r.env.Consumer = expr.Input{}, expr.Consumer{}
	clear(r.inPath)
	clear(r.inQuery)
	for i := range r.results {
		r.results[i] = expr.Result{}
	}
	p.runs.Put(r)
}

// stepError is a failure that ends the flow (or an optional step).
type stepError struct {
	step string
	prob *problem.Problem
	err  error // for logs only
}

// Run executes the plan for an already validated input. It never panics on
// bad data and never returns internals in the problem: details go to the log.
func (p *Plan) Run(ctx context.Context, rt *Runtime, inv *Invocation) *Outcome {
	r := p.acquireRun(rt)
	defer p.releaseRun(r)
	r.inv = *inv
	return r.exec(ctx)
}

// Serve validates a consumer request and, when it is valid, runs the plan;
// the whole exchange reuses pooled state. The gateway's entry point.
func (p *Plan) Serve(ctx context.Context, rt *Runtime, req *Request, traceID string, consumer expr.Consumer) *Outcome {
	r := p.acquireRun(rt)
	defer p.releaseRun(r)
	in, prob := p.validate(req, r)
	if prob != nil {
		return &Outcome{Status: prob.Status, Problem: prob}
	}
	r.inv = Invocation{Input: in, Consumer: consumer, TraceID: traceID}
	return r.exec(ctx)
}

func (r *run) exec(ctx context.Context) *Outcome {
	p := r.plan
	if p.concurrent {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.Timeout)
		defer cancel()
	} else {
		r.dctx = deadlineCtx{withoutCancel(ctx), time.Now().Add(p.Timeout)}
		ctx = &r.dctx
	}
	env := &r.env
	env.Input, env.Consumer = r.inv.Input, r.inv.Consumer
	if se := r.seq(ctx, env, p.root); se != nil {
		return r.fail(se)
	}
	out := acquireOutcome()
	body, _, err := r.render(out.buf[:0], p.output, env, true)
	var me *malformedError
	switch {
	case errors.As(err, &me):
		id := p.slotIDs[me.slot]
		return r.fail(&stepError{step: id, prob: problem.BadGateway(fmt.Sprintf("step %q: the source answered with malformed JSON", id)), err: err})
	case err != nil:
		return r.fail(&stepError{prob: problem.Internal("the flow's output could not be built"), err: err})
	}
	if len(body) == 0 { // the output expression yielded nil
		body = append(body, "{}"...)
	}
	headers, err := r.responseHeaders(env)
	if err != nil {
		return r.fail(&stepError{prob: problem.Internal("the flow's response headers could not be built"), err: err})
	}
	out.Status, out.Body, out.Headers, out.buf = p.Status, body, headers, body
	return out
}

func (r *run) fail(se *stepError) *Outcome {
	if se.prob.Step == "" {
		se.prob.Step = se.step
	}
	if r.rt.Log != nil && se.prob.Status >= 500 {
		attrs := []any{"flow", r.plan.Name, "step", se.step}
		if n := findNode(r.plan.root, se.step); n != nil && n.source != "" { // a source call: which one
			attrs = append(attrs, "source", n.source, "operation", n.op)
		}
		r.rt.Log.Warn("flow failed", append(attrs, "trace", r.inv.TraceID, "status", se.prob.Status, "err", se.err)...)
	}
	return &Outcome{Status: se.prob.Status, Problem: se.prob}
}

// findNode is the step id's node under nodes, nil if none (for logs of
// failed calls only: it walks the plan).
func findNode(nodes []*node, id string) *node {
	for _, n := range nodes {
		if n.id == id {
			return n
		}
		if f := findNode(n.children, id); f != nil {
			return f
		}
		for _, c := range n.cases {
			if f := findNode(c.steps, id); f != nil {
				return f
			}
		}
		if f := findNode(n.fallback, id); f != nil {
			return f
		}
	}
	return nil
}

func (r *run) seq(ctx context.Context, env *expr.Env, nodes []*node) *stepError {
	for _, n := range nodes {
		if err := ended(ctx); err != nil {
			return r.deadline(n.id, err)
		}
		if se := r.step(ctx, env, n); se != nil {
			return se
		}
	}
	return nil
}

func (r *run) deadline(step string, err error) *stepError {
	if errors.Is(err, context.DeadlineExceeded) {
		return &stepError{step: step, prob: problem.GatewayTimeout(fmt.Sprintf("the service did not complete within %s (at step %q)", r.plan.Timeout, step)), err: err}
	}
	return &stepError{step: step, prob: problem.Unavailable("the request was cancelled"), err: err}
}

func (r *run) step(ctx context.Context, env *expr.Env, n *node) *stepError {
	res := env.Steps[n.id]
	if n.when != nil {
		ok, err := n.when.Run(env)
		if err != nil {
			return r.exprError(n.id, "when", err)
		}
		if ok != true {
			return nil // stays Skipped
		}
	}
	sctx := ctx
	switch {
	case n.timeout > 0 && n.cancellable:
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(ctx, n.timeout)
		defer cancel()
	case n.timeout > 0:
		sctx = withDeadline(ctx, time.Now().Add(n.timeout))
	}
	se := r.do(sctx, env, n, res)
	if se == nil {
		res.Skipped, res.OK = false, true
		return nil
	}
	if err := ended(ctx); err != nil {
		// the flow is ending (a sibling failed, or the deadline passed): this
		// step's own failure is not the cause, so report why it ended
		return r.deadline(n.id, err)
	}
	if se.prob.Step == "" {
		se.prob.Step = n.id
	}
	if n.optional && n.kind != kindFail {
		res.Skipped, res.OK = false, false
		res.Error = se.prob.Detail
		res.Body = n.def
		if r.rt.Log != nil {
			r.rt.Log.Info("optional step failed, using its default", "flow", r.plan.Name, "step", n.id, "trace", r.inv.TraceID, "err", se.err)
		}
		return nil
	}
	return se
}

func (r *run) do(ctx context.Context, env *expr.Env, n *node, res *expr.Result) *stepError {
	switch n.kind {
	case kindCall:
		return r.call(ctx, env, n, res)
	case kindSteps:
		return r.seq(ctx, env, n.children)
	case kindParallel:
		return r.parallel(ctx, env, n)
	case kindSwitch:
		for _, cs := range n.cases {
			ok, err := cs.when.Run(env)
			if err != nil {
				return r.exprError(n.id, "case when", err)
			}
			if ok == true {
				return r.seq(ctx, env, cs.steps)
			}
		}
		return r.seq(ctx, env, n.fallback)
	case kindForeach:
		return r.foreach(ctx, env, n, res)
	case kindSet:
		v, err := r.value(n.set, env)
		if err != nil {
			return r.exprError(n.id, "set", err)
		}
		res.Body = v
		return nil
	case kindFail:
		return r.failStep(env, n)
	case kindTransform:
		return r.transform(ctx, env, n, res)
	}
	return &stepError{step: n.id, prob: problem.Internal("unknown step kind")}
}

func (r *run) failStep(env *expr.Env, n *node) *stepError {
	detail := ""
	if n.detail != nil {
		v, err := n.detail.Run(env)
		if err != nil {
			return r.exprError(n.id, "detail", err)
		}
		detail = Text(v)
	}
	p := problem.New(n.problemType, n.problemStatus, detail)
	if n.problemTitle != "" {
		p.Title = n.problemTitle
	}
	return &stepError{step: n.id, prob: p}
}

func (r *run) exprError(step, what string, err error) *stepError {
	return &stepError{step: step, prob: problem.Internal(fmt.Sprintf("step %q: the %s expression could not be evaluated", step, what)), err: err}
}

func (r *run) parallel(ctx context.Context, env *expr.Env, n *node) *stepError {
	ctx, cancel := cancellable(ctx)
	defer cancel()
	errs := make([]*stepError, len(n.children))
	var wg sync.WaitGroup
	for i, child := range n.children[1:] {
		wg.Go(func() {
			if errs[i+1] = r.step(ctx, env, child); errs[i+1] != nil {
				cancel()
			}
		})
	}
	if errs[0] = r.step(ctx, env, n.children[0]); errs[0] != nil {
		cancel()
	}
	wg.Wait()
	return firstError(errs)
}

// firstError prefers a real failure over the cancellations it caused.
func firstError(errs []*stepError) *stepError {
	var first *stepError
	for _, e := range errs {
		if e == nil {
			continue
		}
		if !errors.Is(e.err, context.Canceled) {
			return e
		}
		if first == nil {
			first = e
		}
	}
	return first
}

func (r *run) foreach(ctx context.Context, env *expr.Env, n *node, res *expr.Result) *stepError {
	v, err := n.items.Run(env)
	if err != nil {
		return r.exprError(n.id, "items", err)
	}
	var items []any
	switch x := v.(type) {
	case nil:
	case []any:
		items = x
	default:
		return &stepError{step: n.id, prob: problem.Internal(fmt.Sprintf("step %q: items is not a list", n.id)), err: fmt.Errorf("items evaluated to %T", v)}
	}
	if len(items) > n.maxItems {
		// Input-driven lists are the consumer's to shorten; lists a source
		// sent are the source's doing.
		msg := fmt.Sprintf("step %q: %d items exceed the limit of %d", n.id, len(items), n.maxItems)
		if len(n.items.StepRefs) == 0 {
			return &stepError{step: n.id, prob: problem.BadRequest(msg)}
		}
		return &stepError{step: n.id, prob: problem.BadGateway(msg)}
	}
	out := make([]any, len(items))
	errs := make([]*stepError, len(items))
	ctx, cancel := cancellable(ctx)
	defer cancel()
	sem := make(chan struct{}, n.concurrency)
	var wg sync.WaitGroup
	for i, item := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			ienv := *env
			ienv.Item, ienv.Index = item, i
			ienv.Steps = make(map[string]*expr.Result, len(env.Steps)+len(n.inner))
			for k, v := range env.Steps {
				ienv.Steps[k] = v
			}
			for _, id := range n.inner {
				ienv.Steps[id] = &expr.Result{Skipped: true}
			}
			if se := r.seq(ctx, &ienv, n.children); se != nil {
				errs[i] = se
				cancel()
				return
			}
			if n.iterOut != nil {
				v, err := r.value(n.iterOut, &ienv)
				if err != nil {
					errs[i] = r.exprError(n.id, "output", err)
					cancel()
					return
				}
				out[i] = v
			} else if len(n.children) > 0 {
				out[i] = ienv.Steps[n.children[len(n.children)-1].id].Body
			}
		})
	}
	wg.Wait()
	if se := firstError(errs); se != nil {
		return se
	}
	if err := ctx.Err(); err != nil {
		return r.deadline(n.id, err)
	}
	res.Body = out
	return nil
}

func (r *run) call(ctx context.Context, env *expr.Env, n *node, res *expr.Result) *stepError {
	conn := r.rt.Conns[n.source]
	if conn == nil {
		return &stepError{step: n.id, prob: problem.Unavailable(fmt.Sprintf("source %q is not available", n.source)), err: fmt.Errorf("no connector for source %q", n.source)}
	}
	var req *connector.Request
	if n.slot >= 0 {
		req = &r.reqs[n.slot] // reuses the maps of an earlier run
	} else {
		req = &connector.Request{}
	}
	req.Operation = n.op
	var err error
	if req.Path, err = r.fill(req.Path, n.path, env); err != nil {
		return r.exprError(n.id, "path", err)
	}
	if req.Query, err = r.fill(req.Query, n.query, env); err != nil {
		return r.exprError(n.id, "query", err)
	}
	if req.Headers, err = r.fill(req.Headers, n.headers, env); err != nil {
		return r.exprError(n.id, "headers", err)
	}
	if n.body != nil {
		if req.Body, _, err = r.render(nil, n.body, env, false); err != nil {
			return r.exprError(n.id, "body", err)
		}
		if req.Body == nil {
			req.Body = []byte("null")
		}
	}
	subject := ""
	if n.subject != nil {
		v, err := n.subject.Run(env)
		if err != nil {
			return r.exprError(n.id, "subject", err)
		}
		subject = Text(v)
	}
	attempts := 1
	if n.retry != nil {
		attempts = n.retry.attempts
	}
	var resp *connector.Response
	var callCtx context.Context = ctx
	if !n.cancellable {
		callCtx = withDeadline(ctx, time.Time{}) // only the deadline can end it: no abortable machinery
	}
	// What the connector (and a codec plugin it runs) logs names the step
	// and the consumer call's trace id; the slot's context is reused.
	var cc *trace.CallContext
	if n.slot >= 0 {
		cc = &r.calls[n.slot]
	} else {
		cc = new(trace.CallContext)
	}
	cc.Context, cc.Call = callCtx, trace.Call{TraceID: r.inv.TraceID, Step: n.id}
	callCtx = cc
	observed := r.rt.Observer != nil
	for attempt := 1; ; attempt++ {
		req.TraceID = trace.NewID()
		var start time.Time
		if observed {
			start = time.Now()
		}
		resp, err = conn.Call(callCtx, req)
		if observed {
			r.observe(ctx, n, req, subject, resp, err, time.Since(start))
		}
		retryable := err != nil && connector.Retryable(err) || err == nil && n.retry != nil && n.retry.onStatus[resp.Status]
		if !retryable || attempt >= attempts || !connector.Backoff(ctx, connector.RetryDelay(n.retry.backoff, n.retry.maxBackoff, attempt, 0)) {
			break
		}
		resp.Done()
	}
	if err != nil {
		resp.Done() // a connector should not answer both, but never leak a lent body
		return r.transportError(ctx, n, err)
	}
	// The body may be lent by the connector: keep it until the output is
	// built when the output may copy it raw, else give it back once read.
	if n.slot >= 0 {
		r.lent[n.slot] = resp
	} else {
		defer resp.Done()
	}
	res.Status, res.TraceID = resp.Status, req.TraceID
	if n.keepHeaders {
		res.Headers = make(map[string]any, len(resp.Headers))
		for _, h := range resp.Headers {
			res.Headers[h.Name] = h.Value
		}
	}
	if !(resp.Status >= 200 && resp.Status < 300 || n.accept[resp.Status]) {
		p := problem.BadGateway(fmt.Sprintf("step %q: source %q answered with status %d", n.id, n.source, resp.Status))
		if resp.Status == 503 {
			p = problem.Unavailable(fmt.Sprintf("step %q: source %q is unavailable", n.id, n.source))
			p.RetryAfter = int((connector.RetryAfter(resp.Headers.Get("Retry-After")) + time.Second - 1) / time.Second)
		}
		return &stepError{step: n.id, prob: p, err: fmt.Errorf("status %d", resp.Status)}
	}
	return r.keep(n, res, resp.Body)
}

// keep makes a call's or transform's output the step's body: decoded when
// an expression reads into it, kept raw when the output copies it.
func (r *run) keep(n *node, res *expr.Result, body []byte) *stepError {
	if n.decode {
		v, err := decodeJSON(body)
		if err != nil {
			return r.malformed(n, err)
		}
		res.Body = v
	}
	if n.slot >= 0 && len(bytes.TrimSpace(body)) > 0 { // an empty body reads as nil either way
		if !n.decode { // checked here, so that an optional step falls back to its default
			if err := framed(body); err != nil {
				return r.malformed(n, err)
			}
		}
		r.raw[n.slot] = body
	}
	return nil
}

func (r *run) malformed(n *node, err error) *stepError {
	detail := fmt.Sprintf("step %q: source %q answered with malformed JSON", n.id, n.source)
	if n.kind == kindTransform {
		detail = fmt.Sprintf("step %q: plugin %q returned malformed JSON", n.id, n.plugin)
	}
	return &stepError{step: n.id, prob: problem.BadGateway(detail), err: err}
}

// transform runs a plugin on the JSON value of the step's input.
func (r *run) transform(ctx context.Context, env *expr.Env, n *node, res *expr.Result) *stepError {
	pl := r.rt.Plugins[n.plugin]
	if pl == nil {
		return &stepError{step: n.id, prob: problem.Unavailable(fmt.Sprintf("plugin %q is not available", n.plugin)), err: fmt.Errorf("no plugin %q loaded", n.plugin)}
	}
	v, err := n.input.Run(env)
	if err != nil {
		return r.exprError(n.id, "input", err)
	}
	input, err := appendJSON(nil, v)
	if err != nil {
		return r.exprError(n.id, "input", err)
	}
	// The plugin's log lines name the step and the call's trace id.
	out, err := pl.Call(trace.WithCall(ctx, trace.Call{TraceID: r.inv.TraceID, Step: n.id}), n.pluginOp, input, n.pluginConfig)
	if err != nil {
		var to interface{ Timeout() bool }
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &to) && to.Timeout() || ended(ctx) != nil {
			return &stepError{step: n.id, prob: problem.GatewayTimeout(fmt.Sprintf("step %q: plugin %q did not finish in time", n.id, n.plugin)), err: err}
		}
		return &stepError{step: n.id, prob: problem.BadGateway(fmt.Sprintf("step %q: plugin %q failed", n.id, n.plugin)), err: err}
	}
	res.Status = 200
	return r.keep(n, res, out)
}

// problemDetailer is a source's own answer that failed the call, such as
// a SOAP Fault (connector/soap.FaultError): ProblemDetail says what it
// answered in words safe to show a consumer (sanitised, no stack trace).
type problemDetailer interface{ ProblemDetail() string }

func (r *run) transportError(ctx context.Context, n *node, err error) *stepError {
	var pd problemDetailer
	var open *connector.CircuitOpenError
	switch {
	case errors.Is(err, connector.ErrCircuitOpen):
		// The source's circuit is open (engine/breaker): it was not called.
		// Not a 503 from the source, whatever the step's acceptStatus says.
		p := problem.Unavailable(fmt.Sprintf("step %q: source %q is unavailable (too many recent failures); retry later", n.id, n.source))
		p.RetryAfter = 1
		if errors.As(err, &open) {
			p.RetryAfter = open.RetryAfterSeconds()
		}
		return &stepError{step: n.id, prob: p, err: err}
	case errors.As(err, &pd):
		return &stepError{step: n.id, prob: problem.BadGateway(fmt.Sprintf("step %q: source %q answered %s", n.id, n.source, pd.ProblemDetail())), err: err}
	case errors.Is(err, connector.ErrTimeout) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		d := n.timeout
		msg := fmt.Sprintf("step %q: source %q did not answer in time", n.id, n.source)
		if d > 0 {
			msg = fmt.Sprintf("step %q: source %q did not answer within %s", n.id, n.source, d)
		}
		return &stepError{step: n.id, prob: problem.GatewayTimeout(msg), err: err}
	case errors.Is(err, context.Canceled):
		return &stepError{step: n.id, prob: problem.Unavailable("the request was cancelled"), err: err}
	case errors.Is(err, connector.ErrTooLarge):
		return &stepError{step: n.id, prob: problem.BadGateway(fmt.Sprintf("step %q: the answer of source %q is too large", n.id, n.source)), err: err}
	case errors.Is(err, connector.ErrUnavailable):
		return &stepError{step: n.id, prob: problem.BadGateway(fmt.Sprintf("step %q: source %q is unreachable", n.id, n.source)), err: err}
	case errors.Is(err, connector.ErrBadResponse):
		return &stepError{step: n.id, prob: problem.BadGateway(fmt.Sprintf("step %q: source %q answered with a malformed response", n.id, n.source)), err: err}
	case errors.Is(err, connector.ErrBadRequest):
		return &stepError{step: n.id, prob: problem.BadGateway(fmt.Sprintf("step %q: the request to source %q could not be built", n.id, n.source)), err: err}
	}
	return &stepError{step: n.id, prob: problem.BadGateway(fmt.Sprintf("step %q: calling source %q failed", n.id, n.source)), err: err}
}

func (r *run) observe(ctx context.Context, n *node, req *connector.Request, subject string, resp *connector.Response, err error, d time.Duration) {
	var c *SourceCall
	if n.slot >= 0 {
		c = &r.obs[n.slot] // Observers keep nothing of it (see Observer)
	} else {
		c = new(SourceCall)
	}
	*c = SourceCall{Flow: r.plan.Name, Step: n.id, Source: n.source, Operation: n.op, Subject: subject,
		TraceID: req.TraceID, ParentTraceID: r.inv.TraceID, Duration: d, Err: err, Attempts: 1}
	if resp != nil {
		c.Status, c.Bytes, c.Attempts, c.SourceTraceID = resp.Status, len(resp.Body), max(resp.Attempts, 1), resp.Headers.Get(sourceTraceKey)
		c.Body = resp.Body
	}
	if err != nil {
		c.Attempts = errAttempts(err, c.Attempts)
	}
	r.rt.Observer.SourceCall(ctx, c)
}

// errAttempts is how many times the call that failed with err reached its
// source, or attempts if err does not tell (apart: its own function, so that
// a call without error allocates no *connector.Error for errors.As).
func errAttempts(err error, attempts int) int {
	var ce *connector.Error
	switch {
	case errors.As(err, &ce) && ce.Attempts > 0:
		return ce.Attempts
	case errors.Is(err, connector.ErrCircuitOpen):
		return 0 // rejected by the source's open circuit: it was not called
	}
	return attempts
}

// responseHeaders evaluates the flow's response headers.
func (r *run) responseHeaders(env *expr.Env) (map[string]string, error) {
	return r.fill(nil, r.plan.headers, env)
}

// fill evaluates progs into m (cleared, or made when nil); nil values are
// left out. It returns nil when there is nothing to evaluate.
func (r *run) fill(m map[string]string, progs []namedProg, env *expr.Env) (map[string]string, error) {
	if len(progs) == 0 {
		return nil, nil
	}
	out := m
	if out == nil {
		out = make(map[string]string, len(progs))
	} else {
		clear(out)
	}
	for _, np := range progs {
		v, err := np.prog.Run(env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", np.name, err)
		}
		if v != nil {
			out[np.name] = Text(v)
		}
	}
	return out, nil
}

// Text is the text a value takes in a request (path, query, header), a
// problem's detail and as a data subject: a string as it is, a number in
// plain decimal (68031401742, not 6.8031401742e+10), a bool, "" for nil,
// anything else as JSON. The gateway pseudonymises a flow's subject from
// the same text as a call step's, so both find the same person.
func Text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	b, err := appendJSON(nil, v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
