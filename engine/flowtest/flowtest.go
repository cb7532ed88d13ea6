// Package flowtest runs the flow tests that integration engineers keep next
// to their flows (documents of kind Test): it serves the flow through the
// real gateway with the sources replaced by the test's mocks, sends the
// test's request and compares the answer. It owns the mocks and the
// comparison; it must not re-implement any part of the gateway or executor.
package flowtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/connector/rest"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/gateway"
	"github.com/openfsb/fsb/engine/problem"
	"github.com/openfsb/fsb/engine/spec"
)

// Result is the outcome of one test.
type Result struct {
	Test     *spec.Test
	Pass     bool
	Failures []string // what differed, each a readable paragraph
	Duration time.Duration
}

// Name is "flow/test name".
func (r *Result) Name() string { return r.Test.Flow + "/" + r.Test.Name }

// Run runs every test of the set whose "flow/name" matches filter (nil:
// all). Tests are independent (each has its own gateway and mocks), so they
// run concurrently; results come back in file order. plugins are the real
// modules the set declares (engine/modules): transform steps run them, only
// sources are mocked.
func Run(set *spec.Set, plans map[string]*flow.Plan, plugins map[string]flow.Plugin, filter *regexp.Regexp) []*Result {
	var out []*Result
	for _, t := range set.Tests {
		r := &Result{Test: t}
		if filter == nil || filter.MatchString(r.Name()) {
			out = append(out, r)
		}
	}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, r := range out {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			r.Failures = runOne(set, plans, plugins, r.Test)
			r.Pass = len(r.Failures) == 0
			r.Duration = time.Since(start)
		})
	}
	wg.Wait()
	return out
}

