// Package gateway is the consumer-facing HTTP server (fiber v2): one route
// per flow, /health, and problem+json for every error. It is wiring only:
// validation and execution belong to the flow package, transports to the
// connectors. It must not hold business rules.
package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/textproto"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/access"
	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/catalog"
	"github.com/openfsb/fsb/engine/expr"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/problem"
	"github.com/openfsb/fsb/engine/telemetry"
	"github.com/openfsb/fsb/engine/trace"
)

// Config is what the gateway serves.
type Config struct {
	Plans   map[string]*flow.Plan
	Runtime *flow.Runtime
	Log     *slog.Logger
	// HealthTTL is how long a /health answer is cached (default 5s).
	HealthTTL time.Duration
	// TrustedProxies may set X-Forwarded-For; nobody else can (NOTES.md).
	TrustedProxies []string

	// Access decides every consumer call (engine/access) and enables the
	// token endpoint; nil lets every caller through (development, the demo).
	Access *access.Registry
	// Environment is the environment of this listener's endpoints, for
	// access decisions: production (the default) or test (the endpoints
	// the connection test runs against).
	Environment access.Environment
	// Audit records every consumer call before it matters (engine/audit);
	// nil records nothing. With Access too, consumers read their own
	// records under /audit/v1.
	Audit *audit.Store
	// Catalog is the service catalogue served on this listener
	// (catalog.go); nil builds one from Plans alone, without the source
	// titles and test examples only the flow documents have.
	Catalog *catalog.Catalog
	// Metrics counts every answered consumer call (engine/metrics); nil
	// counts nothing.
	Metrics RequestMetrics
	// Tracer traces every consumer call of a flow (engine/telemetry): a
	// span per call around access, audit and the flow, whose children are
	// the source calls and transforms of connectors and plugins wrapped by
	// the same Tracer. nil (tracing off) costs one nil check per call.
	Tracer *telemetry.Tracer
}

// RequestMetrics counts answered consumer calls: flow is the flow's name,
// org the consumer's organisation ("" without one), d the time to answer;
// Refusal counts a call access refused, at the step of its decision.
// *metrics.Metrics implements it.
type RequestMetrics interface {
	Request(flow, org string, status int, d time.Duration)
	Refusal(flow, org, step string)
}

// Gateway serves the consumer API.
type Gateway struct {
	app     *fiber.App
	cfg     Config
	log     *slog.Logger
	health  *health
	proxies proxySet
	rt      *flow.Runtime // cfg.Runtime, observed for the audit trail when it is on
	routes  []route       // every flow's, for answers that reach none
}

// New builds the fiber app for the given plans.
func New(cfg Config) *Gateway {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.HealthTTL == 0 {
		cfg.HealthTTL = 5 * time.Second
	}
	limit := int64(flow.DefaultMaxBodySize)
	for _, p := range cfg.Plans {
		limit = max(limit, p.MaxBodySize)
	}
	if cfg.Environment == "" {
		cfg.Environment = access.Production
	}
	g := &Gateway{cfg: cfg, log: cfg.Log, health: newHealth(cfg.Runtime.Conns, cfg.HealthTTL),
		proxies: parseProxies(cfg.TrustedProxies), rt: cfg.Runtime}
	if cfg.Audit != nil {
		g.rt = auditedRuntime(cfg.Runtime)
	}
	fc := fiber.Config{
		AppName:                 "openfsb",
		DisableStartupMessage:   true,
		BodyLimit:               int(limit),
		ReadTimeout:             30 * time.Second,
		WriteTimeout:            30 * time.Second,
		IdleTimeout:             120 * time.Second,
		ErrorHandler:            g.errorHandler,
		EnableTrustedProxyCheck: true,
		EnableIPValidation:      true, // a forwarded address must parse as an IP
		TrustedProxies:          cfg.TrustedProxies,
	}
	if len(cfg.TrustedProxies) > 0 {
		fc.ProxyHeader = fiber.HeaderXForwardedFor
	}
	app := fiber.New(fc)
	app.Use(recover.New())
	app.Get("/health", g.handleHealth)
	g.mountCatalog(app) // catalog.go
	if cfg.Access != nil {
		app.Post(TokenPath, g.handleToken)
		if cfg.Audit != nil {
			app.Get(ConsumerAuditPath+"/records", g.handleConsumerRecords)
			app.Get(ConsumerAuditPath+"/records/:seq/proof", g.handleConsumerProof)
		}
	}
	names := make([]string, 0, len(cfg.Plans))
	for n := range cfg.Plans {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := cfg.Plans[n]
		app.Add(p.Method, fiberPath(p.Path), g.handler(p))
	}
	g.routes = make([]route, 0, len(names))
	for _, n := range names {
		g.routes = append(g.routes, route{name: n, method: cfg.Plans[n].Method, re: pathPattern(cfg.Plans[n].Path)})
	}
	app.Use(func(c *fiber.Ctx) error {
		_, allow := g.routeOf(c.Method(), c.Path())
		if len(allow) == 0 {
			return fiber.ErrNotFound
		}
		c.Set(fiber.HeaderAllow, strings.Join(allow, ", "))
		return fiber.ErrMethodNotAllowed
	})
	g.app = app
	return g
}

