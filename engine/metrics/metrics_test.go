package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"mime"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/metrics"
	"github.com/openfsb/fsb/engine/wasm"
)

// sampleLine is one line of the text format: name, optional labels, value.
var sampleLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (\+Inf|-?[0-9.e+-]+)$`)

// lint parses an exposition, checks every line and returns its samples.
func lint(t *testing.T, text string) map[string]string {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := p.TextToMetricFamilies(strings.NewReader(text)); err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if strings.HasPrefix(l, "# HELP ") || strings.HasPrefix(l, "# TYPE ") {
			continue
		}
		if !sampleLine.MatchString(l) {
			t.Fatalf("not a sample line: %q", l)
		}
		i := strings.LastIndexByte(l, ' ')
		out[l[:i]] = l[i+1:]
	}
	return out
}

func want(t *testing.T, got map[string]string, series, value string) {
	t.Helper()
	if v, ok := got[series]; !ok || v != value {
		t.Errorf("%s = %q (present %v), want %s", series, v, ok, value)
	}
}

type fakePlugin struct{ err error }

func (p fakePlugin) Call(context.Context, string, []byte, []byte) ([]byte, error) {
	return []byte("{}"), p.err
}
func (p fakePlugin) Stats() wasm.Stats {
	return wasm.Stats{Live: 3, Idle: 1, Peak: 4, Calls: 10, Discarded: 1, Recycled: 1, Instantiations: 7, Hits: 4}
}

// record makes the calls whose metrics testdata/exposition.prom holds.
func record(m *metrics.Metrics) {
	ctx := context.Background()
	m.Request("enterprise", "0123456789", 200, 3*time.Millisecond)
	m.Request("enterprise", "0123456789", 200, 30*time.Millisecond)
	m.Request("", "", 404, time.Millisecond)
	m.SourceCall(ctx, &flow.SourceCall{Flow: "enterprise", Source: "reg", Operation: "get", Status: 200, Attempts: 3, Duration: 2 * time.Millisecond})
	m.SourceCall(ctx, &flow.SourceCall{Source: "reg", Operation: "get", Err: &connector.Error{Kind: connector.ErrTimeout}, Attempts: 1})
	m.SourceCall(ctx, &flow.SourceCall{Source: "reg", Operation: "get", Status: 503, Attempts: 1})
	m.SourceCall(ctx, &flow.SourceCall{Source: "reg", Operation: "get", Err: &connector.CircuitOpenError{Source: "reg", Operation: "get"}})
	m.Refusal("enterprise", "0123456789", "quota")
	m.Refusal("enterprise", "", "credential")
	m.CircuitState("reg", "closed", "open")
	m.CircuitRejected("reg")
	m.Shed("consumer")
	m.AuditCommit(64, 2*time.Millisecond, nil)
	m.AuditCommit(0, time.Millisecond, errors.New("disk full")) // a failed write: none durable
	m.SetAuditQueue(func() int { return 7 })
	m.SetInFlight(func() (int, int) { return 2, 256 })
	plugins := map[string]flow.Plugin{"mask": m.Plugin("mask", fakePlugin{}), "trap": m.Plugin("trap", fakePlugin{err: &wasm.Error{Kind: wasm.ErrTrap}})}
	m.SetPlugins(func() map[string]flow.Plugin { return plugins })
	_, _ = plugins["mask"].Call(ctx, "transform", nil, nil)
	_, _ = plugins["trap"].Call(ctx, "transform", nil, nil)
	m.Reload("flows", 1, nil)
	m.Reload("flows", 2, nil)
	m.Reload("flows", 0, errors.New("invalid"))
}

// golden returns testdata/exposition.prom (every metric of record but
// the timed plugin calls and the Go runtime's, as the text format writes
// them) and the metric names in it.
func golden(t *testing.T) (text string, names []string) {
	t.Helper()
	b, err := os.ReadFile("testdata/exposition.prom")
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for name := range families {
		names = append(names, name)
	}
	return string(b), names
}

// text gathers the named metrics from g in the text format.
// (testutil.GatherAndCompare does this once go.sum has its diff module.)
func text(t *testing.T, g prometheus.Gatherer, names ...string) string {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range families {
		if slices.Contains(names, f.GetName()) {
			if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b.String()
}

func same(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestExposition compares names, help texts, types, labels, buckets and
// values with the golden file, series for series.
func TestExposition(t *testing.T) {
	m := metrics.New(metrics.Options{})
	record(m)
	want, names := golden(t)
	same(t, text(t, metrics.Gatherer(m), names...), want)

	got := lint(t, string(m.Gather()))
	for _, series := range []string{`fsb_wasm_call_duration_seconds_count{plugin="mask"}`, `fsb_wasm_call_duration_seconds_count{plugin="trap"}`} {
		if got[series] != "1" {
			t.Errorf("%s = %q, want 1", series, got[series])
		}
	}
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("no go_goroutines")
	}
	families, err := metrics.Gatherer(m).Gather()
	if err != nil {
		t.Fatal(err)
	}
	if problems, err := promlint.NewWithMetricFamilies(families).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", err, problems)
	}
}

// TestReadMetricsUnset: gauges read from functions not given are absent,
// not zero.
func TestReadMetricsUnset(t *testing.T) {
	m := metrics.New(metrics.Options{})
	same(t, text(t, metrics.Gatherer(m), "fsb_audit_queue_depth", "fsb_inflight_requests", "fsb_wasm_pool_instances", "fsb_circuits_open"), `# HELP fsb_circuits_open Sources whose circuit is open.
