package breaker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/openfsb/fsb/engine/breaker"
	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/expr"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/metrics"
	"github.com/openfsb/fsb/engine/spec"
)

// fake is a source whose answers the test decides.
type fake struct {
	calls  atomic.Int64
	answer func() (*connector.Response, error)
}

func (f *fake) Call(context.Context, *connector.Request) (*connector.Response, error) {
	f.calls.Add(1)
	return f.answer()
}
func (f *fake) Check(context.Context) error { return nil }
func (f *fake) Close() error                { return nil }

func unreachable() (*connector.Response, error) {
	return nil, &connector.Error{Source: "reg", Operation: "get", Kind: connector.ErrUnavailable, Err: errors.New("dial tcp 10.1.2.3:443: refused")}
}
func fine() (*connector.Response, error) {
	return &connector.Response{Status: 200, Body: []byte(`{"ok":true}`)}, nil
}

type hookLog struct {
	mu       sync.Mutex
	changes  []string
	rejected atomic.Int64
}

func (h *hookLog) hooks() breaker.Hooks {
	return breaker.Hooks{
		StateChange: func(src, from, to string) {
			h.mu.Lock()
			h.changes = append(h.changes, src+":"+from+"->"+to)
			h.mu.Unlock()
		},
		Rejected: func(string) { h.rejected.Add(1) },
	}
}

func TestOpensThenRecovers(t *testing.T) {
	f := &fake{answer: unreachable}
	var h hookLog
	b := breaker.Wrap("reg", f, breaker.Settings{ConsecutiveFailures: 3, OpenFor: 100 * time.Millisecond}, h.hooks())
	for i := range 3 {
		if _, err := b.Call(context.Background(), &connector.Request{}); err == nil {
			t.Fatalf("call %d: no error", i)
		}
	}
	if b.State() != breaker.Open {
		t.Fatalf("state %s after 3 failures", b.State())
	}
	resp, err := b.Call(context.Background(), &connector.Request{Operation: "get"})
	var open *connector.CircuitOpenError
	if resp != nil || !errors.Is(err, connector.ErrCircuitOpen) || !errors.As(err, &open) ||
		open.Source != "reg" || open.Operation != "get" || open.RetryAfter < time.Second {
		t.Fatalf("open answer: %+v, %v", resp, err)
	}
	if connector.Retryable(err) {
		t.Error("an open circuit's error is retryable")
	}
	if f.calls.Load() != 3 || h.rejected.Load() != 1 {
		t.Fatalf("source called %d times, %d rejected", f.calls.Load(), h.rejected.Load())
	}
	time.Sleep(120 * time.Millisecond)
	f.answer = fine
	if resp, err := b.Call(context.Background(), &connector.Request{}); err != nil || resp.Status != 200 {
		t.Fatalf("trial call: %+v, %v", resp, err)
	}
	if b.State() != breaker.Closed {
		t.Fatalf("state %s after a good trial", b.State())
	}
	want := "reg:closed->open reg:open->half-open reg:half-open->closed"
	if got := strings.Join(h.changes, " "); got != want {
		t.Errorf("state changes %q, want %q", got, want)
	}
}

func TestWhatCounts(t *testing.T) {
	cases := []struct {
		name   string
		answer func() (*connector.Response, error)
		opens  bool
	}{
		{"5xx", func() (*connector.Response, error) { return &connector.Response{Status: 502}, nil }, true},
		{"timeout", func() (*connector.Response, error) { return nil, &connector.Error{Kind: connector.ErrTimeout} }, true},
		{"404", func() (*connector.Response, error) { return &connector.Response{Status: 404}, nil }, false},
		{"cancelled", func() (*connector.Response, error) {
			return nil, &connector.Error{Kind: connector.ErrUnavailable, Err: context.Canceled}
		}, false},
		{"bad request", func() (*connector.Response, error) { return nil, &connector.Error{Kind: connector.ErrBadRequest} }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := breaker.Wrap("reg", &fake{answer: c.answer}, breaker.Settings{ConsecutiveFailures: 2}, breaker.Hooks{})
			for range 4 {
				_, _ = b.Call(context.Background(), &connector.Request{})
			}
			if got := b.State() == breaker.Open; got != c.opens {
				t.Errorf("open %v, want %v", got, c.opens)
			}
		})
	}
}