// routeOf finds the flow served at method and path ("" for none) and the
// methods of the flows served at path (for a 405's Allow). Only answers
// that never reach a flow use it: it tries every route's pattern.
func (g *Gateway) routeOf(method, path string) (flowName string, allow []string) {
	only := ""
	for _, r := range g.routes {
		if r.re.MatchString(path) {
			allow = append(allow, r.method)
			only = r.name
			if r.method == method {
				flowName = r.name
			}
		}
	}
	if flowName == "" && len(allow) == 1 { // a 405, named after the only flow served at the path
		flowName = only
	}
	return flowName, allow
}

// App returns the fiber app (for Listen, Test, Shutdown).
func (g *Gateway) App() *fiber.App { return g.app }

// route is a served path and its method, for 405 answers.
type route struct {
	name   string // the flow's
	method string
	re     *regexp.Regexp
}

// pathPattern turns /a/v1/items/{id} into a regexp matching concrete paths.
func pathPattern(p string) *regexp.Regexp {
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if strings.HasPrefix(part, "{") {
			parts[i] = "[^/]+"
		} else {
			parts[i] = regexp.QuoteMeta(part)
		}
	}
	return regexp.MustCompile("^" + strings.Join(parts, "/") + "$")
}

// fiberPath turns /a/v1/items/{id} into /a/v1/items/:id.
func fiberPath(p string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			b.WriteString(p)
			return b.String()
		}
		j := strings.IndexByte(p[i:], '}')
		b.WriteString(p[:i])
		b.WriteByte(':')
		b.WriteString(p[i+1 : i+j])
		p = p[i+j+1:]
	}
}

func (g *Gateway) handler(p *flow.Plan) fiber.Handler {
	params := pathParams(p.Path)
	if g.cfg.Access != nil || g.cfg.Audit != nil {
		return g.traced(p, g.guarded(p, params))
	}
	return g.traced(p, g.plain(p, params))
}

// traced puts the flow's span around h: with tracing on, it sets the
// call's BelGov-Trace-Id (which newTrace then keeps) and starts the span
// with it, hands its context to h through c.UserContext(), and ends it with
// the answer's status. A consumer's traceparent is never continued
// (telemetry.StartFlow starts a new root: consumers are outside the trust
// boundary); the consumer's BelGov-Trace-Id, when valid, is the span's
// belgov.trace_in. Without a tracer, h itself.
func (g *Gateway) traced(p *flow.Plan, h fiber.Handler) fiber.Handler {
	tr := g.cfg.Tracer
	if tr == nil {
		return h
	}
	return func(c *fiber.Ctx) (err error) {
		ctx, span := tr.StartFlow(context.Background(), p.Name, g.freshTrace(c), traceIn(c))
		c.SetUserContext(ctx)
		ended := false
		defer func() {
			if !ended { // h panicked: the recover middleware answers 500
				span.End(fiber.StatusInternalServerError)
			}
		}()
		err = h(c)
		status := c.Response().StatusCode()
		var fe *fiber.Error
		switch {
		case errors.As(err, &fe):
			status = fe.Code
		case err != nil:
			status = fiber.StatusInternalServerError
		}
		ended = true
		span.End(status)
		return err
	}
}

// plain serves a flow without access control or audit trail.
func (g *Gateway) plain(p *flow.Plan, params []string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		logged := g.log.Enabled(context.Background(), slog.LevelInfo)
		var start time.Time
		if logged || g.cfg.Metrics != nil {
			start = time.Now()
		}
		id := g.newTrace(c)
		req, prob := g.readRequest(c, p, params)
		if prob != nil {
			if logged {
				g.accessLog(c, p.Name, id, "", prob.Status, start)
			}
			if g.cfg.Metrics != nil {
				g.cfg.Metrics.Request(p.Name, "", prob.Status, time.Since(start))
			}
			return g.problem(c, prob)
		}
		ctx := context.Background()
		if g.cfg.Tracer != nil {
			ctx = c.UserContext() // the flow's span (traced)
		}
		out := p.Serve(ctx, g.cfg.Runtime, req, id, expr.Consumer{})
		if logged {
			g.accessLog(c, p.Name, id, "", out.Status, start)
		}
		if g.cfg.Metrics != nil {
			g.cfg.Metrics.Request(p.Name, "", out.Status, time.Since(start))
		}
		if out.Problem != nil {
			return g.problem(c, out.Problem)
		}
		for k, v := range out.Headers {
			c.Set(k, v)
		}
		c.Status(out.Status)
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		c.Response().SetBody(out.Body) // a copy: the buffer goes back to the pool
		out.Release()
		return nil
	}
}

