package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// 1. Input validation (the issue's acceptance checks).

const validateFlow = `
kind: Flow
name: check
version: 1.0.0
method: POST
path: /check/v1/run
input:
  body:
    type: object
    required: [name]
    properties:
      name: {type: string}
      age: {type: integer, minimum: 0}
      address:
        type: object
        properties:
          city: {type: string}
  query:
    properties:
      lang: {type: string, enum: [nl, fr, de, en]}
      limit: {type: integer, maximum: 10}
output:
  name: input.body.name
  age: input.body.age
  lang: input.query.lang
  limit: input.query.limit
`

func TestE2EInputValidation(t *testing.T) {
	h := start(t, validateFlow, nil)
	type want struct{ typ, in, name string }
	cases := []struct {
		name   string
		query  string
		body   string
		issues []want
	}{
		{"unknown body field", "", `{"name":"x","field":1}`,
			[]want{{"unknownInput", "body", "/field"}}},
		{"unknown nested body field", "", `{"name":"x","address":{"city":"Gent","zip":"9000"}}`,
			[]want{{"unknownInput", "body", "/address/zip"}}},
		{"unknown query parameter", "?foo=1", `{"name":"x"}`,
			[]want{{"unknownInput", "query", "foo"}}},
		{"missing required", "", `{}`,
			[]want{{"requiredInput", "body", "/name"}}},
		{"empty body, required missing", "", ``,
			[]want{{"requiredInput", "body", "/name"}}},
		{"wrong type in body", "", `{"name":5}`,
			[]want{{"schemaViolation", "body", "/name"}}},
		{"wrong type in query", "?limit=abc", `{"name":"x"}`,
			[]want{{"schemaViolation", "query", "limit"}}},
		{"query out of range", "?limit=11", `{"name":"x"}`,
			[]want{{"schemaViolation", "query", "limit"}}},
		{"several issues at once", "?foo=1&lang=xx", `{"age":-1,"field":true}`,
			[]want{
				{"requiredInput", "body", "/name"},
				{"schemaViolation", "body", "/age"},
				{"unknownInput", "body", "/field"},
				{"unknownInput", "query", "foo"},
				{"schemaViolation", "query", "lang"},
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := *h
			h.t = t
			r := h.do(http.MethodPost, "/check/v1/run"+tc.query, []byte(tc.body))
			checkTraceID(t, r)
			p := h.problem(r, 400, typeBadRequest)
			if p.Instance != "/check/v1/run" {
				t.Errorf("instance %q, want the request path", p.Instance)
			}
			if len(p.Issues) != len(tc.issues) {
				t.Errorf("%d issues, want %d: %s", len(p.Issues), len(tc.issues), r.body)
			}
			for _, w := range tc.issues {
				found := false
				for _, is := range p.Issues {
					if is.Type == issuePrefix+w.typ && is.In == w.in && is.Name == w.name {
						found = true
					}
				}
				if !found {
					t.Errorf("no issue {%s in %s name %s} in %s", w.typ, w.in, w.name, r.body)
				}
			}
		})
	}

	t.Run("offending scalar value is reported", func(t *testing.T) {
		h := *h
		h.t = t
		p := h.problem(h.post("/check/v1/run", `{"name":5}`), 400, typeBadRequest)
		if len(p.Issues) != 1 || p.Issues[0].Value != float64(5) {
			t.Errorf("issues %+v, want one with value 5", p.Issues)
		}
	})

	t.Run("valid input, query typed by its schema", func(t *testing.T) {
		h := *h
		h.t = t
		r := h.post("/check/v1/run?lang=nl&limit=7", `{"name":"Zonnebloem","age":3}`)
		checkTraceID(t, r)
		if string(r.body) != `{"name":"Zonnebloem","age":3,"lang":"nl","limit":7}` {
			t.Errorf("body %s", r.body)
		}
	})
}

// TestE2EInputValidationNonFiniteNumber: a number too large for a float64
// (1e400) is a schemaViolation like any other; the problem must still list
// the issues (encoding/json cannot write +Inf as the issue's value).
func TestE2EInputValidationNonFiniteNumber(t *testing.T) {
	h := start(t, validateFlow, nil)
	r := h.post("/check/v1/run", `{"name":"x","age":1e400,"field":1}`)
	p := h.problem(r, 400, typeBadRequest)
	if len(p.Issues) != 2 {
		t.Errorf("BUG: %d issues, want 2 (schemaViolation /age and unknownInput /field): %s", len(p.Issues), r.body)
	}
}