// TestOpenProblem: through a real plan, an open circuit is a
// serviceUnavailable problem that names the step and the source, with a
// Retry-After, and no host.
func TestOpenProblem(t *testing.T) {
	set, err := spec.Load(map[string][]byte{"f.yaml": []byte(`kind: Source
name: personRegister
protocol: rest
rest:
  baseUrl: https://registry.internal.example:8443/api
  operations:
    get: {method: GET, path: /p}
---
kind: Flow
name: p
version: 1.0.0
method: GET
path: /p/v1/get
steps:
  - id: person
    call: personRegister.get
output: steps.person.body
`)})
	if err != nil {
		t.Fatal(err)
	}
	plans, err := flow.Compile(set)
	if err != nil {
		t.Fatal(err)
	}
	b := breaker.Wrap("personRegister", &fake{answer: unreachable}, breaker.Settings{ConsecutiveFailures: 1, OpenFor: time.Minute}, breaker.Hooks{})
	rt := &flow.Runtime{Conns: map[string]connector.Connector{"personRegister": b}}
	serve := func() *flow.Outcome {
		return plans["p"].Serve(context.Background(), rt, &flow.Request{}, "0123456789abcdef0123456789abcdef", expr.Consumer{})
	}
	if out := serve(); out.Status != 502 {
		t.Fatalf("first failure: %d", out.Status)
	}
	out := serve()
	if out.Problem == nil || out.Status != 503 || !strings.HasSuffix(out.Problem.Type, ":serviceUnavailable") {
		t.Fatalf("open circuit: %d %+v", out.Status, out.Problem)
	}
	doc := string(out.Problem.JSON())
	if !strings.Contains(doc, `personRegister`) || strings.Contains(doc, "registry.internal") || strings.Contains(doc, "10.1.2.3") {
		t.Errorf("problem %s", doc)
	}
	if out.Problem.RetryAfter < 59 || out.Problem.RetryAfter > 60 {
		t.Errorf("Retry-After %d, want the minute left", out.Problem.RetryAfter)
	}
}

// TestOpenNotAnAnswer: a step that accepts a 503 from its source does not
// take an open circuit for one; the observer (metrics) sees a call that
// did not reach the source (outcome circuit_open), not a source's 503.
func TestOpenNotAnAnswer(t *testing.T) {
	set, err := spec.Load(map[string][]byte{"f.yaml": []byte(`kind: Source
name: personRegister
protocol: rest
rest:
  baseUrl: https://registry.internal.example:8443/api
  operations:
    get: {method: GET, path: /p}
---
kind: Flow
name: p
version: 1.0.0
method: GET
path: /p/v1/get
steps:
  - id: person
    call: personRegister.get
    acceptStatus: [503]
output: '{"status": steps.person.status}'
`)})
	if err != nil {
		t.Fatal(err)
	}
	plans, err := flow.Compile(set)
	if err != nil {
		t.Fatal(err)
	}
	busy := func() (*connector.Response, error) {
		return &connector.Response{Status: 503, Headers: connector.Headers{{Name: "Retry-After", Value: "7"}}, Body: []byte(`{}`)}, nil
	}
	f := &fake{answer: busy}
	m := metrics.New(metrics.Options{})
	b := breaker.Wrap("personRegister", f, breaker.Settings{ConsecutiveFailures: 2, OpenFor: time.Minute},
		breaker.Hooks{StateChange: m.CircuitState, Rejected: m.CircuitRejected})
	rt := &flow.Runtime{Conns: map[string]connector.Connector{"personRegister": b}, Observer: m}
	serve := func() *flow.Outcome {
		return plans["p"].Serve(context.Background(), rt, &flow.Request{}, "0123456789abcdef0123456789abcdef", expr.Consumer{})
	}
	for i := range 2 { // the source's own 503s are accepted answers (and open the circuit)
		if out := serve(); out.Status != 200 || string(out.Body) != `{"status":503}` {
			t.Fatalf("source 503 #%d: %d %s %+v", i, out.Status, out.Body, out.Problem)
		}
	}
	if b.State() != breaker.Open {
		t.Fatalf("state %s", b.State())
	}
	out := serve()
	if out.Problem == nil || out.Status != 503 || !strings.HasSuffix(out.Problem.Type, ":serviceUnavailable") || out.Problem.Step != "person" {
		t.Fatalf("open circuit taken as an answer: %d %s %+v", out.Status, out.Body, out.Problem)
	}
	if out.Problem.RetryAfter < 59 || out.Problem.RetryAfter > 60 {
		t.Errorf("Retry-After %d, want the minute left (not the source's 7)", out.Problem.RetryAfter)
	}
	if f.calls.Load() != 2 {
		t.Errorf("source called %d times, want 2", f.calls.Load())
	}
	got := string(m.Gather())
	for _, series := range []string{
		`fsb_source_calls_total{operation="get",outcome="status_5xx",source="personRegister"} 2`,
		`fsb_source_calls_total{operation="get",outcome="circuit_open",source="personRegister"} 1`,
		`fsb_source_call_duration_seconds_count{operation="get",source="personRegister"} 2`,
		`fsb_circuit_rejected_total{source="personRegister"} 1`,
		`fsb_circuits_open 1`,
	} {
		if !strings.Contains(got, series+"\n") {
			t.Errorf("exposition lacks %s", series)
		}
	}
}

