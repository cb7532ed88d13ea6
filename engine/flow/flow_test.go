package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/expr"
	"github.com/openfsb/fsb/engine/spec"
)

// fakeSource answers calls from a function; it stands for a transport in
// these unit tests of the executor (the gateway's tests use real servers).
type fakeSource struct {
	answer   func(ctx context.Context, req *connector.Request) (*connector.Response, error)
	calls    atomic.Int64
	inFlight atomic.Int64
	maxSeen  atomic.Int64
}

func (f *fakeSource) Call(ctx context.Context, req *connector.Request) (*connector.Response, error) {
	f.calls.Add(1)
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	return f.answer(ctx, req)
}
func (f *fakeSource) Check(context.Context) error { return nil }
func (f *fakeSource) Close() error                { return nil }

func ok(body string) func(context.Context, *connector.Request) (*connector.Response, error) {
	return func(context.Context, *connector.Request) (*connector.Response, error) {
		return &connector.Response{Status: 200, Body: []byte(body)}, nil
	}
}

func status(code int, body string) func(context.Context, *connector.Request) (*connector.Response, error) {
	return func(context.Context, *connector.Request) (*connector.Response, error) {
		return &connector.Response{Status: code, Body: []byte(body), Headers: connector.Headers{{Name: "Retry-After", Value: "3"}}}, nil
	}
}

func slow(d time.Duration, body string) func(context.Context, *connector.Request) (*connector.Response, error) {
	return func(ctx context.Context, _ *connector.Request) (*connector.Response, error) {
		switch err := connector.Sleep(ctx, d); {
		case errors.Is(err, context.Canceled):
			return nil, &connector.Error{Kind: connector.ErrUnavailable, Err: err}
		case err != nil:
			return nil, &connector.Error{Kind: connector.ErrTimeout, Err: err}
		}
		return &connector.Response{Status: 200, Body: []byte(body)}, nil
	}
}

const sources = `
kind: Source
name: a
protocol: rest
rest:
  baseUrl: http://127.0.0.1:1
  operations:
    get: {method: GET, path: "/x/{id}"}
    post: {method: POST, path: /x}
---
kind: Source
name: b
protocol: rest
rest:
  baseUrl: http://127.0.0.1:1
  operations:
    get: {method: GET, path: "/y/{id}"}
`

func compileFlow(t testing.TB, flowYAML string) *Plan {
	t.Helper()
	set, err := spec.Load(map[string][]byte{"sources.yaml": []byte(sources), "flow.yaml": []byte(flowYAML)})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	plans, err := Compile(set)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	for _, p := range plans {
		return p
	}
	t.Fatal("no plan")
	return nil
}

func runPlan(p *Plan, conns map[string]connector.Connector, body map[string]any) *Outcome {
	in := expr.Input{Body: body, Query: map[string]any{}, Path: map[string]any{}}
	return p.Run(context.Background(), &Runtime{Conns: conns}, &Invocation{Input: in, TraceID: "t"})
}

func flowDoc(steps, output string) string {
	return "kind: Flow\nname: f\nversion: 1.0.0\nmethod: POST\npath: /f/v1/run\ntimeout: 2s\ninput:\n  body: {type: object, additionalProperties: true}\nsteps:\n" + steps + "output: " + output + "\n"
}

