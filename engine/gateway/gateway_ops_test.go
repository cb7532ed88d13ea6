package gateway_test

// Operations of the plain path (engine/gateway/gateway.go): the flow's span
// and its children, an open circuit's answer, and the metrics of answers
// that never reach a flow.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/openfsb/fsb/engine/breaker"
	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/gateway"
	"github.com/openfsb/fsb/engine/metrics"
	"github.com/openfsb/fsb/engine/sources"
	"github.com/openfsb/fsb/engine/telemetry"
)

// opsFlows: a flow calling a source inside the trust boundary and one
// outside; a POST flow with a typed body; a flow whose step accepts a 503.
const opsFlows = `kind: Source
name: inside
protocol: rest
rest:
  baseUrl: ${URL}/inside
  operations:
    get: {method: GET, path: /x}
---
kind: Source
name: outside
protocol: rest
rest:
  baseUrl: ${URL}/outside
  operations:
    get: {method: GET, path: /x}
---
kind: Flow
name: both
version: 1.0.0
method: GET
path: /both/v1/get
steps:
  - id: a
    call: inside.get
  - id: b
    call: outside.get
    acceptStatus: [503]
output: {a: steps.a.body.name, b: steps.b.status}
---
kind: Flow
name: submit
version: 1.0.0
method: POST
path: /submit/v1/items
input:
  body:
    type: object
    required: [n]
    properties: {n: {type: integer}}
steps: []
output: '{"n": input.body.n}'
`

// traceUpstream records the headers each source path received.
type traceUpstream struct {
	mu      sync.Mutex
	seen    map[string]http.Header
	failing bool // answer /outside with a connection reset
}