// ---------------------------------------------------------------------------
// 2. Timeouts.

func TestE2EStepTimeout(t *testing.T) {
	slow := upstream(t, slowHandler(2*time.Second, `{"v":1}`))
	h := start(t, `
kind: Source
name: slowRegister
protocol: rest
rest:
  baseUrl: ${SLOW}
  operations:
    get: {method: GET, path: /thing}
---
kind: Flow
name: stepTimeout
version: 1.0.0
method: GET
path: /stepTimeout/v1/thing
steps:
  - id: fetchThing
    call: slowRegister.get
    timeout: 200ms
output:
  v: steps.fetchThing.body.v
---
kind: Flow
name: flowTimeout
version: 1.0.0
method: GET
path: /flowTimeout/v1/thing
timeout: 300ms
steps:
  - id: first
    call: slowRegister.get
  - id: second
    call: slowRegister.get
output:
  v: steps.second.body.v
`, map[string]string{"SLOW": slow.URL})

	t.Run("step timeout", func(t *testing.T) {
		h := *h
		h.t = t
		r := h.get("/stepTimeout/v1/thing")
		p := h.problem(r, 504, typeTimeout)
		if p.Step != "fetchThing" {
			t.Errorf("step %q, want fetchThing", p.Step)
		}
		if !strings.Contains(p.Detail, "fetchThing") {
			t.Errorf("detail %q does not name the step", p.Detail)
		}
		if r.elapsed > 200*time.Millisecond+800*time.Millisecond {
			t.Errorf("answered after %s, the step timeout is 200ms", r.elapsed)
		}
	})
	t.Run("flow timeout bounds steps without one", func(t *testing.T) {
		h := *h
		h.t = t
		r := h.get("/flowTimeout/v1/thing")
		p := h.problem(r, 504, typeTimeout)
		if p.Step != "first" {
			t.Errorf("step %q, want first", p.Step)
		}
		if !strings.Contains(p.Detail, "first") {
			t.Errorf("detail %q does not name the step", p.Detail)
		}
		if r.elapsed < 250*time.Millisecond || r.elapsed > 300*time.Millisecond+800*time.Millisecond {
			t.Errorf("answered after %s, the flow timeout is 300ms", r.elapsed)
		}
	})
}

// ---------------------------------------------------------------------------
// 3. Optional steps degrade to their default.