func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		steps  string
		output string
		a, b   func(context.Context, *connector.Request) (*connector.Response, error)
		body   map[string]any
		status int
		want   string // exact JSON body, or the problem type suffix for errors
		step   string // failing step for problems
	}{
		{
			name:   "call and map",
			steps:  "  - id: x\n    call: a.get\n    with: {path: {id: input.body.id}}\n",
			output: "{name: steps.x.body.name, id: input.body.id, n: steps.x.status}",
			a:      ok(`{"name":"A"}`), body: map[string]any{"id": "7"},
			status: 200, want: `{"name":"A","id":"7","n":200}`,
		},
		{
			name:   "when false skips, nil fields are left out",
			steps:  "  - id: x\n    when: input.body.go == true\n    call: a.get\n    with: {path: {id: \"'1'\"}}\n",
			output: "{skipped: steps.x.skipped, name: steps.x.body?.name}",
			a:      ok(`{"name":"A"}`), body: map[string]any{"go": false},
			status: 200, want: `{"skipped":true}`,
		},
		{
			name: "switch takes the first matching case",
			steps: `  - id: s
    switch:
      cases:
        - when: input.body.n > 10
          steps: [{id: big, set: {v: "'big'"}}]
        - when: input.body.n > 5
          steps: [{id: mid, set: {v: "'mid'"}}]
      default: [{id: small, set: {v: "'small'"}}]
`,
			output: "{big: steps.big.body?.v, mid: steps.mid.body?.v, small: steps.small.body?.v}",
			body:   map[string]any{"n": 7.0}, status: 200, want: `{"mid":"mid"}`,
		},
		{
			name:   "switch default",
			steps:  "  - id: s\n    switch:\n      cases: [{when: 'false', steps: [{id: c, set: {v: '1'}}]}]\n      default: [{id: d, set: {v: '2'}}]\n",
			output: "steps.d.body", status: 200, want: `{"v":2}`,
		},
		{
			name: "foreach keeps item order and collects outputs",
			steps: `  - id: each
    foreach:
      items: input.body.ids
      concurrency: 3
      steps: [{id: one, call: a.get, with: {path: {id: item}}}]
      output: {id: item, i: index, name: steps.one.body.name}
`,
			output: "steps.each.body",
			a: func(_ context.Context, r *connector.Request) (*connector.Response, error) {
				time.Sleep(time.Duration(10-len(r.Path["id"])) * time.Millisecond)
				return &connector.Response{Status: 200, Body: []byte(`{"name":"n` + r.Path["id"] + `"}`)}, nil
			},
			body:   map[string]any{"ids": []any{"1", "22", "333"}},
			status: 200, want: `[{"i":0,"id":"1","name":"n1"},{"i":1,"id":"22","name":"n22"},{"i":2,"id":"333","name":"n333"}]`,
		},
		{
			name:   "foreach over nil is empty",
			steps:  "  - id: each\n    foreach:\n      items: input.body.none\n      steps: [{id: one, set: {v: item}}]\n",
			output: "{list: steps.each.body}", status: 200, want: `{"list":[]}`,
		},
		{
			name:   "optional step failure yields its default",
			steps:  "  - id: x\n    call: a.get\n    optional: true\n    default: {name: fallback}\n    with: {path: {id: \"'1'\"}}\n",
			output: "{name: steps.x.body.name, ok: steps.x.ok, err: steps.x.error != ''}",
			a:      status(500, `{}`), status: 200, want: `{"name":"fallback","ok":false,"err":true}`,
		},
		{
			name:   "required step failure is a bad gateway naming it",
			steps:  "  - id: x\n    call: a.get\n    with: {path: {id: \"'1'\"}}\n",
			output: "steps.x.body", a: status(500, `{}`), status: 502, want: "badGateway", step: "x",
		},
		{
			name:   "a source's 503 passes Retry-After on",
			steps:  "  - id: x\n    call: a.get\n    with: {path: {id: \"'1'\"}}\n",
			output: "steps.x.body", a: status(503, `{}`), status: 503, want: "serviceUnavailable", step: "x",
		},
		{
			name:   "acceptStatus makes a 404 an answer",
			steps:  "  - id: x\n    call: a.get\n    acceptStatus: [404]\n    with: {path: {id: \"'1'\"}}\n",
			output: "{found: steps.x.status != 404}", a: status(404, `{}`), status: 200, want: `{"found":false}`,
		},
		{
			name:   "step timeout is a gateway timeout naming the step",
			steps:  "  - id: x\n    call: a.get\n    timeout: 50ms\n    with: {path: {id: \"'1'\"}}\n",
			output: "steps.x.body", a: slow(time.Second, `{}`), status: 504, want: "gatewayTimeout", step: "x",
		},
		{
			name:   "fail with a custom problem type",
			steps:  "  - id: stop\n    fail: {type: 'urn:problem-type:acme:closed', status: 409, detail: '\"closed: \" + input.body.why'}\n",
			output: "'1'", body: map[string]any{"why": "holiday"}, status: 409, want: "urn:problem-type:acme:closed", step: "stop",
		},
		{
			name:   "a run-time expression error is an internal error naming the step",
			steps:  "  - id: s\n    set: {v: input.body.missing.deeper}\n",
			output: "steps.s.body", status: 500, want: "internalServerError", step: "s",
		},
		{
			name: "parallel failure names the failing branch",
			steps: `  - id: both
    parallel:
      - {id: x, call: a.get, with: {path: {id: "'1'"}}}
      - {id: y, call: b.get, with: {path: {id: "'1'"}}}
`,
			output: "{x: steps.x.body, y: steps.y.body}",
			a:      slow(time.Second, `{}`), b: status(500, `{}`), status: 502, want: "badGateway", step: "y",
		},
		{
			name:   "raw passthrough keeps the source's bytes",
			steps:  "  - id: x\n    call: a.get\n    with: {path: {id: \"'1'\"}}\n",
			output: "steps.x.body", a: ok(`{"z":1, "a":"é\u00e9"}`), status: 200, want: `{"z":1, "a":"é\u00e9"}`,
		},
		{
			name:   "raw path extraction, absent paths left out",
			steps:  "  - id: x\n    call: a.get\n    with: {path: {id: \"'1'\"}}\n",
			output: "{addr: steps.x.body.address, city: steps.x.body.address.city, none: steps.x.body.nope.deeper, nul: steps.x.body.n}",
			a:      ok(`{"address":{"city":"Gent","zip":"9000"},"n":null}`), status: 200, want: `{"addr":{"city":"Gent","zip":"9000"},"city":"Gent"}`,
		},
		{
			name:   "malformed source JSON is a bad gateway",
			steps:  "  - id: x\n    call: a.get\n    with: {path: {id: \"'1'\"}}\n",
			output: "steps.x.body", a: ok(`{"broken":`), status: 502, want: "badGateway", step: "x",
		},
		{
			name:   "malformed source JSON read by an expression is a bad gateway",
			steps:  "  - id: x\n    call: a.get\n    with: {path: {id: \"'1'\"}}\n",
			output: "{n: steps.x.body.n}", a: ok(`nope`), status: 502, want: "badGateway", step: "x",
		},
		{
			name:   "post body built from an output tree",
			steps:  "  - id: x\n    call: a.post\n    with: {body: {ssin: input.body.ssin, fixed: 3, list: [1, input.body.ssin]}}\n",
			output: "steps.x.body",
			a: func(_ context.Context, r *connector.Request) (*connector.Response, error) {
				return &connector.Response{Status: 200, Body: r.Body}, nil
			},
			body: map[string]any{"ssin": "x"}, status: 200, want: `{"ssin":"x","fixed":3,"list":[1,"x"]}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := compileFlow(t, flowDoc(tc.steps, tc.output))
			conns := map[string]connector.Connector{}
			if tc.a != nil {
				conns["a"] = &fakeSource{answer: tc.a}
			}
			if tc.b != nil {
				conns["b"] = &fakeSource{answer: tc.b}
			}
			out := runPlan(p, conns, tc.body)
			if out.Status != tc.status {
				t.Fatalf("status %d, want %d (%+v %s)", out.Status, tc.status, out.Problem, out.Body)
			}
			if out.Problem == nil {
				if string(out.Body) != tc.want {
					t.Errorf("body %s, want %s", out.Body, tc.want)
				}
				return
			}
			if !strings.HasSuffix(out.Problem.Type, tc.want) {
				t.Errorf("problem type %s, want …%s", out.Problem.Type, tc.want)
			}
			if out.Problem.Step != tc.step {
				t.Errorf("problem step %q, want %q (%s)", out.Problem.Step, tc.step, out.Problem.Detail)
			}
			if tc.status == 503 && out.Problem.RetryAfter != 3 {
				t.Errorf("retry-after %d, want 3", out.Problem.RetryAfter)
			}
			if strings.Contains(out.Problem.Detail, "127.0.0.1") {
				t.Errorf("detail leaks an address: %s", out.Problem.Detail)
			}
		})
	}
}

func TestForeachConcurrencyLimit(t *testing.T) {
	p := compileFlow(t, flowDoc(`  - id: each
    foreach:
      items: input.body.ids
      concurrency: 2
      steps: [{id: one, call: a.get, with: {path: {id: string(item)}}}]
`, "steps.each.body"))
	src := &fakeSource{answer: slow(20*time.Millisecond, `{}`)}
	ids := make([]any, 10)
	for i := range ids {
		ids[i] = float64(i)
	}
	out := runPlan(p, map[string]connector.Connector{"a": src}, map[string]any{"ids": ids})
	if out.Status != 200 {
		t.Fatalf("status %d: %+v", out.Status, out.Problem)
	}
	if got := src.maxSeen.Load(); got != 2 {
		t.Errorf("max in flight %d, want 2", got)
	}
	if got := src.calls.Load(); got != 10 {
		t.Errorf("calls %d, want 10", got)
	}
	// without an output, each element is the last step's body
	if want := "[" + strings.TrimSuffix(strings.Repeat("{},", 10), ",") + "]"; string(out.Body) != want {
		t.Errorf("body %s, want %s", out.Body, want)
	}
}

func TestParallelRunsConcurrently(t *testing.T) {
	p := compileFlow(t, flowDoc(`  - id: both
    parallel:
      - {id: x, call: a.get, with: {path: {id: "'1'"}}}
      - {id: y, call: b.get, with: {path: {id: "'1'"}}}
`, "{x: steps.x.body, y: steps.y.body}"))
	conns := map[string]connector.Connector{"a": &fakeSource{answer: slow(250*time.Millisecond, `1`)}, "b": &fakeSource{answer: slow(250*time.Millisecond, `2`)}}
	start := time.Now()
	out := runPlan(p, conns, nil)
	if d := time.Since(start); d > 450*time.Millisecond { // one after the other would take 500ms
		t.Errorf("parallel took %s: branches did not overlap", d)
	}
	if string(out.Body) != `{"x":1,"y":2}` {
		t.Errorf("body %s", out.Body)
	}
}

func TestFlowDeadline(t *testing.T) {
	doc := strings.Replace(flowDoc("  - id: x\n    call: a.get\n    with: {path: {id: \"'1'\"}}\n", "steps.x.body"), "timeout: 2s", "timeout: 100ms", 1)
	p := compileFlow(t, doc)
	start := time.Now()
	out := runPlan(p, map[string]connector.Connector{"a": &fakeSource{answer: slow(5*time.Second, `{}`)}}, nil)
	if out.Status != 504 || out.Problem.Step != "x" {
		t.Fatalf("got %d %+v", out.Status, out.Problem)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the flow outlived its deadline: %s", d)
	}
}

func TestStepRetry(t *testing.T) {
	var n atomic.Int64
	src := &fakeSource{answer: func(context.Context, *connector.Request) (*connector.Response, error) {
		if n.Add(1) < 3 {
			return &connector.Response{Status: 503}, nil
		}
		return &connector.Response{Status: 200, Body: []byte(`{"ok":true}`)}, nil
	}}
	p := compileFlow(t, flowDoc("  - id: x\n    call: a.get\n    retry: {attempts: 3, backoff: 1ms}\n    with: {path: {id: \"'1'\"}}\n", "steps.x.body"))
	out := runPlan(p, map[string]connector.Connector{"a": src}, nil)
	if out.Status != 200 || n.Load() != 3 {
		t.Fatalf("status %d after %d calls: %+v", out.Status, n.Load(), out.Problem)
	}
}

func TestTraceIDs(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	src := &fakeSource{answer: func(_ context.Context, r *connector.Request) (*connector.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		if len(r.TraceID) != 32 || seen[r.TraceID] {
			return nil, errors.New("bad or reused trace id " + r.TraceID)
		}
		seen[r.TraceID] = true
		return &connector.Response{Status: 200, Body: []byte(`{}`)}, nil
	}}
	p := compileFlow(t, flowDoc("  - id: each\n    foreach:\n      items: '[1,2,3]'\n      steps: [{id: one, call: a.get, with: {path: {id: string(item)}}}]\n", "steps.each.body"))
	if out := runPlan(p, map[string]connector.Connector{"a": src}, nil); out.Status != 200 {
		t.Fatalf("%+v", out.Problem)
	}
	if len(seen) != 3 {
		t.Errorf("%d distinct trace ids, want 3", len(seen))
	}
}

// TestHammer runs one plan from many goroutines; run with -race.
func TestHammer(t *testing.T) {
	p := compileFlow(t, flowDoc(`  - id: first
    call: a.get
    with: {path: {id: input.body.id}}
  - id: more
    parallel:
      - {id: y, call: b.get, optional: true, with: {path: {id: steps.first.body.id}}}
      - id: each
        foreach:
          items: steps.first.body.list
          concurrency: 2
          steps: [{id: one, call: a.get, with: {path: {id: string(item)}}}]
          output: {n: item, v: steps.one.body.id}
`, "{id: steps.first.body.id, y: steps.y.body, each: steps.each.body}"))
	echo := func(_ context.Context, r *connector.Request) (*connector.Response, error) {
		id := r.Path["id"]
		return &connector.Response{Status: 200, Body: []byte(fmt.Sprintf(`{"id":%q,"list":[1,2,3]}`, id))}, nil
	}
	conns := map[string]connector.Connector{"a": &fakeSource{answer: echo}, "b": &fakeSource{answer: echo}}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				id := fmt.Sprintf("%d-%d", g, i)
				out := runPlan(p, conns, map[string]any{"id": id})
				var got struct {
					ID   string
					Y    map[string]any
					Each []map[string]any
				}
				if err := json.Unmarshal(out.Body, &got); err != nil || got.ID != id || got.Y["id"] != id || len(got.Each) != 3 || got.Each[2]["v"] != "3" {
					t.Errorf("run %s: %s (%v)", id, out.Body, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestFramed(t *testing.T) {
	for body, ok := range map[string]bool{
		`{"a":1}`: true, ` [1,{"b":[2]}] `: true, `"x"`: true, `42`: true, `null`: true,
		`{"a":"}"}`: true, `{"a":"\\"}`: true, `{"a":"\""}`: true,
		``: false, `<html>`: false, `{"a":{"b":1}`: false, `{"a":1}{"b":2}`: false, `{"a":1]`: false,
		`[1,2`: false, `{"a":"unterminated}`: false, `}`: false, `{"a":"x\\\\"}`: true, `{"a":"x\\"}`: true, `{"a":"x\"}`: false,
	} {
		if err := framed([]byte(body)); (err == nil) != ok {
			t.Errorf("framed(%q) = %v, want ok=%v", body, err, ok)
		}
	}
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	if err := framed([]byte(deep)); err != nil {
		t.Errorf("deep array: %v", err)
	}
}

func TestRawBodies(t *testing.T) {
	tests := []struct {
		name, steps, output, answer string
		status                      int
		want                        string
	}{
		{"optional step with a malformed raw body uses its default",
			"  - id: x\n    call: a.get\n    optional: true\n    default: {fallback: true}\n    with: {path: {id: \"'1'\"}}\n",
			"{x: steps.x.body, ok: steps.x.ok}", `<html>oops</html>`, 200, `{"x":{"fallback":true},"ok":false}`},
		{"an empty raw body is absent, not an error",
			"  - id: x\n    call: a.get\n    with: {path: {id: \"'1'\"}}\n",
			"{x: steps.x.body, n: 1}", ``, 200, `{"n":1}`},
		{"a truncated raw body is a bad gateway",
			"  - id: x\n    call: a.get\n    with: {path: {id: \"'1'\"}}\n",
			"{x: steps.x.body}", `{"a":{"b":1}`, 502, ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := compileFlow(t, flowDoc(tc.steps, tc.output))
			out := runPlan(p, map[string]connector.Connector{"a": &fakeSource{answer: ok(tc.answer)}}, nil)
			if out.Status != tc.status || tc.want != "" && string(out.Body) != tc.want {
				t.Errorf("got %d %s %+v, want %d %s", out.Status, out.Body, out.Problem, tc.status, tc.want)
			}
		})
	}
}

// TestGroupDeadline: a group's timeout bounds a foreach inside it, also
// when the group runs under a deadline-only context.
func TestGroupDeadline(t *testing.T) {
	p := compileFlow(t, flowDoc(`  - id: group
    timeout: 100ms
    steps:
      - id: each
        foreach:
          items: '[1,2,3,4,5,6]'
          concurrency: 1
          steps: [{id: one, call: a.get, optional: true, default: {late: true}, with: {path: {id: string(item)}}}]
`, "steps.each.body"))
	start := time.Now()
	out := runPlan(p, map[string]connector.Connector{"a": &fakeSource{answer: slow(80*time.Millisecond, `{}`)}}, nil)
	if out.Status != 504 {
		t.Errorf("status %d (%s), want 504: the items after the deadline must not turn into defaults", out.Status, out.Body)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %s", d)
	}
}

func TestStepRetryOnlyRetriesWhatMaySucceed(t *testing.T) {
	src := &fakeSource{answer: func(context.Context, *connector.Request) (*connector.Response, error) {
		return nil, &connector.Error{Kind: connector.ErrBadRequest}
	}}
	p := compileFlow(t, flowDoc("  - id: x\n    call: a.get\n    retry: {attempts: 3, backoff: 1ms}\n    with: {path: {id: \"'1'\"}}\n", "steps.x.body"))
	if out := runPlan(p, map[string]connector.Connector{"a": src}, nil); out.Status != 502 || src.calls.Load() != 1 {
		t.Errorf("status %d after %d calls, want 502 after 1", out.Status, src.calls.Load())
	}
}

func TestIssueCapAndMaxItems(t *testing.T) {
	p := compileFlow(t, strings.Replace(flowDoc("  - id: s\n    set: {v: '1'}\n", "steps.s.body"),
		"body: {type: object, additionalProperties: true}", "body: {type: object, properties: {a: {type: string}}}", 1))
	var b strings.Builder
	b.WriteString("{")
	for i := range 5000 {
		fmt.Fprintf(&b, `"k%d":1,`, i)
	}
	b.WriteString(`"a":"x"}`)
	_, prob := p.Validate(&Request{Body: []byte(b.String())})
	if prob == nil || len(prob.Issues) != MaxIssues || !strings.Contains(prob.Detail, "5000 input issues") {
		t.Fatalf("want %d issues of 5000, got %+v", MaxIssues, prob)
	}

	each := compileFlow(t, flowDoc("  - id: each\n    foreach:\n      items: input.body.list\n      maxItems: 3\n      steps: [{id: one, set: {v: item}}]\n", "steps.each.body"))
	out := runPlan(each, nil, map[string]any{"list": []any{1.0, 2.0, 3.0, 4.0}})
	if out.Status != 400 || out.Problem.Step != "each" {
		t.Errorf("4 items over a limit of 3 from the input: %d %+v", out.Status, out.Problem)
	}
	if out := runPlan(each, nil, map[string]any{"list": []any{1.0, 2.0, 3.0}}); out.Status != 200 {
		t.Errorf("3 items: %d %+v", out.Status, out.Problem)
	}
}

// pluginFunc stands for a sandboxed module in these executor tests.
type pluginFunc func(ctx context.Context, op string, in, cfg []byte) ([]byte, error)

func (f pluginFunc) Call(ctx context.Context, op string, in, cfg []byte) ([]byte, error) {
	return f(ctx, op, in, cfg)
}

func TestTransform(t *testing.T) {
	const plugin = "kind: Plugin\nname: upper\nmodule: upper.wasm\ndigest: sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + "\nconfig: {field: name, keep: true}\n---\n"
	compile := func(steps, output string) *Plan {
		t.Helper()
		set, err := spec.Load(map[string][]byte{"sources.yaml": []byte(sources), "flow.yaml": []byte(plugin + flowDoc(steps, output))})
		if err != nil {
			t.Fatal(err)
		}
		plans, err := Compile(set)
		if err != nil {
			t.Fatal(err)
		}
		return plans["f"]
	}
	upper := pluginFunc(func(ctx context.Context, op string, in, cfg []byte) ([]byte, error) {
		if op != "transform" || string(cfg) != `{"field":"name","keep":false}` {
			return nil, fmt.Errorf("op %q config %s", op, cfg)
		}
		var v map[string]any
		if err := json.Unmarshal(in, &v); err != nil {
			return nil, err
		}
		v["name"] = strings.ToUpper(v["name"].(string))
		return json.Marshal(v)
	})
	steps := "  - id: up\n    transform: {plugin: upper, input: input.body, config: {keep: false}}\n"
	rt := func(p Plugin) *Runtime { return &Runtime{Plugins: map[string]Plugin{"upper": p}} }
	run := func(p *Plan, pl Plugin) *Outcome {
		return p.Run(context.Background(), rt(pl), &Invocation{Input: expr.Input{Body: map[string]any{"name": "zon", "n": 1.0}}, TraceID: "t"})
	}
	if out := run(compile(steps, "steps.up.body"), upper); out.Status != 200 || string(out.Body) != `{"n":1,"name":"ZON"}` {
		t.Errorf("raw output: %d %s %+v", out.Status, out.Body, out.Problem)
	}
	if out := run(compile(steps, "{n: steps.up.body.name}"), upper); string(out.Body) != `{"n":"ZON"}` {
		t.Errorf("decoded output: %s %+v", out.Body, out.Problem)
	}
	failing := pluginFunc(func(context.Context, string, []byte, []byte) ([]byte, error) { return nil, errors.New("guest trap") })
	if out := run(compile(steps, "steps.up.body"), failing); out.Status != 502 || out.Problem.Step != "up" || strings.Contains(out.Problem.Detail, "trap") {
		t.Errorf("failing plugin: %d %+v", out.Status, out.Problem)
	}
	slowPlugin := pluginFunc(func(ctx context.Context, _ string, _, _ []byte) ([]byte, error) {
		return nil, connector.Sleep(ctx, time.Second)
	})
	timed := compile(strings.Replace(steps, "transform:", "timeout: 30ms\n    transform:", 1), "steps.up.body")
	if out := run(timed, slowPlugin); out.Status != 504 || out.Problem.Step != "up" {
		t.Errorf("slow plugin: %d %+v", out.Status, out.Problem)
	}
	if _, err := spec.Load(map[string][]byte{"f.yaml": []byte(strings.Replace(plugin, "sha256:0123", "sha1:0123", 1))}); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Errorf("bad digest accepted: %v", err)
	}
}