func (u *traceUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.seen[r.URL.Path] = r.Header.Clone()
	failing := u.failing
	u.mu.Unlock()
	if failing && strings.HasPrefix(r.URL.Path, "/outside") {
		panic(http.ErrAbortHandler) // the connection drops: unreachable for the breaker
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"name":"x"}`)
}

func (u *traceUpstream) headers(path string) http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen[path]
}

type opsGateway struct {
	base   string
	client *http.Client
	up     *traceUpstream
	m      *metrics.Metrics
	exp    *tracetest.InMemoryExporter
	brk    *breaker.Breaker
}

// newOps builds a gateway with metrics, tracing (the inside source in the
// trust boundary) and a breaker in front of the outside source.
func newOps(t *testing.T, with ...func(*gateway.Config)) *opsGateway {
	t.Helper()
	o := &opsGateway{up: &traceUpstream{seen: map[string]http.Header{}}, m: metrics.New(metrics.Options{}), exp: tracetest.NewInMemoryExporter()}
	srv := httptest.NewServer(o.up)
	t.Cleanup(srv.Close)
	set, plans := loadPlans(t, expand(opsFlows, map[string]string{"URL": srv.URL}))
	conns, err := sources.Open(set, sources.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sources.Close(conns) })
	tr := telemetry.NewWithExporter(telemetry.Config{Propagate: []string{"inside"}}, o.exp)
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	o.brk = breaker.Wrap("outside", conns["outside"], breaker.Settings{ConsecutiveFailures: 1, OpenFor: time.Minute},
		breaker.Hooks{StateChange: o.m.CircuitState, Rejected: o.m.CircuitRejected})
	wrapped := map[string]connector.Connector{"inside": tr.Connector("inside", conns["inside"]), "outside": tr.Connector("outside", o.brk)}
	cfg := gateway.Config{Plans: plans, Runtime: &flow.Runtime{Conns: wrapped, Observer: o.m}, Metrics: o.m, Tracer: tr}
	for _, f := range with {
		f(&cfg)
	}
	gw := gateway.New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gw.App().Listener(ln) }()
	ht := &http.Transport{DisableCompression: true}
	o.base, o.client = "http://"+ln.Addr().String(), &http.Client{Transport: ht, Timeout: clientCallTimeout}
	t.Cleanup(func() {
		ht.CloseIdleConnections()
		if err := gw.App().ShutdownWithTimeout(5 * time.Second); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		_ = ln.Close()
		if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return o
}

// do sends a request; hdr is name, value pairs. It returns the answer
// and its body.
func (o *opsGateway) do(t *testing.T, method, path string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, o.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentJSON)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := o.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return resp, b
}

// TestTracedCall: a call is a flow span carrying the answer's
// BelGov-Trace-Id, with a child span per source call; the source inside
// the trust boundary receives the call span as traceparent, the other
// none; the consumer's own traceparent is not continued.
func TestTracedCall(t *testing.T) {
	o := newOps(t)
	const consumerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	resp, _ := o.do(t, "GET", "/both/v1/get", nil, "traceparent", "00-"+consumerTrace+"-00f067aa0ba902b7-01")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	belgov := resp.Header.Get(headerTrace)
	spans := o.exp.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	root, a, b := byName["flow both"], byName["call inside.get"], byName["call outside.get"]
	if len(spans) != 3 || !root.SpanContext.IsValid() || !a.SpanContext.IsValid() || !b.SpanContext.IsValid() {
		t.Fatalf("%d spans: %v", len(spans), byName)
	}
	if got := spanAttr(root, "belgov.trace_id"); got != belgov || !traceIDRe.MatchString(belgov) {
		t.Errorf("flow span belgov.trace_id %q, answer's BelGov-Trace-Id %q", got, belgov)
	}
	if spanAttr(root, "http.response.status_code") != "200" {
		t.Errorf("flow span attributes %v", root.Attributes)
	}
	if a.Parent.SpanID() != root.SpanContext.SpanID() || b.Parent.SpanID() != root.SpanContext.SpanID() ||
		a.SpanContext.TraceID() != root.SpanContext.TraceID() {
		t.Error("the source calls' spans are not children of the flow's")
	}
	if root.Parent.IsValid() || root.SpanContext.TraceID().String() == consumerTrace {
		t.Errorf("the consumer's traceparent was continued: parent %v, trace %s", root.Parent, root.SpanContext.TraceID())
	}
	tp := o.up.headers("/inside/x").Get("Traceparent")
	if want := "00-" + a.SpanContext.TraceID().String() + "-" + a.SpanContext.SpanID().String() + "-01"; tp != want {
		t.Errorf("inside source got traceparent %q, want %q", tp, want)
	}
	if tp := o.up.headers("/outside/x").Get("Traceparent"); tp != "" {
		t.Errorf("a source outside the trust boundary got traceparent %q", tp)
	}

	if got := spanAttr(root, "belgov.trace_in"); got != "" {
		t.Errorf("belgov.trace_in %q without a consumer BelGov-Trace-Id", got)
	}

	// The consumer's BelGov-Trace-Id is the flow span's belgov.trace_in,
	// unless it could be personal data (a national register number).
	for in, want := range map[string]string{"consumer-trace-0001": "consumer-trace-0001", "85073003328": ""} {
		o.exp.Reset()
		o.do(t, "GET", "/both/v1/get", nil, headerTrace, in)
		var got string
		for _, s := range o.exp.GetSpans() {
			if s.Name == "flow both" {
				got = spanAttr(s, "belgov.trace_in")
			}
		}
		if got != want {
			t.Errorf("BelGov-Trace-Id %q: belgov.trace_in %q, want %q", in, got, want)
		}
	}

	// Answers that never reach a flow have no span; a flow's problem ends
	// its span with the problem's status.
	o.exp.Reset()
	o.do(t, "GET", "/nothing/here", nil)
	if n := len(o.exp.GetSpans()); n != 0 {
		t.Errorf("%d spans for an unknown route", n)
	}
	o.do(t, "POST", "/submit/v1/items", []byte(`{"n":"x"}`))
	if s := o.exp.GetSpans(); len(s) != 1 || spanAttr(s[0], "http.response.status_code") != "400" {
		t.Errorf("spans of a refused input: %v", s)
	}
}

// TestCircuitOpenAnswer: once the outside source's circuit is open, the
// call is answered serviceUnavailable with Retry-After, naming the step
// and the source, although the step accepts a 503; the source is not
// called; metrics count the rejection apart from source answers.
func TestCircuitOpenAnswer(t *testing.T) {
	o := newOps(t)
	o.up.mu.Lock()
	o.up.failing = true
	o.up.mu.Unlock()
	if resp, _ := o.do(t, "GET", "/both/v1/get", nil); resp.StatusCode != 502 {
		t.Fatalf("unreachable source: %d", resp.StatusCode)
	}
	if o.brk.State() != breaker.Open {
		t.Fatalf("circuit %s", o.brk.State())
	}
	resp, body := o.do(t, "GET", "/both/v1/get", nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), contentProblem) {
		t.Fatalf("open circuit: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "60" && ra != "59" {
		t.Errorf("Retry-After %q, want the minute left", ra)
	}
	doc := string(body)
	for _, want := range []string{typeUnavailable, `"step":"b"`, `source \"outside\"`} {
		if !strings.Contains(doc, want) {
			t.Errorf("problem lacks %s: %s", want, doc)
		}
	}
	if strings.Contains(doc, "127.0.0.1") {
		t.Errorf("problem names a host: %s", doc)
	}
	got := string(o.m.Gather())
	for _, series := range []string{
		`fsb_source_calls_total{operation="get",outcome="unreachable",source="outside"} 1`,
		`fsb_source_calls_total{operation="get",outcome="circuit_open",source="outside"} 1`,
		`fsb_circuit_rejected_total{source="outside"} 1`,
		`fsb_requests_total{consumer="anonymous",service="both",status="503"} 1`,
	} {
		if !strings.Contains(got, series+"\n") {
			t.Errorf("exposition lacks %s", series)
		}
	}
	if strings.Contains(got, `outcome="status_5xx"`) {
		t.Error("the open circuit was counted as a source's 5xx")
	}
}