# TYPE fsb_circuits_open gauge
fsb_circuits_open 0
`)
}

// TestBoundedLabels: consumers past the limit count as "other"; label
// values are escaped.
func TestBoundedLabels(t *testing.T) {
	m := metrics.New(metrics.Options{MaxConsumers: 2, MaxSeries: 100})
	for _, org := range []string{"a", "b", "c", "d", "a"} {
		m.Request("svc", org, 200, time.Millisecond)
	}
	m.Request(`we"ird\`+"\n", "a", 200, time.Millisecond)
	m.Request("\xff", "a", 500, time.Millisecond) // not UTF-8: repaired, not a panic
	got := lint(t, string(m.Gather()))
	want(t, got, `fsb_requests_total{consumer="a",service="svc",status="200"}`, "2")
	want(t, got, `fsb_requests_total{consumer="other",service="svc",status="200"}`, "2")
	want(t, got, `fsb_requests_total{consumer="a",service="we\"ird\\\n",status="200"}`, "1")
	want(t, got, "fsb_requests_total{consumer=\"a\",service=\"\uFFFD\",status=\"500\"}", "1")

	small := metrics.New(metrics.Options{MaxSeries: 2})
	for i := range 5 {
		small.Request("svc", "a", 200+i, time.Millisecond)
	}
	same(t, text(t, metrics.Gatherer(small), "fsb_requests_total"), `# HELP fsb_requests_total Consumer requests answered, by service (flow), consumer organisation and HTTP status.
# TYPE fsb_requests_total counter
fsb_requests_total{consumer="a",service="svc",status="200"} 1
fsb_requests_total{consumer="a",service="svc",status="201"} 1
fsb_requests_total{consumer="other",service="other",status="other"} 3
`)
}

func TestHandlers(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.Request("svc", "a", 200, time.Millisecond)
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !textFormat(rec.Header().Get("Content-Type")) || rec.Header().Get("Cache-Control") != "no-store" || !strings.Contains(rec.Body.String(), `fsb_requests_total{consumer="a",service="svc"`) {
		t.Fatalf("net/http: %v %s", rec.Header(), rec.Body)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/metrics", m.Handler())
	resp, err := app.Test(httptest.NewRequest("GET", "/metrics", nil))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if !textFormat(resp.Header.Get("Content-Type")) || !strings.Contains(string(b), "fsb_requests_total") {
		t.Fatalf("fiber: %v %s", resp.Header, b)
	}
}

// textFormat reports whether a Content-Type is ContentType, whatever its
// extra parameters (promhttp adds "escaping").
func textFormat(ct string) bool {
	got, gotParams, err1 := mime.ParseMediaType(ct)
	want, wantParams, err2 := mime.ParseMediaType(metrics.ContentType)
	return err1 == nil && err2 == nil && got == want && gotParams["version"] == wantParams["version"]
}

// TestScrape compares what a scraper reads over HTTP with the golden file.
func TestScrape(t *testing.T) {
	m := metrics.New(metrics.Options{})
	record(m)
	srv := httptest.NewServer(m)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	scraped, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want, names := golden(t)
	same(t, text(t, gathered(scraped), names...), want)
}

// gathered serves families already parsed as a prometheus.Gatherer.
type gathered map[string]*dto.MetricFamily

func (g gathered) Gather() ([]*dto.MetricFamily, error) {
	out := slices.Collect(maps.Values(g))
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, nil
}

func TestNilIgnores(t *testing.T) {
	var m *metrics.Metrics
	m.Request("a", "b", 200, 0)
	m.SourceCall(context.Background(), &flow.SourceCall{})
	m.Refusal("a", "b", "quota")
	if p := m.Plugin("x", fakePlugin{}); p == nil {
		t.Fatal("nil metrics dropped the plugin")
	}
	if metrics.Observers(nil, nil) != nil {
		t.Fatal("no observers should be nil")
	}
}

// TestHammer: concurrent updates and scrapes (run with -race).
func TestHammer(t *testing.T) {
	m := metrics.New(metrics.Options{MaxConsumers: 10})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			_ = m.Gather()
		}
	}()
	const P, N = 8, 2000
	finished := make(chan struct{}, P)
	for p := range P {
		go func() {
			for i := range N {
				m.Request("svc", string(rune('a'+(i+p)%20)), 200, time.Duration(i)*time.Microsecond)
				m.SourceCall(context.Background(), &flow.SourceCall{Source: "reg", Operation: "get", Status: 200, Attempts: 1})
			}
			finished <- struct{}{}
		}()
	}
	for range P {
		<-finished
	}
	<-done
	got := lint(t, string(m.Gather()))
	want(t, got, `fsb_source_calls_total{operation="get",outcome="ok",source="reg"}`, "16000")
	want(t, got, `fsb_request_duration_seconds_count{service="svc"}`, "16000")
}
