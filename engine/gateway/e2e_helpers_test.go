package gateway_test

// Helpers for the end-to-end tests: real upstream HTTP servers on loopback,
// flows and sources written as YAML, the real gateway on a real listener and
// a real net/http client. Nothing of OpenFSB is mocked.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/gateway"
	"github.com/openfsb/fsb/engine/sources"
	"github.com/openfsb/fsb/engine/spec"
)

const (
	typeBadRequest    = "urn:problem-type:belgif:badRequest"
	typeNotFound      = "urn:problem-type:belgif:resourceNotFound"
	typeTooLarge      = "urn:problem-type:belgif:payloadTooLarge"
	typeUnsupported   = "urn:problem-type:belgif:unsupportedMediaType"
	typeInternal      = "urn:problem-type:belgif:internalServerError"
	typeBadGateway    = "urn:problem-type:belgif:badGateway"
	typeUnavailable   = "urn:problem-type:belgif:serviceUnavailable"
	typeTimeout       = "urn:problem-type:openfsb:gatewayTimeout"
	issuePrefix       = "urn:problem-type:belgif:input-validation:"
	headerTrace       = "BelGov-Trace-Id"
	headerRelated     = "BelGov-Related-Trace-Id"
	contentJSON       = "application/json"
	contentProblem    = "application/problem+json"
	maxUpstreamSleep  = 3 * time.Second // no upstream handler ever sleeps longer
	clientCallTimeout = 15 * time.Second
)

var traceIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// recorder is a flow.Observer that keeps every source call.
type recorder struct {
	mu    sync.Mutex
	calls []flow.SourceCall
}

func (r *recorder) SourceCall(_ context.Context, c *flow.SourceCall) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sc := *c
	sc.Body = nil // lent for the callback only
	r.calls = append(r.calls, sc)
}

func (r *recorder) all() []flow.SourceCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// harness is one gateway served on a real loopback listener.
type harness struct {
	t      *testing.T
	base   string // http://127.0.0.1:port
	gw     *gateway.Gateway
	obs    *recorder
	conns  map[string]connector.Connector
	client *http.Client
	// secrets: strings that must never appear in a consumer-facing body
	// (upstream URLs, hosts, ports).
	secrets []string
}

type config struct {
	lookupEnv func(string) (string, bool)
	healthTTL time.Duration
}

type option func(*config)

func withEnv(env map[string]string) option {
	return func(c *config) {
		c.lookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	}
}

func withHealthTTL(d time.Duration) option { return func(c *config) { c.healthTTL = d } }

// expand replaces ${NAME} in text by vars[NAME].
func expand(text string, vars map[string]string) string {
	pairs := make([]string, 0, 2*len(vars))
	for k, v := range vars {
		pairs = append(pairs, "${"+k+"}", v)
	}
	return strings.NewReplacer(pairs...).Replace(text)
}

// loadPlans loads YAML documents (after ${VAR} expansion) and compiles them.
func loadPlans(t testing.TB, yamlText string) (*spec.Set, map[string]*flow.Plan) {
	t.Helper()
	set, err := spec.Load(map[string][]byte{"e2e.yaml": []byte(yamlText)})
	if err != nil {
		t.Fatalf("spec.Load: %v\n--- yaml ---\n%s", err, yamlText)
	}
	plans, err := flow.Compile(set)
	if err != nil {
		t.Fatalf("flow.Compile: %v\n--- yaml ---\n%s", err, yamlText)
	}
	return set, plans
}

// start loads the documents, opens the sources, builds the gateway and
// serves it on 127.0.0.1:0 until the test ends. vars are expanded in the
// YAML and remembered as strings no problem body may contain.
func start(t *testing.T, yamlText string, vars map[string]string, opts ...option) *harness {
	t.Helper()
	cfg := config{lookupEnv: func(string) (string, bool) { return "", false }}
	for _, o := range opts {
		o(&cfg)
	}
	set, plans := loadPlans(t, expand(yamlText, vars))
	conns, err := sources.Open(set, sources.Options{LookupEnv: cfg.lookupEnv})
	if err != nil {
		t.Fatalf("sources.Open: %v", err)
	}
	obs := &recorder{}
	gw := gateway.New(gateway.Config{
		Plans:     plans,
		Runtime:   &flow.Runtime{Conns: conns, Observer: obs, Log: nil},
		HealthTTL: cfg.healthTTL,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- gw.App().Listener(ln) }()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	h := &harness{
		t: t, base: "http://" + ln.Addr().String(), gw: gw, obs: obs, conns: conns,
		client: &http.Client{Transport: tr, Timeout: clientCallTimeout},
	}
	for _, v := range vars {
		if u, err := url.Parse(v); err == nil && u.Host != "" {
			h.secrets = append(h.secrets, u.Host, u.Port())
		}
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if err := gw.App().ShutdownWithTimeout(5 * time.Second); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		_ = ln.Close() // Shutdown misses a listener Listener has not registered yet
		select {
		case err := <-served:
			if err != nil && !errors.Is(err, net.ErrClosed) {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("the gateway did not stop serving within 5s")
		}
		sources.Close(conns)
	})
	return h
}

// reply is one answer of the gateway.
type reply struct {
	status  int
	header  http.Header
	body    []byte
	elapsed time.Duration
}

func (r reply) String() string {
	return http.StatusText(r.status) + " " + string(r.body)
}

// do sends a request; hdr is name, value pairs.
func (h *harness) do(method, path string, body []byte, hdr ...string) reply {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentJSON)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	t0 := time.Now()
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b, elapsed: time.Since(t0)}
}