// TestUnroutedAnswersCounted: answers that never reach a flow are counted:
// 404 (unmatched), 405 (the flow served at that path), 413 refused by the
// server before any route, 400/415 refused reading the request.
func TestUnroutedAnswersCounted(t *testing.T) {
	o := newOps(t)
	calls := []struct {
		method, path string
		body         []byte
		hdr          []string
		status       int
	}{
		{"GET", "/nothing/here", nil, nil, 404},
		{"GET", "/nothing/here", nil, nil, 404},
		{"DELETE", "/both/v1/get", nil, nil, 405},
		{"POST", "/submit/v1/items", []byte("not gzip"), []string{"Content-Encoding", "gzip"}, 400},
		{"POST", "/submit/v1/items", []byte(`{"n":1}`), []string{"Content-Type", "text/plain"}, 415},
		{"POST", "/submit/v1/items", []byte(`{"n":"one"}`), nil, 400}, // invalid input: the flow's validation
		{"POST", "/submit/v1/items", []byte(`{"n":1}`), nil, 200},
	}
	for _, c := range calls {
		if resp, _ := o.do(t, c.method, c.path, c.body, c.hdr...); resp.StatusCode != c.status {
			t.Fatalf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.status)
		}
	}
	// A body longer than any flow takes: the server refuses it by its
	// announced length, before any route (and closes the connection).
	raw := &harness{t: t, base: o.base}
	if r := raw.rawPost("/submit/v1/items", flow.DefaultMaxBodySize+1, "{"); r.status != 413 {
		t.Fatalf("oversized body: %s", r)
	}
	got := string(o.m.Gather())
	for _, series := range []string{
		`fsb_requests_total{consumer="anonymous",service="unmatched",status="404"} 2`,
		`fsb_requests_total{consumer="anonymous",service="both",status="405"} 1`,
		`fsb_requests_total{consumer="anonymous",service="submit",status="413"} 1`,
		`fsb_requests_total{consumer="anonymous",service="submit",status="400"} 2`,
		`fsb_requests_total{consumer="anonymous",service="submit",status="415"} 1`,
		`fsb_requests_total{consumer="anonymous",service="submit",status="200"} 1`,
		`fsb_request_duration_seconds_count{service="submit"} 5`,
	} {
		if !strings.Contains(got, series+"\n") {
			t.Errorf("exposition lacks %s", series)
		}
	}
}

func spanAttr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}