// accessLog writes the access-log line of an answered call: the flow, the
// status, the time to answer, the BelGov-Trace-Id answered and the one
// received (only a valid one that is not a national register number:
// anything else is not logged, it could be personal data) and the consumer's organisation when known. Never a body,
// a header value or a credential.
func (g *Gateway) accessLog(c *fiber.Ctx, flowName, traceOut, org string, status int, start time.Time) {
	g.log.LogAttrs(context.Background(), slog.LevelInfo, "request", g.accessAttrs(c, flowName, traceOut, org, status, start)...)
}

func (g *Gateway) accessAttrs(c *fiber.Ctx, flowName, traceOut, org string, status int, start time.Time) []slog.Attr {
	attrs := make([]slog.Attr, 0, 6)
	attrs = append(attrs, slog.String("flow", flowName), slog.String("trace", traceOut))
	if in := traceIn(c); in != "" {
		attrs = append(attrs, slog.String("trace_in", in))
	}
	attrs = append(attrs, slog.Int("status", status), slog.Duration("duration", time.Since(start)))
	if org != "" {
		attrs = append(attrs, slog.String("org", org))
	}
	return attrs
}

// readRequest reads a consumer request off the wire for the flow: path and
// query parameters, the headers the flow reads, the body within its limit.
func (g *Gateway) readRequest(c *fiber.Ctx, p *flow.Plan, params []string) (*flow.Request, *problem.Problem) {
	req := &flow.Request{}
	if len(params) > 0 {
		req.Path = make([]flow.Param, 0, len(params))
		for _, name := range params {
			v, err := url.PathUnescape(c.Params(name))
			if err != nil {
				return nil, problem.BadRequest("malformed path", problem.NewIssue(problem.SchemaViolation, "path", name, nil, "not a valid URL path segment"))
			}
			req.Path = append(req.Path, flow.Param{Name: name, Value: strings.Clone(v)})
		}
	}
	if args := c.Context().QueryArgs(); args.Len() > 0 {
		req.Query = make([]flow.Param, 0, args.Len())
		args.VisitAll(func(k, v []byte) {
			req.Query = append(req.Query, flow.Param{Name: string(k), Value: string(v)})
		})
	}
	if p.ReadsHeaders {
		req.Headers = map[string]string{}
		c.Request().Header.VisitAll(func(k, v []byte) {
			if name := string(k); !credentialHeaders[name] {
				req.Headers[name] = string(v)
			}
		})
	}
	// Not c.Body(): fiber inflates a gzip/br/deflate body there without
	// any limit (a decompression bomb). Inflate within the flow's limit.
	body := c.Request().Body()
	if enc := c.Get(fiber.HeaderContentEncoding); enc != "" && !strings.EqualFold(enc, "identity") {
		b, err := c.Request().BodyUncompressedWithLimit(int(p.MaxBodySize))
		switch {
		case errors.Is(err, fasthttp.ErrBodyTooLarge):
			return nil, problem.TooLarge("the request body exceeds the limit of this service once decompressed")
		case errors.Is(err, fasthttp.ErrContentEncodingUnsupported):
			return nil, problem.UnsupportedMedia("use Content-Encoding gzip, deflate, br or zstd, or none")
		case err != nil:
			return nil, problem.BadRequest("the request body does not match its Content-Encoding")
		}
		body = b
	}
	if int64(len(body)) > p.MaxBodySize {
		return nil, problem.TooLarge("the request body exceeds the limit of this service")
	}
	if len(body) > 0 && !isJSON(c.Get(fiber.HeaderContentType)) {
		return nil, problem.UnsupportedMedia("send the request body as application/json")
	}
	req.Body = body
	return req, nil
}

// credentialHeaders never reach flow expressions.
var credentialHeaders = map[string]bool{"Authorization": true, "Cookie": true, "Proxy-Authorization": true}