func TestE2EOptionalStepDefault(t *testing.T) {
	fail500 := upstream(t, jsonHandler(500, `{"error":"boom"}`))
	slow := upstream(t, slowHandler(2*time.Second, `{"v":"late"}`))
	malformed := upstream(t, jsonHandler(200, `{"v": "broken"`))
	good := upstream(t, jsonHandler(200, `{"v":"real","n":3}`))
	const tmpl = `
kind: Source
name: reg
protocol: rest
rest:
  baseUrl: ${UP}
  operations:
    get: {method: GET, path: /v}
---
kind: Flow
name: optional
version: 1.0.0
method: GET
path: /optional/v1/thing
steps:
  - id: extra
    call: reg.get
    optional: true
    timeout: 250ms
    default: {v: fallback, n: 0}
output:
  v: steps.extra.body.v
  n: steps.extra.body.n
  ok: steps.extra.ok
  failed: steps.extra.error != ""
  shout: upper(steps.extra.body.v)
`
	cases := []struct {
		name, url, want string
	}{
		{"source answers 500", fail500.URL, `{"v":"fallback","n":0,"ok":false,"failed":true,"shout":"FALLBACK"}`},
		{"source is down", deadURL(t), `{"v":"fallback","n":0,"ok":false,"failed":true,"shout":"FALLBACK"}`},
		{"source times out", slow.URL, `{"v":"fallback","n":0,"ok":false,"failed":true,"shout":"FALLBACK"}`},
		{"source answers malformed JSON", malformed.URL, `{"v":"fallback","n":0,"ok":false,"failed":true,"shout":"FALLBACK"}`},
		{"source answers", good.URL, `{"v":"real","n":3,"ok":true,"failed":false,"shout":"REAL"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, tmpl, map[string]string{"UP": tc.url})
			r := h.get("/optional/v1/thing")
			if r.status != 200 {
				t.Fatalf("BUG: status %d, want 200 with the optional step's default: %s", r.status, r.body)
			}
			jsonEq(t, r.body, tc.want)
			if r.elapsed > 1500*time.Millisecond {
				t.Errorf("answered after %s; the optional step's timeout is 250ms", r.elapsed)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 4. Body size and media type.

func TestE2EBodyLimits(t *testing.T) {
	h := start(t, `
kind: Flow
name: small
version: 1.0.0
method: POST
path: /small/v1/echo
maxBodySize: 1KiB
input:
  body: {type: object, properties: {s: {type: string}}}
output: {n: len(input.body.s ?? "")}
---
kind: Flow
name: normal
version: 1.0.0
method: POST
path: /normal/v1/echo
input:
  body: {type: object, properties: {s: {type: string}}}
output: {n: len(input.body.s ?? "")}
---
kind: Flow
name: big
version: 1.0.0
method: POST
path: /big/v1/echo
maxBodySize: 2MiB
input:
  body: {type: object, properties: {s: {type: string}}}
output: {n: len(input.body.s ?? "")}
`, nil)
	body := func(n int) string { return `{"s":"` + strings.Repeat("a", n) + `"}` }
	cases := []struct {
		name, path, body, ctype string
		status                  int
		typ                     string
	}{
		{"within the flow's limit", "/small/v1/echo", body(900), contentJSON, 200, ""},
		{"over the flow's maxBodySize", "/small/v1/echo", body(2000), contentJSON, 413, typeTooLarge},
		{"over the default 1MiB", "/normal/v1/echo", body(1<<20 + 100), contentJSON, 413, typeTooLarge},
		{"a flow's larger limit", "/big/v1/echo", body(1<<20 + 100), contentJSON, 200, ""},
		{"text/plain", "/small/v1/echo", body(10), "text/plain", 415, typeUnsupported},
		{"no content type", "/small/v1/echo", body(10), "", 415, typeUnsupported},
		{"form", "/small/v1/echo", "s=a", "application/x-www-form-urlencoded", 415, typeUnsupported},
		{"json with charset", "/small/v1/echo", body(10), "application/json; charset=utf-8", 200, ""},
		{"+json suffix", "/small/v1/echo", body(10), "application/merge-patch+json", 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := *h
			h.t = t
			req, _ := http.NewRequest(http.MethodPost, h.base+tc.path, strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := h.client.Do(req)
			if err != nil {
				t.Fatalf("request: %v (the gateway must answer 413, not drop the connection)", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r := reply{status: resp.StatusCode, header: resp.Header, body: b}
			checkTraceID(t, r)
			if tc.typ == "" {
				if r.status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.status, b)
				}
				return
			}
			h.problem(r, tc.status, tc.typ)
		})
	}

	// Over the largest limit of all flows, fiber refuses the body by its
	// Content-Length, before reading it.
	t.Run("over the global limit", func(t *testing.T) {
		h := *h
		h.t = t
		r := h.rawPost("/normal/v1/echo", 3<<20, `{"s":"aaaa`)
		checkTraceID(t, r)
		h.problem(r, 413, typeTooLarge)
	})
	t.Run("over the global limit, a net/http client gets the 413", func(t *testing.T) {
		h := *h
		h.t = t
		big := body(3 << 20)
		var failures []string
		for range 20 {
			req, _ := http.NewRequest(http.MethodPost, h.base+"/normal/v1/echo", strings.NewReader(big))
			req.Header.Set("Content-Type", contentJSON)
			resp, err := h.client.Do(req)
			if err != nil {
				failures = append(failures, err.Error())
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 413 {
				failures = append(failures, resp.Status)
			}
		}
		// fasthttp answers 413 by the announced Content-Length and closes the
		// connection at once, without reading (draining) the body: the
		// client's kernel then often gets a RST before the client has read
		// the 413. Whether it shows depends on timing and socket buffers, so
		// this reports the bug without failing the package when it shows.
		if len(failures) > 0 {
			t.Skipf("BUG: %d of 20 requests over the global body limit got no 413 but: %s", len(failures), failures[0])
		}
	})
}

// ---------------------------------------------------------------------------
// 5. Tracing.

func TestE2ETracing(t *testing.T) {
	var mu sync.Mutex
	var received []string
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		received = append(received, r.Header.Get(headerTrace))
		mu.Unlock()
		w.Header().Set(headerTrace, "source-own-id-1")
		jsonHandler(200, `{"v":1}`)(w, r)
	})
	h := start(t, `
kind: Source
name: reg
protocol: rest
rest:
  baseUrl: ${UP}
  healthPath: /health
  operations:
    get: {method: GET, path: /v}
---
kind: Flow
name: traced
version: 1.0.0
method: POST
path: /traced/v1/run
input:
  body: {type: object, properties: {x: {type: string}}}
steps:
  - id: a
    call: reg.get
  - id: b
    call: reg.get
output:
  v: steps.a.body.v
  ta: steps.a.traceId
  tb: steps.b.traceId
  sourceTrace: steps.a.headers["Belgov-Trace-Id"]
`, map[string]string{"UP": up.URL}, withHealthTTL(time.Nanosecond))

	seen := map[string]string{}
	note := func(t *testing.T, what string, r reply) string {
		t.Helper()
		id := checkTraceID(t, r)
		if prev, dup := seen[id]; dup {
			t.Errorf("trace id %s of %s was already used by %s", id, what, prev)
		}
		seen[id] = what
		return id
	}

	kinds := []struct {
		name string
		do   func(hdr ...string) reply
	}{
		{"success", func(hdr ...string) reply { return h.post("/traced/v1/run", `{"x":"y"}`, hdr...) }},
		{"problem", func(hdr ...string) reply { return h.post("/traced/v1/run", `{"z":1}`, hdr...) }},
		{"unknown path", func(hdr ...string) reply { return h.get("/nothing/v1/here", hdr...) }},
		{"wrong method", func(hdr ...string) reply { return h.get("/traced/v1/run", hdr...) }},
		{"health", func(hdr ...string) reply { return h.get("/health", hdr...) }},
		{"too large", func(hdr ...string) reply { return h.rawPost("/traced/v1/run", 2<<20, `{"x":"`, hdr...) }},
	}
	callers := []struct {
		name, id string
		echoed   bool
	}{
		{"no caller id", "", false},
		{"valid caller id", "caller-ID_1.2", true},
		{"36 characters", strings.Repeat("a", 36), true},
		{"too long", strings.Repeat("a", 37), false},
		{"with spaces", "has spaces in it", false},
		{"with a colon", "a:b", false},
	}
	for _, k := range kinds {
		for _, c := range callers {
			t.Run(k.name+"/"+c.name, func(t *testing.T) {
				var r reply
				if c.id == "" {
					r = k.do()
				} else {
					r = k.do(headerTrace, c.id)
				}
				id := note(t, k.name, r)
				if id == c.id {
					t.Errorf("the caller's id was reused as ours")
				}
				rel, has := r.header[http.CanonicalHeaderKey(headerRelated)]
				switch {
				case c.echoed && (len(rel) != 1 || rel[0] != c.id):
					t.Errorf("BelGov-Related-Trace-Id %q, want %q", rel, c.id)
				case !c.echoed && has:
					t.Errorf("BelGov-Related-Trace-Id %q echoed for an invalid caller id %q", rel, c.id)
				}
			})
		}
	}

	t.Run("each source call gets its own id", func(t *testing.T) {
		before := len(h.obs.all())
		mu.Lock()
		received = nil
		mu.Unlock()
		r := h.post("/traced/v1/run", `{}`)
		id := note(t, "success", r)
		var out map[string]any
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		got := append([]string(nil), received...)
		mu.Unlock()
		if len(got) != 2 {
			t.Fatalf("the source received %d calls, want 2", len(got))
		}
		for _, g := range got {
			if !traceIDRe.MatchString(g) {
				t.Errorf("source received BelGov-Trace-Id %q", g)
			}
			if g == id {
				t.Errorf("the source received the response's own trace id")
			}
		}
		if got[0] == got[1] {
			t.Errorf("two calls share the trace id %s", got[0])
		}
		if out["ta"] != got[0] || out["tb"] != got[1] {
			t.Errorf("steps.x.traceId %v/%v, the source received %v", out["ta"], out["tb"], got)
		}
		if out["sourceTrace"] != "source-own-id-1" {
			t.Errorf("steps.a.headers did not carry the source's trace id: %v", out["sourceTrace"])
		}
		calls := h.obs.all()[before:]
		if len(calls) != 2 {
			t.Fatalf("observer saw %d calls, want 2", len(calls))
		}
		for i, c := range calls {
			if c.ParentTraceID != id {
				t.Errorf("call %d: ParentTraceID %q, want the response's %q", i, c.ParentTraceID, id)
			}
			if c.TraceID != got[i] {
				t.Errorf("call %d: TraceID %q, the source received %q", i, c.TraceID, got[i])
			}
			if c.SourceTraceID != "source-own-id-1" {
				t.Errorf("call %d: SourceTraceID %q", i, c.SourceTraceID)
			}
			if c.Flow != "traced" || c.Source != "reg" || c.Operation != "get" || c.Status != 200 || c.Attempts != 1 || c.Err != nil {
				t.Errorf("call %d: %+v", i, c)
			}
		}
		if calls[0].Step != "a" || calls[1].Step != "b" {
			t.Errorf("steps %q, %q", calls[0].Step, calls[1].Step)
		}
	})
}

