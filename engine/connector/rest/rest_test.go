package rest

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector"
)

// seen is what the echo server reports about the request it received.
type seen struct {
	Method     string            `json:"method"`
	RequestURI string            `json:"uri"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

// echoServer answers every request with a JSON description of it.
func echoServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := seen{Method: r.Method, RequestURI: r.RequestURI, Headers: map[string]string{}, Body: string(body)}
		for k, v := range r.Header {
			s.Headers[k] = strings.Join(v, ",")
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.Source == "" {
		cfg.Source = "test"
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ptr[T any](v T) *T { return &v }

// wantKind asserts err is a *connector.Error of the given kind whose message
// leaks no address.
func wantKind(t *testing.T, err error, kind error, addr string) {
	t.Helper()
	var ce *connector.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *connector.Error", err, err)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q: kind %v, want %v (cause: %v)", err, ce.Kind, kind, ce.Err)
	}
	if addr == "" {
		return
	}
	host, port, _ := net.SplitHostPort(addr)
	if msg := err.Error(); strings.Contains(msg, host) || strings.Contains(msg, port) || strings.Contains(msg, "http") {
		t.Fatalf("error message %q leaks the address %s", msg, addr)
	}
}

func hostOf(srv *httptest.Server) string { return srv.Listener.Addr().String() }

func TestCallBuildsRequest(t *testing.T) {
	srv := echoServer(t)
	tests := []struct {
		name    string
		base    string // path appended to the server URL
		headers map[string]string
		op      Operation
		req     connector.Request
		uri     string
		method  string
		wantHdr map[string]string // "" value: header must be absent
		body    string
	}{
		{
			name:   "path escaping",
			op:     Operation{Method: "GET", Path: "/persons/{ssin}/docs/{doc}"},
			req:    connector.Request{Path: map[string]string{"ssin": "a/b c", "doc": "x?y#z%é+"}},
			uri:    "/persons/a%2Fb%20c/docs/x%3Fy%23z%25%C3%A9%2B",
			method: "GET",
		},
		{
			name:   "base path prefix",
			base:   "/api/v1/",
			op:     Operation{Method: "get", Path: "/persons/{ssin}"},
			req:    connector.Request{Path: map[string]string{"ssin": "85073003328"}},
			uri:    "/api/v1/persons/85073003328",
			method: "GET",
		},
		{
			name:   "placeholder inside a segment",
			op:     Operation{Method: "GET", Path: "/files/{name}.json"},
			req:    connector.Request{Path: map[string]string{"name": "a.b"}},
			uri:    "/files/a.b.json",
			method: "GET",
		},
		{
			name:   "static query only",
			op:     Operation{Method: "GET", Path: "/q", Query: map[string]string{"b": "1", "a": "x&y"}},
			uri:    "/q?a=x%26y&b=1",
			method: "GET",
		},
		{
			name:   "query merged, request wins, sorted",
			op:     Operation{Method: "GET", Path: "/q", Query: map[string]string{"b": "1", "a": "2", "d": "static"}},
			req:    connector.Request{Query: map[string]string{"a": "3", "c": "x y", "ä": "/"}},
			uri:    "/q?a=3&b=1&c=x+y&d=static&%C3%A4=%2F",
			method: "GET",
		},
		{
			name:    "header precedence",
			headers: map[string]string{"X-Level": "source", "X-Source": "s", "x-case": "source"},
			op: Operation{Method: "GET", Path: "/h",
				Headers: map[string]string{"X-Level": "op", "X-Op": "o", "X-CASE": "op"}},
			req: connector.Request{Headers: map[string]string{"x-level": "req", "Accept": "text/xml"}},
			uri: "/h", method: "GET",
			wantHdr: map[string]string{
				"X-Level": "req", "X-Source": "s", "X-Op": "o", "X-Case": "op",
				"Accept": "application/json", "Belgov-Trace-Id": "", "Content-Type": "",
			},
		},
		{
			name: "trace id",
			op:   Operation{Method: "GET", Path: "/t"},
			req:  connector.Request{TraceID: "3f1c2a9e-0b7d-4d7e-9d2a-5a1e6f0c8b11"},
			uri:  "/t", method: "GET",
			wantHdr: map[string]string{"Belgov-Trace-Id": "3f1c2a9e-0b7d-4d7e-9d2a-5a1e6f0c8b11"},
		},
		{
			name: "json body",
			op:   Operation{Method: "POST", Path: "/p"},
			req:  connector.Request{Body: []byte(`{"ssin":"85073003328"}`)},
			uri:  "/p", method: "POST",
			wantHdr: map[string]string{"Content-Type": "application/json", "Content-Length": "22"},
			body:    `{"ssin":"85073003328"}`,
		},
		{
			name: "empty but non-nil body",
			op:   Operation{Method: "PUT", Path: "/p"},
			req:  connector.Request{Body: []byte{}},
			uri:  "/p", method: "PUT",
			wantHdr: map[string]string{"Content-Type": "application/json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, Config{
				BaseURL:    srv.URL + tt.base,
				Headers:    tt.headers,
				Operations: map[string]Operation{"op": tt.op},
			})
			req := tt.req
			req.Operation = "op"
			resp, err := c.Call(context.Background(), &req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != 200 || resp.Attempts != 1 {
				t.Fatalf("status %d attempts %d", resp.Status, resp.Attempts)
			}
			if ct := resp.Headers.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("response Content-Type %q", ct)
			}
			var s seen
			if err := json.Unmarshal(resp.Body, &s); err != nil {
				t.Fatal(err)
			}
			if s.RequestURI != tt.uri {
				t.Errorf("uri %q, want %q", s.RequestURI, tt.uri)
			}
			if s.Method != tt.method {
				t.Errorf("method %q, want %q", s.Method, tt.method)
			}
			if s.Body != tt.body {
				t.Errorf("body %q, want %q", s.Body, tt.body)
			}
			if s.Headers["Accept"] != "application/json" {
				t.Errorf("Accept %q", s.Headers["Accept"])
			}
			for k, want := range tt.wantHdr {
				if got := s.Headers[k]; got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestQueryEncodingMatchesURLValues(t *testing.T) {
	static := map[string]string{"z": "1", "a b": "c&d", "k": "ü"}
	req := map[string]string{"k": "=?", "m": "x+y/z"}
	params, enc := compileQuery(static)
	got := string(appendQuery(nil, params, enc, req))

	want := url.Values{}
	for k, v := range static {
		want.Set(k, v)
	}
	for k, v := range req {
		want.Set(k, v)
	}
	if got != "?"+want.Encode() {
		t.Fatalf("query %q, want %q", got, "?"+want.Encode())
	}
}

func TestCallRequestErrors(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	c := newClient(t, Config{BaseURL: srv.URL, Operations: map[string]Operation{
		"get": {Method: "GET", Path: "/persons/{ssin}"},
	}})
	tests := []struct {
		name string
		req  connector.Request
		kind error
	}{
		{"unknown operation", connector.Request{Operation: "nope"}, connector.ErrUnknownOp},
		{"missing placeholder", connector.Request{Operation: "get"}, connector.ErrBadRequest},
		{"empty placeholder", connector.Request{Operation: "get", Path: map[string]string{"ssin": ""}}, connector.ErrBadRequest},
		{"dot segment", connector.Request{Operation: "get", Path: map[string]string{"ssin": ".."}}, connector.ErrBadRequest},
		{"header injection", connector.Request{Operation: "get", Path: map[string]string{"ssin": "1"},
			Headers: map[string]string{"X-A": "v\r\nX-Evil: 1"}}, connector.ErrBadRequest},
		{"reserved header", connector.Request{Operation: "get", Path: map[string]string{"ssin": "1"},
			Headers: map[string]string{"host": "elsewhere"}}, connector.ErrBadRequest},
		{"bad header name", connector.Request{Operation: "get", Path: map[string]string{"ssin": "1"},
			Headers: map[string]string{"X A": "v"}}, connector.ErrBadRequest},
		{"trace id injection", connector.Request{Operation: "get", Path: map[string]string{"ssin": "1"},
			TraceID: "a\nb"}, connector.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Call(context.Background(), &tt.req)
			if resp != nil {
				t.Fatalf("unexpected response %+v", resp)
			}
			wantKind(t, err, tt.kind, hostOf(srv))
			if strings.Contains(err.Error(), "elsewhere") {
				t.Fatalf("error %q repeats a header value", err)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("server was hit %d times", n)
	}
}

func TestNonSuccessIsResponse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		h := w.Header()
		h.Set("Content-Type", "application/problem+json")
		h.Set("ETag", `"v1"`)
		h.Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		h.Set("BelGov-Trace-Id", "upstream-trace")
		h.Set("X-Internal", "dropped")
		if status/100 == 3 {
			h.Set("Location", "/elsewhere")
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"status":%d}`, status)
	}))
	defer srv.Close()
	c := newClient(t, Config{BaseURL: srv.URL, Operations: map[string]Operation{
		"get": {Method: "GET", Path: "/{status}"},
	}})
	for _, status := range []int{200, 301, 400, 404, 500, 503} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			resp, err := c.Call(context.Background(), &connector.Request{Operation: "get", Path: map[string]string{"status": strconv.Itoa(status)}})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != status || string(resp.Body) != fmt.Sprintf(`{"status":%d}`, status) {
				t.Fatalf("got %d %q", resp.Status, resp.Body)
			}
			want := map[string]string{
				"Content-Type":    "application/problem+json",
				"Etag":            `"v1"`,
				"Last-Modified":   "Mon, 02 Jan 2006 15:04:05 GMT",
				"Belgov-Trace-Id": "upstream-trace",
			}
			if status == 301 {
				want["Location"] = "/elsewhere"
			}
			if len(resp.Headers) != len(want) {
				t.Errorf("headers %v, want %v", resp.Headers, want)
			}
			for k, v := range want {
				if resp.Headers.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, resp.Headers.Get(k), v)
				}
			}
		})
	}
}