// TestHammerBreaker: many goroutines through one breaker while the source
// flaps; every call is answered by the source or by the open circuit.
func TestHammerBreaker(t *testing.T) {
	var failing atomic.Bool
	f := &fake{answer: func() (*connector.Response, error) {
		if failing.Load() && rand.IntN(4) > 0 {
			return unreachable()
		}
		return fine()
	}}
	var h hookLog
	b := breaker.Wrap("reg", f, breaker.Settings{ConsecutiveFailures: 5, OpenFor: 5 * time.Millisecond, HalfOpenCalls: 2}, h.hooks())
	const P, N = 16, 400
	var answered, errs, rejected atomic.Int64
	var wg sync.WaitGroup
	for p := range P {
		wg.Go(func() {
			for i := range N {
				if p == 0 && i%50 == 0 {
					failing.Store(!failing.Load())
				}
				resp, err := b.Call(context.Background(), &connector.Request{})
				switch {
				case errors.Is(err, connector.ErrCircuitOpen):
					rejected.Add(1)
				case err != nil:
					errs.Add(1)
				case resp.Status == 200:
					answered.Add(1)
				default:
					t.Errorf("status %d", resp.Status)
				}
			}
		})
	}
	wg.Wait()
	if got := answered.Load() + errs.Load() + rejected.Load(); got != P*N {
		t.Fatalf("%d of %d calls accounted for", got, P*N)
	}
	if rejected.Load() != h.rejected.Load() {
		t.Fatalf("%d calls rejected, the hook heard %d", rejected.Load(), h.rejected.Load())
	}
	if f.calls.Load()+h.rejected.Load() != P*N {
		t.Fatalf("source calls %d + rejected %d != %d", f.calls.Load(), h.rejected.Load(), P*N)
	}
	t.Logf("%d calls: %d reached the source, %d rejected by an open circuit, %d state changes", P*N, f.calls.Load(), h.rejected.Load(), len(h.changes))
}

// TestHammerLimiter: never more calls inside than slots; every call is
// served or shed; a shed call costs no wait when MaxWait is 0.
func TestHammerLimiter(t *testing.T) {
	for _, wait := range []time.Duration{0, 2 * time.Millisecond} {
		t.Run(fmt.Sprint("wait=", wait), func(t *testing.T) {
			var shedHook atomic.Int64
			l := breaker.NewLimiter(4, breaker.LimiterOptions{MaxWait: wait, MaxQueue: 4, OnShed: func() { shedHook.Add(1) }})
			var inside, peak, served atomic.Int64
			const P, N = 32, 200
			var wg sync.WaitGroup
			for range P {
				wg.Go(func() {
					for range N {
						if !l.Acquire(context.Background()) {
							continue
						}
						n := inside.Add(1)
						for {
							p := peak.Load()
							if n <= p || peak.CompareAndSwap(p, n) {
								break
							}
						}
						time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond)
						inside.Add(-1)
						served.Add(1)
						l.Release()
					}
				})
			}
			wg.Wait()
			if peak.Load() > 4 {
				t.Fatalf("%d calls inside at once, limit 4", peak.Load())
			}
			if served.Load()+int64(l.Shed()) != P*N || shedHook.Load() != int64(l.Shed()) {
				t.Fatalf("served %d + shed %d != %d (hook %d)", served.Load(), l.Shed(), P*N, shedHook.Load())
			}
			if l.Shed() == 0 || l.InFlight() != 0 {
				t.Fatalf("shed %d, in flight %d", l.Shed(), l.InFlight())
			}
			t.Logf("served %d, shed %d", served.Load(), l.Shed())
		})
	}
}

// TestMiddlewareSheds: with every slot taken, a call gets a quick 503
// problem with Retry-After and a trace id; /health still answers.
func TestMiddlewareSheds(t *testing.T) {
	l := breaker.NewLimiter(1, breaker.LimiterOptions{})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(l.Middleware())
	release := make(chan struct{})
	entered := make(chan struct{})
	app.Get("/slow", func(c *fiber.Ctx) error { close(entered); <-release; return c.SendString("done") })
	app.Get("/health", func(c *fiber.Ctx) error { return c.SendString("UP") })
	go func() { _, _ = app.Test(httptest.NewRequest("GET", "/slow", nil), 5000) }()
	<-entered
	start := time.Now()
	resp, err := app.Test(httptest.NewRequest("GET", "/slow", nil), 5000)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	body, _ := io.ReadAll(resp.Body)
	var p struct{ Type string }
	_ = json.Unmarshal(body, &p)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || !strings.HasSuffix(p.Type, ":serviceUnavailable") ||
		resp.Header.Get("Content-Type") != "application/problem+json" || resp.Header.Get("BelGov-Trace-Id") == "" {
		t.Fatalf("shed answer: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if took > 100*time.Millisecond {
		t.Errorf("shedding took %s", took)
	}
	if resp, err := app.Test(httptest.NewRequest("GET", "/health", nil), 5000); err != nil || resp.StatusCode != 200 {
		t.Fatalf("health while saturated: %v %v", resp, err)
	}
	close(release)
}