// ---------------------------------------------------------------------------
// 6. Parallel and foreach.

func TestE2EParallelIsConcurrent(t *testing.T) {
	a := upstream(t, slowHandler(200*time.Millisecond, `{"v":"a"}`))
	b := upstream(t, slowHandler(200*time.Millisecond, `{"v":"b"}`))
	c := upstream(t, slowHandler(200*time.Millisecond, `{"v":"c"}`))
	h := start(t, `
kind: Source
name: ra
protocol: rest
rest: {baseUrl: "${A}", operations: {get: {method: GET, path: /a}}}
---
kind: Source
name: rb
protocol: rest
rest: {baseUrl: "${B}", operations: {get: {method: GET, path: /b}}}
---
kind: Source
name: rc
protocol: rest
rest: {baseUrl: "${C}", operations: {get: {method: GET, path: /c}}}
---
kind: Flow
name: par
version: 1.0.0
method: GET
path: /par/v1/all
steps:
  - id: all
    parallel:
      - id: a
        call: ra.get
      - id: b
        call: rb.get
      - id: c
        steps:
          - id: c1
            call: rc.get
          - id: c2
            set: {v: steps.c1.body.v + "!"}
output:
  a: steps.a.body.v
  b: steps.b.body.v
  c: steps.c2.body.v
`, map[string]string{"A": a.URL, "B": b.URL, "C": c.URL})
	for i := range 3 {
		r := h.get("/par/v1/all")
		if string(r.body) != `{"a":"a","b":"b","c":"c!"}` {
			t.Fatalf("body %s", r.body)
		}
		if r.elapsed >= 500*time.Millisecond {
			var calls []string
			for _, c := range h.obs.all() {
				calls = append(calls, fmt.Sprintf("%s:%s", c.Step, c.Duration))
			}
			t.Errorf("run %d took %s: three 200ms branches did not run concurrently (calls so far %v)", i, r.elapsed, calls)
		}
	}
}