// slowServer holds each request until the client goes away or the test ends.
func slowServer(t *testing.T) *httptest.Server {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv
}

func TestTimeouts(t *testing.T) {
	srv := slowServer(t)
	tests := []struct {
		name     string
		timeout  time.Duration
		opTO     time.Duration
		ctxTO    time.Duration
		min, max time.Duration
	}{
		{"source timeout", 150 * time.Millisecond, 0, 0, 140 * time.Millisecond, time.Second},
		{"operation timeout wins", 5 * time.Second, 100 * time.Millisecond, 0, 90 * time.Millisecond, time.Second},
		{"context deadline wins", 5 * time.Second, 0, 120 * time.Millisecond, 110 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, Config{BaseURL: srv.URL, Timeout: tt.timeout, Operations: map[string]Operation{
				"get": {Method: "GET", Path: "/slow", Timeout: tt.opTO},
			}})
			ctx := context.Background()
			if tt.ctxTO > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTO)
				defer cancel()
			}
			start := time.Now()
			_, err := c.Call(ctx, &connector.Request{Operation: "get"})
			elapsed := time.Since(start)
			wantKind(t, err, connector.ErrTimeout, hostOf(srv))
			if elapsed < tt.min || elapsed > tt.max {
				t.Fatalf("timed out after %s, want between %s and %s", elapsed, tt.min, tt.max)
			}
		})
	}
}