func (h *harness) post(path, body string, hdr ...string) reply {
	h.t.Helper()
	return h.do(http.MethodPost, path, []byte(body), hdr...)
}

func (h *harness) get(path string, hdr ...string) reply {
	h.t.Helper()
	return h.do(http.MethodGet, path, nil, hdr...)
}

// problemDoc is a problem+json answer.
type problemDoc struct {
	Type     string     `json:"type"`
	Title    string     `json:"title"`
	Status   int        `json:"status"`
	Detail   string     `json:"detail"`
	Instance string     `json:"instance"`
	Step     string     `json:"step"`
	Issues   []issueDoc `json:"issues"`
}

type issueDoc struct {
	Type   string `json:"type"`
	In     string `json:"in"`
	Name   string `json:"name"`
	Value  any    `json:"value"`
	Detail string `json:"detail"`
}

// problem checks that r is a problem+json of the given status and type that
// leaks no internals, and decodes it.
func (h *harness) problem(r reply, status int, typ string) problemDoc {
	h.t.Helper()
	if r.status != status {
		h.t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, contentProblem) {
		h.t.Errorf("Content-Type %q, want %s", ct, contentProblem)
	}
	var p problemDoc
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		h.t.Fatalf("problem body %s: %v", r.body, err)
	}
	if p.Type != typ {
		h.t.Errorf("type %q, want %q; body %s", p.Type, typ, r.body)
	}
	if p.Status != status {
		h.t.Errorf("problem status %d, want %d", p.Status, status)
	}
	if p.Title == "" {
		h.t.Errorf("problem without a title: %s", r.body)
	}
	h.noInternals(r.body)
	return p
}

// noInternals fails when a consumer-facing body names a host, a port, an
// address or a URL.
func (h *harness) noInternals(body []byte) {
	h.t.Helper()
	s := string(body)
	for _, bad := range append([]string{"127.0.0.1", "localhost", "http://", "https://", "[::1]", "dial tcp", "goroutine", ".go:"}, h.secrets...) {
		if bad != "" && strings.Contains(s, bad) {
			h.t.Errorf("a consumer-facing body contains %q: %s", bad, s)
		}
	}
}

// jsonBody checks a 200 application/json answer and decodes it.
func (h *harness) jsonBody(r reply, status int) map[string]any {
	h.t.Helper()
	if r.status != status {
		h.t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, contentJSON) {
		h.t.Errorf("Content-Type %q, want %s", ct, contentJSON)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		h.t.Fatalf("body %s: %v", r.body, err)
	}
	return m
}

// jsonEq compares a body with the expected JSON text, ignoring key order.
func jsonEq(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("body\n got %s\nwant %s", gb, wb)
	}
}

// upstream starts a real HTTP server on loopback, closed when the test ends.
func upstream(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// jsonHandler answers every request with status and body.
func jsonHandler(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentJSON)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// slowHandler waits d (bounded, and cut short when the caller goes away),
// then answers 200 with body.
func slowHandler(d time.Duration, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sleepCtx(r.Context(), d)
		jsonHandler(200, body)(w, r)
	}
}

// sleepCtx waits d (at most maxUpstreamSleep) unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(min(d, maxUpstreamSleep))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// deadURL is an http URL on loopback where nothing listens.
func deadURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// checkTraceID fails unless r carries a well-formed BelGov-Trace-Id; it
// returns the id.
func checkTraceID(t *testing.T, r reply) string {
	t.Helper()
	id := r.header.Get(headerTrace)
	if !traceIDRe.MatchString(id) {
		t.Errorf("BelGov-Trace-Id %q is not 32 lower-case hex characters (status %d)", id, r.status)
	}
	return id
}

// rawPost writes a POST with the given Content-Length but only the first
// part of its body on a fresh TCP connection, and reads the answer: a server
// that refuses a body by its announced length answers without waiting for
// the rest. hdr is name, value pairs.
func (h *harness) rawPost(path string, contentLength int, prefix string, hdr ...string) reply {
	h.t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(h.base, "http://"), 5*time.Second)
	if err != nil {
		h.t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	b.WriteString("POST " + path + " HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(contentLength) + "\r\n")
	for i := 0; i+1 < len(hdr); i += 2 {
		b.WriteString(hdr[i] + ": " + hdr[i+1] + "\r\n")
	}
	b.WriteString("\r\n" + prefix)
	t0 := time.Now()
	if _, err := io.WriteString(conn, b.String()); err != nil {
		h.t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		h.t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("read body: %v", err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: body, elapsed: time.Since(t0)}
}