func TestE2EParallelRequiredBranchFails(t *testing.T) {
	slow := upstream(t, slowHandler(1500*time.Millisecond, `{"v":"slow"}`))
	broken := upstream(t, jsonHandler(500, `{}`))
	h := start(t, `
kind: Source
name: slowReg
protocol: rest
rest: {baseUrl: "${SLOW}", operations: {get: {method: GET, path: /s}}}
---
kind: Source
name: brokenReg
protocol: rest
rest: {baseUrl: "${BROKEN}", operations: {get: {method: GET, path: /b}}}
---
kind: Flow
name: parfail
version: 1.0.0
method: GET
path: /parfail/v1/all
steps:
  - id: all
    parallel:
      - id: slowOne
        call: slowReg.get
      - id: optionalBroken
        call: brokenReg.get
        optional: true
      - id: brokenOne
        call: brokenReg.get
      - id: slowTwo
        call: slowReg.get
output:
  a: steps.slowOne.body.v
`, map[string]string{"SLOW": slow.URL, "BROKEN": broken.URL})
	r := h.get("/parfail/v1/all")
	p := h.problem(r, 502, typeBadGateway)
	if p.Step != "brokenOne" {
		t.Errorf("step %q, want brokenOne", p.Step)
	}
	if !strings.Contains(p.Detail, "brokenOne") {
		t.Errorf("detail %q does not name the step", p.Detail)
	}
	// README: "the first required failure cancels the others".
	if r.elapsed > 1000*time.Millisecond {
		t.Errorf("BUG: the failing branch answered at once but the flow took %s: the other branches were not cancelled", r.elapsed)
	}
}