func TestContextAlreadyDone(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	c := newClient(t, Config{BaseURL: srv.URL, Operations: map[string]Operation{"get": {Method: "GET", Path: "/"}}})

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()

	_, err := c.Call(cancelled, &connector.Request{Operation: "get"})
	wantKind(t, err, context.Canceled, hostOf(srv))
	_, err = c.Call(expired, &connector.Request{Operation: "get"})
	wantKind(t, err, connector.ErrTimeout, hostOf(srv))
	if err := c.Check(expired); !errors.Is(err, connector.ErrTimeout) {
		t.Fatalf("check: %v", err)
	}
	if hits.Load() != 0 {
		t.Fatal("a call with a finished context reached the server")
	}
}

// refusedAddr returns a loopback address nobody listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestConnectionRefused(t *testing.T) {
	addr := refusedAddr(t)
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			c := newClient(t, Config{BaseURL: scheme + "://" + addr + "/api", Timeout: 2 * time.Second,
				Retry:      Retry{Attempts: 3, Backoff: time.Millisecond},
				Operations: map[string]Operation{"get": {Method: "GET", Path: "/x"}}})
			start := time.Now()
			_, err := c.Call(context.Background(), &connector.Request{Operation: "get"})
			wantKind(t, err, connector.ErrUnavailable, addr)
			if !strings.Contains(err.Error(), "connection refused") {
				t.Errorf("error %q does not say why", err)
			}
			if time.Since(start) > time.Second {
				t.Errorf("refused call took %s", time.Since(start))
			}
			err = c.Check(context.Background())
			wantKind(t, err, connector.ErrUnavailable, addr)
		})
	}
}

