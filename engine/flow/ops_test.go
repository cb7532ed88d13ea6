package flow

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/expr"
	"github.com/openfsb/fsb/engine/trace"
)

// TestCallStepsCarryTheCall: a connector (and a codec plugin it runs)
// finds the step and the consumer call's trace id in its context, for
// plain, parallel and foreach call steps, and on every retry; the pooled
// run state does not leak one run's call into the next.
func TestCallStepsCarryTheCall(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]trace.Call{} // by operation path id
	record := func(ctx context.Context, r *connector.Request) (*connector.Response, error) {
		mu.Lock()
		seen[r.Path["id"]] = append(seen[r.Path["id"]], trace.CallOf(ctx))
		n := len(seen[r.Path["id"]])
		mu.Unlock()
		if r.Path["id"] == "retried" && n == 1 {
			return &connector.Response{Status: 503}, nil
		}
		if _, ok := ctx.Deadline(); !ok {
			t.Errorf("call %s: no deadline under the call's context", r.Path["id"])
		}
		return &connector.Response{Status: 200, Body: []byte(`{}`)}, nil
	}
	p := compileFlow(t, flowDoc(`  - id: first
    call: a.get
    retry: {attempts: 2, backoff: 1ms}
    with: {path: {id: "'retried'"}}
  - id: both
    parallel:
      - {id: x, call: a.get, with: {path: {id: "'x'"}}}
      - {id: y, call: b.get, with: {path: {id: "'y'"}}}
  - id: each
    foreach:
      items: '[1,2]'
      steps: [{id: one, call: a.get, with: {path: {id: "'item' + string(item)"}}}]
`, "{}"))
	conns := map[string]connector.Connector{"a": &fakeSource{answer: record}, "b": &fakeSource{answer: record}}
	for run, traceID := range []string{"trace-one", "trace-two"} {
		clear(seen)
		in := expr.Input{Body: map[string]any{}, Query: map[string]any{}, Path: map[string]any{}}
		out := p.Run(context.Background(), &Runtime{Conns: conns}, &Invocation{Input: in, TraceID: traceID})
		if out.Status != 200 {
			t.Fatalf("run %d: %d %+v", run, out.Status, out.Problem)
		}
		want := map[string][]trace.Call{
			"retried": {{TraceID: traceID, Step: "first"}, {TraceID: traceID, Step: "first"}},
			"x":       {{TraceID: traceID, Step: "x"}},
			"y":       {{TraceID: traceID, Step: "y"}},
			"item1":   {{TraceID: traceID, Step: "one"}},
			"item2":   {{TraceID: traceID, Step: "one"}},
		}
		for id, calls := range want {
			if got := seen[id]; len(got) != len(calls) || got[0] != calls[0] || got[len(got)-1] != calls[len(calls)-1] {
				t.Errorf("run %d, call %s: %+v, want %+v", run, id, got, calls)
			}
		}
	}
}

// TestCircuitOpen: a call its source's open circuit rejected is a
// serviceUnavailable problem naming the step and the source with the
// circuit's Retry-After, even for a step that accepts a 503; an optional
// step falls back to its default; the observer sees a call that did not
// reach the source.
func TestCircuitOpen(t *testing.T) {
	open := func(_ context.Context, r *connector.Request) (*connector.Response, error) {
		return nil, &connector.CircuitOpenError{Source: "a", Operation: r.Operation, RetryAfter: 12500 * time.Millisecond}
	}
	obs := &observed{}
	p := compileFlow(t, flowDoc("  - id: x\n    call: a.get\n    acceptStatus: [503]\n    retry: {attempts: 3, backoff: 1ms}\n    with: {path: {id: \"'1'\"}}\n", "steps.x.body"))
	src := &fakeSource{answer: open}
	in := expr.Input{Body: map[string]any{}, Query: map[string]any{}, Path: map[string]any{}}
	out := p.Run(context.Background(), &Runtime{Conns: map[string]connector.Connector{"a": src}, Observer: obs}, &Invocation{Input: in, TraceID: "t"})
	if out.Status != 503 || out.Problem == nil || !strings.HasSuffix(out.Problem.Type, ":serviceUnavailable") || out.Problem.Step != "x" {
		t.Fatalf("got %d %+v", out.Status, out.Problem)
	}
	if out.Problem.RetryAfter != 13 || !strings.Contains(out.Problem.Detail, `source "a"`) || !strings.Contains(out.Problem.Detail, `step "x"`) {
		t.Errorf("problem %+v", out.Problem)
	}
	if src.calls.Load() != 1 {
		t.Errorf("%d calls: an open circuit was retried", src.calls.Load())
	}
	if len(obs.calls) != 1 || obs.calls[0].Status != 0 || obs.calls[0].Attempts != 0 || obs.calls[0].Err == nil {
		t.Errorf("observed %+v", obs.calls)
	}

	opt := compileFlow(t, flowDoc("  - id: x\n    call: a.get\n    optional: true\n    default: {fallback: true}\n    with: {path: {id: \"'1'\"}}\n", "steps.x.body"))
	if out := runPlan(opt, map[string]connector.Connector{"a": &fakeSource{answer: open}}, nil); out.Status != 200 || string(out.Body) != `{"fallback":true}` {
		t.Errorf("optional step: %d %s %+v", out.Status, out.Body, out.Problem)
	}
}

type observed struct {
	mu    sync.Mutex
	calls []SourceCall
}

func (o *observed) SourceCall(_ context.Context, c *SourceCall) {
	o.mu.Lock()
	sc := *c
	sc.Body = nil // lent for the callback only
	o.calls = append(o.calls, sc)
	o.mu.Unlock()
}