func TestE2EForeachConcurrencyAndOrder(t *testing.T) {
	var inFlight, maxInFlight, total atomic.Int32
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		total.Add(1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		id, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/items/"))
		// earlier items answer later, so completion order differs from item order
		sleepCtx(r.Context(), time.Duration(30+(12-id)*6)*time.Millisecond)
		jsonHandler(200, fmt.Sprintf(`{"id":%d,"square":%d}`, id, id*id))(w, r)
	})
	h := start(t, `
kind: Source
name: reg
protocol: rest
rest:
  baseUrl: ${UP}
  operations:
    item: {method: GET, path: "/items/{id}"}
---
kind: Flow
name: loop
version: 1.0.0
method: POST
path: /loop/v1/run
input:
  body:
    type: object
    required: [items]
    properties:
      items: {type: array, items: {type: integer}}
steps:
  - id: each
    foreach:
      items: input.body.items
      concurrency: 3
      steps:
        - id: one
          call: reg.item
          with: {path: {id: item}}
      output:
        i: index
        item: item
        square: steps.one.body.square
  - id: plain
    foreach:
      items: input.body.items
      concurrency: 3
      steps:
        - id: two
          set: {double: item * 2}
output:
  list: steps.each.body
  doubles: 'map(steps.plain.body, #.double)'
`, map[string]string{"UP": up.URL})
	items := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	b, _ := json.Marshal(map[string]any{"items": items})
	r := h.post("/loop/v1/run", string(b))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var want bytes.Buffer
	want.WriteString(`{"list":[`)
	for i, it := range items {
		if i > 0 {
			want.WriteByte(',')
		}
		fmt.Fprintf(&want, `{"i":%d,"item":%d,"square":%d}`, i, it, it*it)
	}
	want.WriteString(`],"doubles":[`)
	for i, it := range items {
		if i > 0 {
			want.WriteByte(',')
		}
		fmt.Fprintf(&want, `%d`, 2*it)
	}
	want.WriteString(`]}`)
	if string(r.body) != want.String() {
		t.Errorf("body\n got %s\nwant %s", r.body, want.String())
	}
	if got := maxInFlight.Load(); got > 3 {
		t.Errorf("%d upstream requests in flight at once, the foreach concurrency is 3", got)
	} else if got < 2 {
		t.Errorf("at most %d request in flight: the foreach did not run concurrently", got)
	}
	if total.Load() != int32(len(items)) {
		t.Errorf("%d upstream calls, want %d", total.Load(), len(items))
	}

	t.Run("empty list", func(t *testing.T) {
		h := *h
		h.t = t
		r := h.post("/loop/v1/run", `{"items":[]}`)
		if string(r.body) != `{"list":[],"doubles":[]}` {
			t.Errorf("status %d body %s", r.status, r.body)
		}
	})
}

func TestE2EForeachFailingItem(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/items/3" {
			jsonHandler(404, `{}`)(w, r)
			return
		}
		slowHandler(1500*time.Millisecond, `{}`)(w, r)
	})
	h := start(t, `
kind: Source
name: reg
protocol: rest
rest:
  baseUrl: ${UP}
  operations:
    item: {method: GET, path: "/items/{id}"}
---
kind: Flow
name: loop
version: 1.0.0
method: POST
path: /loop/v1/run
input:
  body: {type: object, properties: {items: {type: array, items: {type: integer}}}}
steps:
  - id: each
    foreach:
      items: input.body.items
      concurrency: 2
      steps:
        - id: lookup
          call: reg.item
          with: {path: {id: item}}
output:
  list: steps.each.body
`, map[string]string{"UP": up.URL})
	r := h.post("/loop/v1/run", `{"items":[1,3,5,7]}`)
	p := h.problem(r, 502, typeBadGateway)
	if p.Step != "lookup" {
		t.Errorf("step %q, want lookup", p.Step)
	}
	if r.elapsed > 1000*time.Millisecond {
		t.Errorf("BUG: item 3 failed at once but the foreach took %s: the other iterations were not cancelled", r.elapsed)
	}
}