func TestMaxResponseSize(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if r.URL.Query().Get("chunked") != "" {
			w.(http.Flusher).Flush() // no Content-Length: chunked encoding
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		_, _ = w.Write([]byte(strings.Repeat("x", n)))
	}))
	defer srv.Close()
	c := newClient(t, Config{BaseURL: srv.URL, MaxResponseBytes: 1024, Operations: map[string]Operation{
		"get":   {Method: "GET", Path: "/"},
		"small": {Method: "GET", Path: "/", MaxResponseBytes: 100},
		"large": {Method: "GET", Path: "/", MaxResponseBytes: 4096},
	}})
	tests := []struct {
		op      string
		n       int
		chunked bool
		tooBig  bool
	}{
		{"get", 1024, false, false},
		{"get", 1025, false, true},
		{"get", 2048, true, true},
		{"get", 1000, true, false},
		{"small", 100, false, false},
		{"small", 200, false, true},
		{"small", 200, true, true},
		{"large", 4000, false, false},
		{"large", 5000, false, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d/chunked=%v", tt.op, tt.n, tt.chunked), func(t *testing.T) {
			q := map[string]string{"n": strconv.Itoa(tt.n)}
			if tt.chunked {
				q["chunked"] = "1"
			}
			resp, err := c.Call(context.Background(), &connector.Request{Operation: tt.op, Query: q})
			if tt.tooBig {
				wantKind(t, err, connector.ErrTooLarge, hostOf(srv))
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Body) != tt.n {
				t.Fatalf("body %d bytes, want %d", len(resp.Body), tt.n)
			}
		})
	}
}

// scriptServer answers the i-th request (0-based) with statuses[i], the last
// one repeating; it counts requests.
type scriptServer struct {
	*httptest.Server
	hits atomic.Int32
}

