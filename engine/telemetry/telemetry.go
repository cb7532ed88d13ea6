// Package telemetry traces consumer calls with OpenTelemetry: a span per
// flow, a child span per source call and per transform, W3C traceparent
// propagation to the sources inside the trust boundary, and the Belgif
// BelGov-Trace-Id of each call as a span attribute so that a trace and the
// audit trail find each other. Spans leave by OTLP/HTTP.
//
// Tracing is off by default, and off costs nothing: New returns a nil
// *Tracer, whose methods return their input unchanged. The package knows
// flows and sources only through flow.Plugin and connector.Connector, and
// must not know about the gateway's routes or the audit store.
package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/flow"
	fsbtrace "github.com/openfsb/fsb/engine/trace"
)

// Config configures tracing; the zero value is off.
type Config struct {
	Enabled bool
	// Endpoint is the OTLP/HTTP collector: a URL (http://collector:4318,
	// the path defaults to /v1/traces) or host:port (HTTPS unless Insecure).
	Endpoint string
	Insecure bool
	// Headers are sent with every export (e.g. a collector's API key).
	Headers map[string]string
	// SampleRatio is the share of calls traced, 0 < r ≤ 1 (default 1).
	SampleRatio float64
	// ServiceName is the service.name resource attribute (default openfsb).
	ServiceName string
	// Propagate lists the sources inside the trust boundary: only they
	// receive a traceparent header. Sources outside never learn our trace
	// ids beyond the BelGov-Trace-Id every source gets.
	Propagate []string
}

// Attribute keys OpenFSB sets on its spans.
const (
	AttrBelGovTraceID = attribute.Key("belgov.trace_id")
	AttrBelGovTraceIn = attribute.Key("belgov.trace_in") // the consumer's BelGov-Trace-Id
	AttrFlow          = attribute.Key("fsb.flow")
	AttrSource        = attribute.Key("fsb.source")
	AttrOperation     = attribute.Key("fsb.operation")
	AttrPlugin        = attribute.Key("fsb.plugin")
	AttrStep          = attribute.Key("fsb.step")
	AttrStatus        = attribute.Key("http.response.status_code")
)

// Tracer makes OpenFSB's spans. A nil *Tracer is tracing off.
type Tracer struct {
	tp        *sdktrace.TracerProvider
	tr        trace.Tracer
	propagate map[string]bool
}

// New starts tracing as cfg says; with tracing off it returns nil, nil.
func New(ctx context.Context, cfg Config) (*Tracer, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	if cfg.Endpoint == "" {
		return nil, fmt.Errorf("tracing: an OTLP endpoint is required when tracing is enabled")
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithTimeout(10 * time.Second)}
	if strings.Contains(cfg.Endpoint, "://") {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("tracing: endpoint: %w", err)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
	} else {
		opts = append(opts, otlptracehttp.WithEndpoint(cfg.Endpoint))
		if cfg.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
	}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	return newTracer(cfg, sdktrace.WithBatcher(exp)), nil
}

// NewWithExporter traces into exp, synchronously (tests, or a custom
// exporter); cfg.Enabled is not looked at.
func NewWithExporter(cfg Config, exp sdktrace.SpanExporter) *Tracer {
	return newTracer(cfg, sdktrace.WithSyncer(exp))
}

func newTracer(cfg Config, export sdktrace.TracerProviderOption) *Tracer {
	ratio := cfg.SampleRatio
	if ratio <= 0 || ratio > 1 {
		ratio = 1
	}
	name := cfg.ServiceName
	if name == "" {
		name = "openfsb"
	}
	tp := sdktrace.NewTracerProvider(export,
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))))
	t := &Tracer{tp: tp, tr: tp.Tracer("github.com/openfsb/fsb"), propagate: map[string]bool{}}
	for _, s := range cfg.Propagate {
		t.propagate[s] = true
	}
	return t
}

// Shutdown exports what is buffered and stops; nil-safe.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// Span is a flow's span; a nil *Span does nothing.
type Span struct{ s trace.Span }

// StartFlow starts the span of one consumer call of a flow. belgovTraceID
// is the call's BelGov-Trace-Id (the answer's header), recorded as the
// belgov.trace_id attribute; traceIn, when not empty, is the one the
// consumer sent (the access log's trace_in), recorded as belgov.trace_in
// — the caller passes only a valid id that is no national number. Pass the
// returned context to Plan.Serve (or Run) so that source calls and
// transforms become its children. A trace is never continued from a
// consumer's traceparent: consumers are outside the trust boundary.
func (t *Tracer) StartFlow(ctx context.Context, flowName, belgovTraceID, traceIn string) (context.Context, *Span) {
	if t == nil {
		return ctx, nil
	}
	attrs := []attribute.KeyValue{AttrFlow.String(flowName), AttrBelGovTraceID.String(belgovTraceID)}
	if traceIn != "" {
		attrs = append(attrs, AttrBelGovTraceIn.String(traceIn))
	}
	ctx, s := t.tr.Start(ctx, "flow "+flowName, trace.WithSpanKind(trace.SpanKindServer), trace.WithNewRoot(),
		trace.WithAttributes(attrs...))
	return ctx, &Span{s}
}

