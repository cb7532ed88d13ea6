package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/expr"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/sources"
	"github.com/openfsb/fsb/engine/spec"
	"github.com/openfsb/fsb/engine/telemetry"
)

var traceparentRe = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`)

// upstream records the trace headers each path received.
type upstream struct {
	mu   sync.Mutex
	seen map[string]http.Header
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.seen[r.URL.Path] = r.Header.Clone()
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"name":"x"}`)
}

type upper struct{}

func (upper) Call(_ context.Context, _ string, in, _ []byte) ([]byte, error) { return in, nil }

// plan loads a flow calling an inside source, an outside one, and a
// transform, against the upstream.
func plan(t *testing.T, url string) (*flow.Plan, map[string]connector.Connector) {
	t.Helper()
	src := func(name string) string {
		return "kind: Source\nname: " + name + "\nprotocol: rest\nrest:\n  baseUrl: " + url + "/" + name + "\n  operations:\n    get: {method: GET, path: /x}\n---\n"
	}
	set, err := spec.Load(map[string][]byte{"f.yaml": []byte(src("inside") + src("outside") + `kind: Flow
name: both
version: 1.0.0
method: GET
path: /both/v1/get
steps:
  - id: a
    call: inside.get
  - id: b
    call: outside.get
output: {a: steps.a.body.name, b: steps.b.body.name}
`)})
	if err != nil {
		t.Fatal(err)
	}
	plans, err := flow.Compile(set)
	if err != nil {
		t.Fatal(err)
	}
	conns, err := sources.Open(set, sources.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sources.Close(conns) })
	return plans["both"], conns
}

func TestSpansAndPropagation(t *testing.T) {
	up := &upstream{seen: map[string]http.Header{}}
	srv := httptest.NewServer(up)
	defer srv.Close()
	p, conns := plan(t, srv.URL)
	exp := tracetest.NewInMemoryExporter()
	tr := telemetry.NewWithExporter(telemetry.Config{Propagate: []string{"inside"}}, exp)
	defer tr.Shutdown(context.Background())
	wrapped := map[string]connector.Connector{}
	for n, c := range conns {
		wrapped[n] = tr.Connector(n, c)
	}
	rt := &flow.Runtime{Conns: wrapped}
	const belgov = "0123456789abcdef0123456789abcdef"
	ctx, span := tr.StartFlow(context.Background(), "both", belgov, "")
	out := p.Serve(ctx, rt, &flow.Request{}, belgov, expr.Consumer{})
	span.End(out.Status)
	if out.Status != 200 {
		t.Fatalf("flow: %d %+v", out.Status, out.Problem)
	}
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want flow + 2 calls: %v", len(spans), names(spans))
	}
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	root, a, b := byName["flow both"], byName["call inside.get"], byName["call outside.get"]
	if !root.SpanContext.IsValid() || !a.SpanContext.IsValid() || !b.SpanContext.IsValid() {
		t.Fatalf("spans: %v", names(spans))
	}
	if a.Parent.SpanID() != root.SpanContext.SpanID() || b.Parent.SpanID() != root.SpanContext.SpanID() {
		t.Error("call spans are not children of the flow span")
	}
	if attr(root, "belgov.trace_id") != belgov || attr(root, "http.response.status_code") != "200" {
		t.Errorf("flow attributes %v", root.Attributes)
	}
	if id := attr(a, "belgov.trace_id"); len(id) != 32 || id == belgov {
		t.Errorf("a call span carries the call's own BelGov-Trace-Id, got %q", id)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	tp := up.seen["/inside/x"].Get("Traceparent")
	if !traceparentRe.MatchString(tp) || !strings.Contains(tp, a.SpanContext.TraceID().String()) || !strings.Contains(tp, a.SpanContext.SpanID().String()) {
		t.Errorf("inside source got traceparent %q, want the call span %s", tp, a.SpanContext.SpanID())
	}
	if got := up.seen["/outside/x"].Get("Traceparent"); got != "" {
		t.Errorf("a source outside the trust boundary got traceparent %q", got)
	}
	if up.seen["/outside/x"].Get("BelGov-Trace-Id") == "" {
		t.Error("BelGov-Trace-Id still goes to every source")
	}
}

func TestPluginSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr := telemetry.NewWithExporter(telemetry.Config{}, exp)
	pl := tr.Plugin("upper", upper{})
	ctx, span := tr.StartFlow(context.Background(), "f", "x", "")
	if _, err := pl.Call(ctx, "transform", []byte(`{}`), nil); err != nil {
		t.Fatal(err)
	}
	span.End(200)
	if n := names(exp.GetSpans()); n != "transform upper.transform,flow f" {
		t.Errorf("spans %q", n)
	}
}

// TestOff: with tracing off nothing is wrapped and no header is added.
func TestOff(t *testing.T) {
	tr, err := telemetry.New(context.Background(), telemetry.Config{})
	if err != nil || tr != nil {
		t.Fatalf("off: %v, %v", tr, err)
	}
	var c connector.Connector = fakeConn{}
	if tr.Connector("x", c) != c {
		t.Error("off wrapped a connector")
	}
	ctx, span := tr.StartFlow(context.Background(), "f", "x", "")
	span.End(200)
	if telemetry.Traceparent(ctx) != "" {
		t.Error("a traceparent without tracing")
	}
	if _, err := telemetry.New(context.Background(), telemetry.Config{Enabled: true}); err == nil {
		t.Error("enabled without an endpoint was accepted")
	}
}

// TestOTLPExport: spans reach an OTLP/HTTP endpoint.
func TestOTLPExport(t *testing.T) {
	got := make(chan string, 4)
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Path
		w.WriteHeader(200)
	}))
	defer col.Close()
	tr, err := telemetry.New(context.Background(), telemetry.Config{Enabled: true, Endpoint: col.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.StartFlow(context.Background(), "f", "x", "")
	span.End(200)
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := <-got; p != "/v1/traces" {
		t.Errorf("exported to %s", p)
	}
}

type fakeConn struct{}

var okResponse = &connector.Response{Status: 200}

func (fakeConn) Call(context.Context, *connector.Request) (*connector.Response, error) {
	return okResponse, nil
}
func (fakeConn) Check(context.Context) error { return nil }
func (fakeConn) Close() error                { return nil }

func names(spans tracetest.SpanStubs) string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return strings.Join(out, ",")
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

var _ sdktrace.SpanExporter = (*tracetest.InMemoryExporter)(nil)

// TestFlowSpanTraceIn: the flow span carries the consumer's BelGov-Trace-Id
// as belgov.trace_in when one was sent, and no such attribute otherwise.
func TestFlowSpanTraceIn(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr := telemetry.NewWithExporter(telemetry.Config{}, exp)
	defer tr.Shutdown(context.Background())
	const ours, theirs = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	for _, in := range []string{theirs, ""} {
		exp.Reset()
		_, span := tr.StartFlow(context.Background(), "f", ours, in)
		span.End(200)
		spans := exp.GetSpans()
		if len(spans) != 1 {
			t.Fatalf("%d spans", len(spans))
		}
		if got := attr(spans[0], "belgov.trace_in"); got != in || attr(spans[0], "belgov.trace_id") != ours {
			t.Errorf("trace in %q: belgov.trace_in %q, attributes %v", in, got, spans[0].Attributes)
		}
	}
}