func runOne(set *spec.Set, plans map[string]*flow.Plan, plugins map[string]flow.Plugin, t *spec.Test) []string {
	p := plans[t.Flow]
	if p == nil {
		return []string{fmt.Sprintf("flow %q did not compile", t.Flow)}
	}
	mocks := &mockSet{byCall: map[string]int{}}
	conns := map[string]connector.Connector{}
	for _, name := range set.SourceNames() {
		conns[name] = &mockConn{set: mocks, source: name, mocks: t.Mocks, spec: set.Sources[name].REST, soap: newSOAPMock(set, set.Sources[name], plugins), file: newFileMock(set.Sources[name])}
	}
	gw := gateway.New(gateway.Config{Plans: map[string]*flow.Plan{p.Name: p}, Runtime: &flow.Runtime{Conns: conns, Plugins: plugins}})

	req, err := buildRequest(p, t)
	if err != nil {
		return []string{err.Error()}
	}
	resp, err := gw.App().Test(req, -1)
	if err != nil {
		return []string{"request failed: " + err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var fails []string
	fails = append(fails, mocks.unmatched...)
	fails = append(fails, compare(t, resp, body)...)
	for _, call := range sortedKeys(t.Expect.Calls) {
		if got, want := mocks.count(call), t.Expect.Calls[call]; got != want {
			fails = append(fails, fmt.Sprintf("calls to %s: want %d, got %d", call, want, got))
		}
	}
	return fails
}

func buildRequest(p *flow.Plan, t *spec.Test) (*http.Request, error) {
	path := t.Request.Path
	if path == "" {
		if strings.Contains(p.Path, "{") {
			return nil, fmt.Errorf("the flow path %s has parameters: give request.path", p.Path)
		}
		path = p.Path
	}
	if len(t.Request.Query) > 0 {
		q := url.Values{}
		for k, v := range t.Request.Query {
			q.Set(k, v)
		}
		path += "?" + q.Encode()
	}
	var body io.Reader
	switch {
	case t.Request.RawBody != "":
		body = strings.NewReader(t.Request.RawBody)
	case t.Request.Body != nil:
		b, err := json.Marshal(t.Request.Body.V)
		if err != nil {
			return nil, fmt.Errorf("request body: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req := httptest.NewRequest(p.Method, path, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range t.Request.Headers {
		req.Header.Set(k, v)
	}
	return req, nil
}

func compare(t *spec.Test, resp *http.Response, body []byte) []string {
	var fails []string
	e := t.Expect
	if e.Status != 0 && resp.StatusCode != e.Status {
		fails = append(fails, fmt.Sprintf("status: want %d, got %d\n%s", e.Status, resp.StatusCode, indent(body)))
	}
	if resp.Header.Get("BelGov-Trace-Id") == "" {
		fails = append(fails, "the response has no BelGov-Trace-Id header")
	}
	for _, k := range sortedKeys(e.Headers) {
		if got := resp.Header.Get(k); got != e.Headers[k] {
			fails = append(fails, fmt.Sprintf("header %s: want %q, got %q", k, e.Headers[k], got))
		}
	}
	if e.Body != nil {
		var got any
		if err := json.Unmarshal(body, &got); err != nil {
			return append(fails, fmt.Sprintf("body is not JSON: %v\n%s", err, body))
		}
		want := normalise(e.Body.V)
		if !equalJSON(want, got) {
			fails = append(fails, "body differs (- want, + got):\n"+Diff(pretty(want), pretty(got)))
		}
	}
	if pe := e.Problem; pe != nil {
		var got problem.Problem
		if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType {
			fails = append(fails, fmt.Sprintf("want a problem (%s), got Content-Type %q\n%s", problem.ContentType, ct, indent(body)))
			return fails
		}
		if err := json.Unmarshal(body, &got); err != nil {
			return append(fails, "problem is not JSON: "+err.Error())
		}
		if want := problemType(pe.Type); got.Type != want {
			fails = append(fails, fmt.Sprintf("problem type: want %s, got %s (%s)", want, got.Type, got.Detail))
		}
		if pe.Step != "" && got.Step != pe.Step {
			fails = append(fails, fmt.Sprintf("problem step: want %q, got %q (%s)", pe.Step, got.Step, got.Detail))
		}
		if pe.Issues != nil {
			var types []string
			for _, is := range got.Issues {
				types = append(types, strings.TrimPrefix(is.Type, problem.IssuePrefix))
			}
			want := append([]string(nil), pe.Issues...)
			sort.Strings(types)
			sort.Strings(want)
			if strings.Join(types, ",") != strings.Join(want, ",") {
				fails = append(fails, fmt.Sprintf("problem issues: want %v, got %v\n%s", want, types, indent(body)))
			}
		}
	}
	return fails
}

func problemType(t string) string {
	if strings.HasPrefix(t, "urn:") {
		return t
	}
	if t == "gatewayTimeout" {
		return problem.OpenFSBPrefix + t
	}
	return problem.BelgifPrefix + t
}

// normalise makes YAML-decoded values comparable with JSON-decoded ones.
func normalise(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func pretty(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func indent(b []byte) string {
	var out bytes.Buffer
	if json.Indent(&out, b, "  ", "  ") != nil {
		return "  " + string(b)
	}
	return "  " + out.String()
}

func sortedKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// mockSet records what the mocks were asked during one test.
type mockSet struct {
	mu        sync.Mutex
	byCall    map[string]int
	unmatched []string
}

func (s *mockSet) count(call string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byCall[call]
}

// mockConn answers from the test's mocks, behaving as the real transport
// would around them: the source's timeout and its retry policy apply.
type mockConn struct {
	set    *mockSet
	source string
	mocks  []*spec.Mock
	spec   *spec.RESTSource
	soap   *soapMock // for a soap source (soap.go)
	file   *fileMock // for an ftp or sftp source (file.go)
}

// policy returns the operation's timeout, attempts and retried statuses.
func (m *mockConn) policy(opName string) (timeout time.Duration, attempts int, onStatus map[int]bool) {
	timeout, attempts = rest.DefaultTimeout, 1
	onStatus = map[int]bool{429: true, 502: true, 503: true, 504: true}
	if m.soap != nil {
		return m.soap.timeout, 1, nil // a SOAP call is not retried by its transport
	}
	if m.file != nil {
		return m.file.timeout, 1, nil // nor is a file source's
	}
	if m.spec == nil {
		return
	}
	if m.spec.Timeout > 0 {
		timeout = m.spec.Timeout.D()
	}
	r := m.spec.Retry
	op := m.spec.Operations[opName]
	if op != nil && op.Timeout > 0 {
		timeout = op.Timeout.D()
	}
	if op != nil && op.Retry != nil {
		r = op.Retry
	}
	if r != nil && op != nil && op.IsIdempotent() {
		attempts = r.Attempts
		if len(r.OnStatus) > 0 {
			onStatus = map[int]bool{}
			for _, st := range r.OnStatus {
				onStatus[st] = true
			}
		}
	}
	return
}

func (m *mockConn) Call(ctx context.Context, req *connector.Request) (*connector.Response, error) {
	timeout, attempts, onStatus := m.policy(req.Operation)
	for attempt := 1; ; attempt++ {
		resp, err := m.answer(ctx, req, timeout)
		retry := err != nil && !errors.Is(err, connector.ErrTooLarge) || err == nil && onStatus[resp.Status]
		if !retry || attempt >= attempts || ctx.Err() != nil {
			if resp != nil {
				resp.Attempts = attempt
			}
			return resp, err
		}
	}
}

func (m *mockConn) answer(ctx context.Context, req *connector.Request, timeout time.Duration) (*connector.Response, error) {
	call := m.source + "." + req.Operation
	m.set.mu.Lock()
	m.set.byCall[call]++
	m.set.mu.Unlock()
	if err := m.soap.encode(ctx, m.source, req); err != nil {
		return nil, err
	}
	if err := m.file.check(m.source, req); err != nil {
		return nil, err
	}
	var mk *spec.Mock
	for _, c := range m.mocks {
		if c.Call == call && matches(c.Match, req) {
			mk = c
			break
		}
	}
	if mk == nil {
		m.set.mu.Lock()
		m.set.unmatched = append(m.set.unmatched, fmt.Sprintf("no mock answers %s with path %v query %v body %s", call, req.Path, req.Query, req.Body))
		m.set.mu.Unlock()
		return nil, &connector.Error{Source: m.source, Operation: req.Operation, Kind: connector.ErrUnavailable, Detail: "no mock"}
	}
	d := mk.Delay.D()
	if mk.Error == "timeout" || d > timeout {
		d = timeout
	}
	if d > 0 {
		switch err := connector.Sleep(ctx, d); {
		case errors.Is(err, context.Canceled):
			return nil, &connector.Error{Source: m.source, Operation: req.Operation, Kind: connector.ErrUnavailable, Err: err}
		case err != nil || d == timeout:
			return nil, &connector.Error{Source: m.source, Operation: req.Operation, Kind: connector.ErrTimeout, Err: err}
		}
	}
	if mk.Error == "unavailable" {
		return nil, &connector.Error{Source: m.source, Operation: req.Operation, Kind: connector.ErrUnavailable}
	}
	if err := m.soap.answer(m.source, req, mk); err != nil {
		return nil, err
	}
	resp := &connector.Response{Status: mk.Status, Attempts: 1}
	for _, k := range sortedKeys(mk.Headers) {
		resp.Headers = append(resp.Headers, connector.Header{Name: textproto.CanonicalMIMEHeaderKey(k), Value: mk.Headers[k]})
	}
	if resp.Status == 0 {
		resp.Status = 200
	}
	switch {
	case mk.RawBody != "":
		resp.Body = []byte(mk.RawBody)
	case mk.Body != nil:
		b, err := json.Marshal(mk.Body.V)
		if err != nil {
			return nil, err
		}
		resp.Body = b
	}
	return resp, nil
}

func matches(m *spec.MockMatch, req *connector.Request) bool {
	if m == nil {
		return true
	}
	for k, v := range m.Path {
		if req.Path[k] != v {
			return false
		}
	}
	for k, v := range m.Query {
		if req.Query[k] != v {
			return false
		}
	}
	if m.Body != nil {
		var got any
		if json.Unmarshal(req.Body, &got) != nil {
			return false
		}
		return subset(normalise(m.Body.V), got)
	}
	return true
}

// subset reports whether every field of want is in got with the same value.
func subset(want, got any) bool {
	wm, ok := want.(map[string]any)
	if !ok {
		return equalJSON(want, got)
	}
	gm, ok := got.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range wm {
		if !subset(v, gm[k]) {
			return false
		}
	}
	return true
}

func (m *mockConn) Check(context.Context) error { return nil }
func (m *mockConn) Close() error                { return nil }

var _ connector.Connector = (*mockConn)(nil)