// End ends the flow's span with the answer's HTTP status.
func (s *Span) End(status int) {
	if s == nil {
		return
	}
	s.s.SetAttributes(AttrStatus.Int(status))
	if status >= 500 {
		s.s.SetStatus(codes.Error, fmt.Sprintf("status %d", status))
	}
	s.s.End()
}

// Connector wraps a source's connector so that each call is a client span,
// child of the flow's, carrying the call's BelGov-Trace-Id; a source in
// Config.Propagate also gets the span as a traceparent header. With tracing
// off it returns c itself.
func (t *Tracer) Connector(source string, c connector.Connector) connector.Connector {
	if t == nil {
		return c
	}
	return &tracedConn{Connector: c, t: t, source: source, propagate: t.propagate[source]}
}

type tracedConn struct {
	connector.Connector
	t         *Tracer
	source    string
	propagate bool
}

func (c *tracedConn) Call(ctx context.Context, req *connector.Request) (*connector.Response, error) {
	if !trace.SpanContextFromContext(ctx).IsValid() { // not inside a traced flow (or not sampled in)
		return c.Connector.Call(ctx, req)
	}
	ctx, s := c.t.tr.Start(ctx, "call "+c.source+"."+req.Operation, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(AttrSource.String(c.source), AttrOperation.String(req.Operation), AttrBelGovTraceID.String(req.TraceID)))
	defer s.End()
	if c.propagate && s.SpanContext().IsSampled() {
		r := *req // the executor's request is pooled: add the header to a copy
		r.Headers = make(map[string]string, len(req.Headers)+2)
		for k, v := range req.Headers {
			r.Headers[k] = v
		}
		InjectHeaders(ctx, func(k, v string) { r.Headers[k] = v })
		req = &r
	}
	resp, err := c.Connector.Call(ctx, req)
	switch {
	case err != nil:
		s.SetStatus(codes.Error, err.Error()) // connector errors name no host (connector.Error)
	case resp != nil:
		s.SetAttributes(AttrStatus.Int(resp.Status))
		if resp.Status >= 500 {
			s.SetStatus(codes.Error, fmt.Sprintf("status %d", resp.Status))
		}
	}
	return resp, err
}

// Plugin wraps a plugin so that each call is a span named after the step
// (the executor puts the step in the context, engine/trace.Call).
func (t *Tracer) Plugin(name string, p flow.Plugin) flow.Plugin {
	if t == nil {
		return p
	}
	return &tracedPlugin{Plugin: p, t: t, name: name}
}

type tracedPlugin struct {
	flow.Plugin
	t    *Tracer
	name string
}

func (p *tracedPlugin) Call(ctx context.Context, op string, input, config []byte) ([]byte, error) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return p.Plugin.Call(ctx, op, input, config)
	}
	attrs := []attribute.KeyValue{AttrPlugin.String(p.name), AttrOperation.String(op)}
	if c := fsbtrace.CallOf(ctx); c.Step != "" {
		attrs = append(attrs, AttrStep.String(c.Step))
	}
	_, s := p.t.tr.Start(ctx, "transform "+p.name+"."+op, trace.WithAttributes(attrs...))
	out, err := p.Plugin.Call(ctx, op, input, config)
	if err != nil {
		s.SetStatus(codes.Error, err.Error())
	}
	s.End()
	return out, err
}

// Close passes through, so that engine/reload can close a wrapped module.
func (p *tracedPlugin) Close(ctx context.Context) error {
	if c, ok := p.Plugin.(interface{ Close(context.Context) error }); ok {
		return c.Close(ctx)
	}
	return nil
}

// Traceparent returns the W3C traceparent header value of the span in ctx,
// or "" when there is none: for a connector that builds its own requests.
func Traceparent(ctx context.Context) string {
	var v string
	InjectHeaders(ctx, func(k, val string) {
		if k == "traceparent" {
			v = val
		}
	})
	return v
}

// InjectHeaders calls set with the W3C trace context headers (traceparent,
// and tracestate when there is one) of the span in ctx; nothing without one.
func InjectHeaders(ctx context.Context, set func(name, value string)) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagation.TraceContext{}.Inject(ctx, setter(set))
}

type setter func(name, value string)

func (s setter) Get(string) string { return "" }
func (s setter) Set(k, v string)   { s(k, v) }
func (s setter) Keys() []string    { return nil }

var _ propagation.TextMapCarrier = setter(nil)