func newScriptServer(t *testing.T, retryAfter string, statuses ...int) *scriptServer {
	t.Helper()
	s := &scriptServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(s.hits.Add(1)) - 1
		status := statuses[min(i, len(statuses)-1)]
		if status >= 500 && retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"attempt":%d}`, i+1)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestRetry(t *testing.T) {
	fast := Retry{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	tests := []struct {
		name     string
		retry    Retry
		op       Operation
		statuses []int
		status   int
		attempts int
	}{
		{"GET 503 twice then 200", fast, Operation{Method: "GET"}, []int{503, 503, 200}, 200, 3},
		{"GET gives up after attempts", fast, Operation{Method: "GET"}, []int{503}, 503, 3},
		{"GET 429 is retried by default", fast, Operation{Method: "GET"}, []int{429, 200}, 200, 2},
		{"GET 400 is not retried", fast, Operation{Method: "GET"}, []int{400, 200}, 400, 1},
		{"GET 500 is not retried by default", fast, Operation{Method: "GET"}, []int{500, 200}, 500, 1},
		{"custom OnStatus", Retry{Attempts: 3, Backoff: time.Millisecond, OnStatus: []int{500}},
			Operation{Method: "GET"}, []int{500, 503, 200}, 503, 2},
		{"POST is not retried", fast, Operation{Method: "POST"}, []int{503, 503, 200}, 503, 1},
		{"PATCH is not retried", fast, Operation{Method: "PATCH"}, []int{503, 200}, 503, 1},
		{"POST marked idempotent is retried", fast, Operation{Method: "POST", Idempotent: ptr(true)}, []int{503, 503, 200}, 200, 3},
		{"GET marked non-idempotent is not retried", fast, Operation{Method: "GET", Idempotent: ptr(false)}, []int{503, 200}, 503, 1},
		{"PUT and DELETE are idempotent", fast, Operation{Method: "DELETE"}, []int{502, 504, 200}, 200, 3},
		{"operation retry overrides source", Retry{}, Operation{Method: "GET", Retry: &fast}, []int{503, 200}, 200, 2},
		{"operation can switch retries off", fast, Operation{Method: "GET", Retry: &Retry{Attempts: 1}}, []int{503, 200}, 503, 1},
		{"no retry by default", Retry{}, Operation{Method: "GET"}, []int{503, 200}, 503, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, "", tt.statuses...)
			op := tt.op
			op.Path = "/r"
			c := newClient(t, Config{BaseURL: srv.URL, Retry: tt.retry, Operations: map[string]Operation{"op": op}})
			body := []byte(nil)
			if op.Method == "POST" || op.Method == "PATCH" {
				body = []byte(`{"x":1}`)
			}
			resp, err := c.Call(context.Background(), &connector.Request{Operation: "op", Body: body})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.status || resp.Attempts != tt.attempts {
				t.Fatalf("status %d attempts %d, want %d and %d", resp.Status, resp.Attempts, tt.status, tt.attempts)
			}
			if got := int(srv.hits.Load()); got != tt.attempts {
				t.Fatalf("server saw %d requests, want %d", got, tt.attempts)
			}
			if want := fmt.Sprintf(`{"attempt":%d}`, tt.attempts); string(resp.Body) != want {
				t.Fatalf("body %q, want the last attempt's %q", resp.Body, want)
			}
		})
	}
}

func TestRetryAfterTransportError(t *testing.T) {
	var hits atomic.Int32
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			select { // the first attempt times out
			case <-r.Context().Done():
			case <-done:
			}
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	defer close(done)
	retry := Retry{Attempts: 2, Backoff: time.Millisecond}
	c := newClient(t, Config{BaseURL: srv.URL, Timeout: 100 * time.Millisecond, Retry: retry, Operations: map[string]Operation{
		"get":  {Method: "GET", Path: "/"},
		"post": {Method: "POST", Path: "/"},
	}})
	resp, err := c.Call(context.Background(), &connector.Request{Operation: "get"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Attempts != 2 || resp.Status != 200 {
		t.Fatalf("attempts %d status %d", resp.Attempts, resp.Status)
	}

	hits.Store(0)
	_, err = c.Call(context.Background(), &connector.Request{Operation: "post", Body: []byte(`{}`)})
	wantKind(t, err, connector.ErrTimeout, hostOf(srv))
	if hits.Load() != 1 {
		t.Fatalf("a timed-out POST was sent %d times", hits.Load())
	}
}

func TestRetryStopsAtContextDeadline(t *testing.T) {
	srv := newScriptServer(t, "", 503)
	c := newClient(t, Config{BaseURL: srv.URL,
		Retry:      Retry{Attempts: 50, Backoff: 200 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
		Operations: map[string]Operation{"get": {Method: "GET", Path: "/"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp, err := c.Call(ctx, &connector.Request{Operation: "get"})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 503 || resp.Attempts >= 50 || resp.Attempts != int(srv.hits.Load()) {
		t.Fatalf("status %d after %d attempts (server saw %d)", resp.Status, resp.Attempts, srv.hits.Load())
	}
	if elapsed > 310*time.Millisecond+250*time.Millisecond { // margin for a loaded CI machine
		t.Fatalf("call returned after %s, past the 300ms deadline", elapsed)
	}

	// A Retry-After longer than the time left ends the call at once.
	srv2 := newScriptServer(t, "1", 503, 200)
	c2 := newClient(t, Config{BaseURL: srv2.URL,
		Retry:      Retry{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Second},
		Operations: map[string]Operation{"get": {Method: "GET", Path: "/"}}})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	start = time.Now()
	resp, err = c2.Call(ctx2, &connector.Request{Operation: "get"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 503 || resp.Attempts != 1 || time.Since(start) > 450*time.Millisecond { // not the 1s Retry-After
		t.Fatalf("status %d attempts %d after %s", resp.Status, resp.Attempts, time.Since(start))
	}
}

func TestRetryAfterHeader(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		maxBackoff time.Duration
		min, max   time.Duration
	}{
		{"absent: jittered backoff", "", 300 * time.Millisecond, 0, 150 * time.Millisecond},
		{"seconds, capped by MaxBackoff", "10", 300 * time.Millisecond, 290 * time.Millisecond, 800 * time.Millisecond},
		{"http date, capped by MaxBackoff", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), 250 * time.Millisecond, 240 * time.Millisecond, 800 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, tt.retryAfter, 503, 200)
			c := newClient(t, Config{BaseURL: srv.URL,
				Retry:      Retry{Attempts: 2, Backoff: time.Millisecond, MaxBackoff: tt.maxBackoff},
				Operations: map[string]Operation{"get": {Method: "GET", Path: "/"}}})
			start := time.Now()
			resp, err := c.Call(context.Background(), &connector.Request{Operation: "get"})
			elapsed := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != 200 || resp.Attempts != 2 {
				t.Fatalf("status %d attempts %d", resp.Status, resp.Attempts)
			}
			if elapsed < tt.min || elapsed > tt.max {
				t.Fatalf("took %s, want between %s and %s", elapsed, tt.min, tt.max)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"client":%q}`, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{pki.Server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.CAPool,
		MinVersion:   tls.VersionTLS12,
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	srv.StartTLS()
	defer srv.Close()

	tests := []struct {
		name string
		tls  *TLS
		ok   bool
	}{
		{"mutual tls", &TLS{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, true},
		{"server name override", &TLS{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey, ServerName: "source.test"}, true},
		{"wrong server name", &TLS{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey, ServerName: "other.test"}, false},
		{"no client certificate", &TLS{CAFile: pki.CAFile}, false},
		{"different ca", &TLS{CAFile: pki.OtherCAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, false},
		{"system roots", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, Config{BaseURL: srv.URL, TLS: tt.tls, Timeout: 2 * time.Second,
				Operations: map[string]Operation{"get": {Method: "GET", Path: "/"}}})
			resp, err := c.Call(context.Background(), &connector.Request{Operation: "get"})
			if !tt.ok {
				wantKind(t, err, connector.ErrUnavailable, hostOf(srv))
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(resp.Body) != `{"client":"fsb"}` {
				t.Fatalf("body %q", resp.Body)
			}
			if err := c.Check(context.Background()); err != nil {
				t.Fatalf("check: %v", err)
			}
		})
	}
}

func TestPoolLimit(t *testing.T) {
	var open, peak, active atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		active.Add(1)
		defer active.Add(-1)
		time.Sleep(50 * time.Millisecond)
		_, _ = w.Write([]byte(`{}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			n := open.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	defer srv.Close()

	c := newClient(t, Config{BaseURL: srv.URL, MaxConns: 2, Timeout: 5 * time.Second,
		Operations: map[string]Operation{"get": {Method: "GET", Path: "/"}}})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			resp, err := c.Call(context.Background(), &connector.Request{Operation: "get"})
			if err == nil && resp.Status != 200 {
				err = fmt.Errorf("status %d", resp.Status)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p > 2 || p < 1 {
		t.Fatalf("server saw %d concurrent connections, want at most 2", p)
	}
}

// closingServer speaks just enough HTTP/1.1 to answer one request per
// connection, then closes it without saying so (no "Connection: close"), as
// a source with a short keep-alive does.
func closingServer(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				hits.Add(1)
				_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().String(), &hits
}

func TestStaleKeepAliveConnection(t *testing.T) {
	addr, hits := closingServer(t)
	c := newClient(t, Config{BaseURL: "http://" + addr, Timeout: 2 * time.Second, Operations: map[string]Operation{
		"get":  {Method: "GET", Path: "/"},
		"post": {Method: "POST", Path: "/"},
	}})
	call := func(op string) (*connector.Response, error) {
		return c.Call(context.Background(), &connector.Request{Operation: op, Body: []byte(`{}`)})
	}
	if _, err := call("get"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let the close reach the pooled connection
	resp, err := call("get")
	if err != nil {
		t.Fatalf("GET on a stale connection: %v", err)
	}
	if resp.Attempts != 1 || hits.Load() != 2 {
		t.Fatalf("attempts %d, server hits %d", resp.Attempts, hits.Load())
	}
	time.Sleep(20 * time.Millisecond)
	// A POST is never re-sent: the source might have acted on it.
	_, err = call("post")
	wantKind(t, err, connector.ErrUnavailable, addr)
}

func TestHammer(t *testing.T) {
	srv := echoServer(t)
	c := newClient(t, Config{BaseURL: srv.URL + "/api", MaxConns: 8,
		Headers: map[string]string{"X-Source": "hammer"},
		Retry:   Retry{Attempts: 2, Backoff: time.Millisecond},
		Operations: map[string]Operation{
			"get":    {Method: "GET", Path: "/persons/{id}", Query: map[string]string{"v": "1"}},
			"post":   {Method: "POST", Path: "/persons", Headers: map[string]string{"X-Op": "post"}},
			"delete": {Method: "DELETE", Path: "/persons/{id}/links/{link}"},
		}})
	const goroutines, calls = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				id := fmt.Sprintf("g%d/%d", g, i)
				var req connector.Request
				var wantURI, wantMethod string
				switch i % 3 {
				case 0:
					req = connector.Request{Operation: "get", Path: map[string]string{"id": id}, Query: map[string]string{"i": strconv.Itoa(i)}}
					wantURI, wantMethod = fmt.Sprintf("/api/persons/g%d%%2F%d?i=%d&v=1", g, i, i), "GET"
				case 1:
					req = connector.Request{Operation: "post", Body: fmt.Appendf(nil, `{"id":%q}`, id), TraceID: id}
					wantURI, wantMethod = "/api/persons", "POST"
				case 2:
					req = connector.Request{Operation: "delete", Path: map[string]string{"id": id, "link": "x"}}
					wantURI, wantMethod = fmt.Sprintf("/api/persons/g%d%%2F%d/links/x", g, i), "DELETE"
				}
				resp, err := c.Call(context.Background(), &req)
				if err != nil {
					errs <- err
					return
				}
				var s seen
				if err := json.Unmarshal(resp.Body, &s); err != nil {
					errs <- err
					return
				}
				if s.RequestURI != wantURI || s.Method != wantMethod || s.Headers["X-Source"] != "hammer" ||
					(wantMethod == "POST" && (s.Body != string(req.Body) || s.Headers["Belgov-Trace-Id"] != id)) {
					errs <- fmt.Errorf("call %s %d: server saw %+v", req.Operation, i, s)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestCheck(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	var paths sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.URL.Path, r.Header.Get("X-Api-Key"))
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()

	c := newClient(t, Config{BaseURL: srv.URL + "/api", HealthPath: "/health", Headers: map[string]string{"X-Api-Key": "k"}})
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if key, ok := paths.Load("/api/health"); !ok || key != "k" {
		t.Fatalf("health check did not GET /api/health with the source headers (%v, %v)", key, ok)
	}
	status.Store(503)
	err := c.Check(context.Background())
	wantKind(t, err, connector.ErrUnavailable, hostOf(srv))
	if !strings.Contains(err.Error(), "503") {
		t.Fatalf("error %q does not give the status", err)
	}

	dialOnly := newClient(t, Config{BaseURL: srv.URL})
	if err := dialOnly.Check(context.Background()); err != nil {
		t.Fatal(err)
	}

	slow := slowServer(t)
	c = newClient(t, Config{BaseURL: slow.URL, HealthPath: "/health"})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.Check(ctx)
	wantKind(t, err, connector.ErrTimeout, hostOf(slow))
	if time.Since(start) > time.Second {
		t.Fatalf("check ignored the context deadline: %s", time.Since(start))
	}
}

func TestCloseKeepsClientUsable(t *testing.T) {
	srv := echoServer(t)
	c := newClient(t, Config{BaseURL: srv.URL, Operations: map[string]Operation{"get": {Method: "GET", Path: "/"}}})
	for range 2 {
		if _, err := c.Call(context.Background(), &connector.Request{Operation: "get"}); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewValidates(t *testing.T) {
	pki := newTestPKI(t)
	ok := map[string]Operation{"get": {Method: "GET", Path: "/x"}}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no source", Config{BaseURL: "http://h"}, "source name is empty"},
		{"bad scheme", Config{Source: "s", BaseURL: "ftp://h"}, `scheme "ftp" is not http or https`},
		{"no scheme", Config{Source: "s", BaseURL: "h:80/x"}, "scheme"},
		{"no host", Config{Source: "s", BaseURL: "http:///x"}, "no host"},
		{"credentials", Config{Source: "s", BaseURL: "https://u:p@h"}, "credentials"},
		{"query in base", Config{Source: "s", BaseURL: "https://h/?a=1"}, "query"},
		{"unreadable ca", Config{Source: "s", BaseURL: "https://h", TLS: &TLS{CAFile: "/nonexistent/ca.pem"}}, "read ca file"},
		{"ca file without pem", Config{Source: "s", BaseURL: "https://h", TLS: &TLS{CAFile: pki.ClientKey}}, "no pem certificate"},
		{"bad key pair", Config{Source: "s", BaseURL: "https://h", TLS: &TLS{CertFile: pki.ClientCert, KeyFile: pki.CAFile}}, "load client key pair"},
		{"cert without key", Config{Source: "s", BaseURL: "https://h", TLS: &TLS{CertFile: pki.ClientCert}}, "both cert file and key file"},
		{"tls on http", Config{Source: "s", BaseURL: "http://h", TLS: &TLS{}}, "tls settings given for an http"},
		{"unknown method", Config{Source: "s", BaseURL: "http://h", Operations: map[string]Operation{"x": {Method: "FETCH", Path: "/"}}}, `operation "x": unknown method "FETCH"`},
		{"relative path", Config{Source: "s", BaseURL: "http://h", Operations: map[string]Operation{"x": {Method: "GET", Path: "x/{a}"}}}, "does not start with /"},
		{"unclosed placeholder", Config{Source: "s", BaseURL: "http://h", Operations: map[string]Operation{"x": {Method: "GET", Path: "/{a"}}}, "unclosed {"},
		{"empty placeholder", Config{Source: "s", BaseURL: "http://h", Operations: map[string]Operation{"x": {Method: "GET", Path: "/{}"}}}, "placeholder {}"},
		{"query in path", Config{Source: "s", BaseURL: "http://h", Operations: map[string]Operation{"x": {Method: "GET", Path: "/a?b=1"}}}, "belongs in the query"},
		{"reserved source header", Config{Source: "s", BaseURL: "http://h", Headers: map[string]string{"Content-Length": "1"}, Operations: ok}, "managed by the transport"},
		{"bad op header", Config{Source: "s", BaseURL: "http://h", Operations: map[string]Operation{"x": {Method: "GET", Path: "/", Headers: map[string]string{"X": "a\nb"}}}}, "control character"},
		{"negative timeout", Config{Source: "s", BaseURL: "http://h", Timeout: -1}, "timeout must not be negative"},
		{"max backoff below backoff", Config{Source: "s", BaseURL: "http://h", Retry: Retry{Backoff: time.Second, MaxBackoff: time.Millisecond}}, "below backoff"},
		{"retry on success", Config{Source: "s", BaseURL: "http://h", Retry: Retry{OnStatus: []int{200}}}, "retry on status 200"},
		{"health path with placeholder", Config{Source: "s", BaseURL: "http://h", HealthPath: "/{x}"}, "must not have placeholders"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if err == nil {
				_ = c.Close()
				t.Fatalf("New accepted %+v", tt.cfg)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Fatalf("error %q does not contain %q", msg, tt.want)
			}
			if tt.cfg.Source != "" && !strings.HasPrefix(msg, fmt.Sprintf("source %q: ", tt.cfg.Source)) {
				t.Fatalf("error %q lacks the source context", msg)
			}
			if msg != strings.ToLower(msg[:1])+msg[1:] {
				t.Fatalf("error %q is not lowercase", msg)
			}
		})
	}

	c, err := New(Config{Source: "s", BaseURL: "https://h:8443/base/", TLS: &TLS{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey},
		Operations: map[string]Operation{"get": {Method: "GET", Path: "/x/{id}"}}})
	if err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if c.endpoint.addr != "h:8443" || c.endpoint.prefix != "https://h:8443/base" || c.tls.MinVersion != tls.VersionTLS12 || len(c.tls.Certificates) != 1 {
		t.Fatalf("endpoint %+v, tls min %x", c.endpoint, c.tls.MinVersion)
	}
}

func FuzzAppendPath(f *testing.F) {
	for _, s := range []string{"85073003328", "a/b", "../..", "%2F", "é ü", "?#&="} {
		f.Add(s)
	}
	parts, err := compilePath("/p/{v}/q")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v string) {
		out, err := appendPath(nil, parts, map[string]string{"v": v})
		if err != nil {
			return
		}
		seg := strings.TrimSuffix(strings.TrimPrefix(string(out), "/p/"), "/q")
		if strings.ContainsAny(seg, "/?# ") {
			t.Fatalf("value %q escaped to %q, which leaves its segment", v, seg)
		}
		back, err := url.PathUnescape(seg)
		if err != nil || back != v {
			t.Fatalf("value %q escaped to %q, which unescapes to %q (%v)", v, seg, back, err)
		}
	})
}