// TestCallSubject: a call step's subject is evaluated per call (per item in
// a foreach) and handed to the observer with the call; a call step without
// one reports none; a subject that fails to evaluate fails the step before
// the source is called.
func TestCallSubject(t *testing.T) {
	ok := func(_ context.Context, r *connector.Request) (*connector.Response, error) {
		return &connector.Response{Status: 200, Body: []byte(`{"ids":["85073003328","79120512345"]}`)}, nil
	}
	p := compileFlow(t, flowDoc(`  - id: list
    call: a.get
    with: {path: {id: "'all'"}}
  - id: each
    foreach:
      items: steps.list.body.ids
      concurrency: 1
      steps:
        - id: one
          call: a.get
          subject: item
          with: {path: {id: item}}
`, "steps.each.body"))
	obs := &observed{}
	in := expr.Input{Body: map[string]any{}, Query: map[string]any{}, Path: map[string]any{}}
	out := p.Run(context.Background(), &Runtime{Conns: map[string]connector.Connector{"a": &fakeSource{answer: ok}}, Observer: obs}, &Invocation{Input: in, TraceID: "t"})
	if out.Status != 200 {
		t.Fatalf("run: %d %+v", out.Status, out.Problem)
	}
	var got []string
	for _, c := range obs.calls {
		got = append(got, c.Step+":"+c.Subject)
	}
	if want := []string{"list:", "one:85073003328", "one:79120512345"}; !slices.Equal(got, want) {
		t.Errorf("observed subjects %q, want %q", got, want)
	}

	src := &fakeSource{answer: ok}
	bad := compileFlow(t, flowDoc("  - id: x\n    call: a.get\n    subject: 1 / input.body.zero\n    with: {path: {id: \"'1'\"}}\n", "steps.x.body"))
	if out := runPlan(bad, map[string]connector.Connector{"a": src}, map[string]any{"zero": "nope"}); out.Status != 500 || out.Problem == nil ||
		out.Problem.Step != "x" || !strings.Contains(out.Problem.Detail, "subject") || src.calls.Load() != 0 {
		t.Errorf("failing subject: %d %+v, %d source calls", out.Status, out.Problem, src.calls.Load())
	}
}

// TestObserverHearsEachCall: the observer hears every attempt of every
// call with its step, status, attempts, the consumer call's trace id and the
// answer's body (valid during the callback, for the audit trail's digest);
// the run's reused SourceCall carries nothing of the previous run into the
// next.
func TestObserverHearsEachCall(t *testing.T) {
	var n atomic.Int32
	answer := func(_ context.Context, r *connector.Request) (*connector.Response, error) {
		if r.Path["id"] == "flaky" && n.Add(1)%2 == 1 {
			return &connector.Response{Status: 503, Body: []byte(`{"busy":true}`)}, nil
		}
		if r.Path["id"] == "down" {
			return nil, connector.ErrUnavailable
		}
		return &connector.Response{Status: 200, Body: []byte(`{"id":"` + r.Path["id"] + `"}`)}, nil
	}
	p := compileFlow(t, flowDoc(`  - id: first
    call: a.get
    retry: {attempts: 2, backoff: 1ms, onStatus: [503]}
    with: {path: {id: "'flaky'"}}
  - id: both
    parallel:
      - {id: x, call: a.get, with: {path: {id: "'x'"}}}
      - {id: y, call: a.get, optional: true, default: {}, with: {path: {id: "'down'"}}}
  - id: each
    foreach:
      items: '[1,2]'
      concurrency: 1
      steps: [{id: one, call: a.get, with: {path: {id: "'item' + string(item)"}}}]
`, "{}"))
	type heard struct {
		step, trace, body string
		status, attempts  int
		failed            bool
	}
	for _, traceID := range []string{"trace-one", "trace-two"} {
		var mu sync.Mutex
		var got []heard
		obs := observerFunc(func(c *SourceCall) {
			mu.Lock()
			got = append(got, heard{c.Step, c.ParentTraceID, string(c.Body), c.Status, c.Attempts, c.Err != nil})
			mu.Unlock()
		})
		in := expr.Input{Body: map[string]any{}, Query: map[string]any{}, Path: map[string]any{}}
		out := p.Run(context.Background(), &Runtime{Conns: map[string]connector.Connector{"a": &fakeSource{answer: answer}}, Observer: obs}, &Invocation{Input: in, TraceID: traceID})
		if out.Status != 200 {
			t.Fatalf("%s: %d %+v", traceID, out.Status, out.Problem)
		}
		slices.SortStableFunc(got[2:4], func(a, b heard) int { return strings.Compare(a.step, b.step) }) // x and y ran in parallel
		want := []heard{
			{"first", traceID, `{"busy":true}`, 503, 1, false},
			{"first", traceID, `{"id":"flaky"}`, 200, 1, false},
			{"x", traceID, `{"id":"x"}`, 200, 1, false},
			{"y", traceID, "", 0, 1, true},
			{"one", traceID, `{"id":"item1"}`, 200, 1, false},
			{"one", traceID, `{"id":"item2"}`, 200, 1, false},
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: heard\n%+v\nwant\n%+v", traceID, got, want)
		}
	}
}

type observerFunc func(c *SourceCall)

func (f observerFunc) SourceCall(_ context.Context, c *SourceCall) { f(c) }

// TestText: the text of a value as a request and the audit trail see it.
// A number is plain decimal: a national number read as a JSON number
// pseudonymises the same as its string (the gateway uses Text for the
// flow's subject, the flow for a call step's).
func TestText(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{"68031401742", "68031401742"}, {68031401742.0, "68031401742"}, {1.5, "1.5"}, {42, "42"},
		{true, "true"}, {nil, ""}, {[]any{"a", 1.0}, `["a",1]`},
	} {
		if got := Text(tc.v); got != tc.want {
			t.Errorf("Text(%#v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