func pathParams(p string) []string {
	var out []string
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(p[i:], '}')
		out = append(out, p[i+1:i+j])
		p = p[i+j+1:]
	}
}

func isJSON(ct string) bool {
	ct, _, _ = strings.Cut(ct, ";")
	ct = strings.TrimSpace(strings.ToLower(ct))
	return ct == "application/json" || strings.HasSuffix(ct, "+json")
}

// traceHeaders sets this response's BelGov-Trace-Id (once) and echoes a
// valid caller id as BelGov-Related-Trace-Id; it returns the response's id.
func (g *Gateway) traceHeaders(c *fiber.Ctx) string {
	if id := c.Response().Header.PeekBytes(traceKey); len(id) > 0 {
		return string(id)
	}
	return g.freshTrace(c)
}

// newTrace returns the BelGov-Trace-Id of a flow's answer: the one traced
// set already (the flow's span carries it), else a fresh one, set with the
// related one.
func (g *Gateway) newTrace(c *fiber.Ctx) string {
	if g.cfg.Tracer != nil {
		return g.traceHeaders(c)
	}
	return g.freshTrace(c)
}

// traceIn is the BelGov-Trace-Id the consumer sent, for the access log and
// the flow's span: only a valid one that is not a national register number
// (anything else could be personal data); "" otherwise.
func traceIn(c *fiber.Ctx) string {
	if in := c.Get(trace.Header); in != "" && trace.Valid(in) && !expr.ValidSSIN(in) {
		return in
	}
	return ""
}

// freshTrace sets a fresh BelGov-Trace-Id and the related one, and returns
// the fresh id; for a response that has none yet.
func (g *Gateway) freshTrace(c *fiber.Ctx) string {
	id := trace.NewID()
	c.Response().Header.SetCanonical(traceKey, []byte(id))
	if rel := c.Request().Header.PeekBytes(traceKey); len(rel) > 0 && trace.Valid(string(rel)) {
		c.Response().Header.SetCanonical(relatedKey, rel)
	}
	return id
}

// Canonical header keys (SetCanonical and PeekBytes skip re-normalising).
var (
	traceKey   = []byte(textproto.CanonicalMIMEHeaderKey(trace.Header))
	relatedKey = []byte(textproto.CanonicalMIMEHeaderKey(trace.RelatedHeader))
)

func (g *Gateway) problem(c *fiber.Ctx, p *problem.Problem) error {
	g.traceHeaders(c)
	return sendProblem(c, p)
}

// sendProblem answers p as problem+json, its instance the request's path
// unless set, with Retry-After when p has one.
func sendProblem(c *fiber.Ctx, p *problem.Problem) error {
	if p.Instance == "" {
		p.Instance = strings.Clone(c.Path())
	}
	if p.RetryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, itoa(p.RetryAfter))
	}
	c.Status(p.Status)
	c.Set(fiber.HeaderContentType, problem.ContentType)
	return c.Send(p.JSON())
}

// errorHandler turns every error fiber raises (no route, body too large, a
// recovered panic) into problem+json without internals.
//
// Each is counted (Config.Metrics) as a request of the flow served at its
// method and path, or of none ("" = unmatched): an unknown path (404), a
// method the path does not serve (405, named after the flow when only one
// is served there), and what the server refuses before any route (413 body
// too large, 400 unreadable, 431, 408). The flows' own answers are counted
// where they are made and never come here.
func (g *Gateway) errorHandler(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	code := fiber.StatusInternalServerError
	if errors.As(err, &fe) {
		code = fe.Code
	}
	if g.cfg.Metrics != nil {
		name, _ := g.routeOf(c.Method(), c.Path())
		g.cfg.Metrics.Request(name, "", code, 0)
	}
	var p *problem.Problem
	switch code {
	case fiber.StatusNotFound:
		p = problem.NotFound("no service at this path")
	case fiber.StatusMethodNotAllowed:
		p = &problem.Problem{Type: "about:blank", Title: "Method Not Allowed", Status: 405, Detail: "this service does not accept that method"}
	case fiber.StatusRequestEntityTooLarge:
		p = problem.TooLarge("the request body exceeds the limit")
	case fiber.StatusBadRequest:
		p = problem.BadRequest("the request could not be read")
	default:
		if code < 500 {
			p = &problem.Problem{Type: "about:blank", Title: fe.Message, Status: code}
		} else {
			g.log.Error("internal error", "path", c.Path(), "err", err)
			p = problem.Internal("an internal error occurred")
		}
	}
	return g.problem(c, p)
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for n >= 10 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	i--
	b[i] = byte('0' + n)
	return string(b[i:])
}
