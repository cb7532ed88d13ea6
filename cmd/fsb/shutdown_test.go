package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/audit"
)

// opsSSIN is a valid national register number the tests send in the body:
// it must never appear in the logs.
const opsSSIN = "68031401742"

// opsRig is fsb serve started with flags and the audit trail on, in
// front of one loopback source that answers after delay.
type opsRig struct {
	srv      *serving
	auditDir string
	pub      ed25519.PublicKey
	arrived  atomic.Int64 // calls the source received
	logs     syncBuffer   // the process log
}

func startOpsRig(t *testing.T, delay time.Duration, logFormat string) *opsRig {
	t.Helper()
	dir := t.TempDir()
	r := &opsRig{auditDir: filepath.Join(dir, "audit")}
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.arrived.Add(1)
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name":"Jan Peeters"}`)
	}))
	t.Cleanup(src.Close)
	flows := filepath.Join(dir, "flows")
	if err := os.Mkdir(flows, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(flows, "p.yaml"), `kind: Source
name: reg
protocol: rest
rest:
  baseUrl: `+src.URL+`
  operations:
    get: {method: POST, path: /p}
---
kind: Flow
name: p
version: 1.0.0
method: POST
path: /p/v1/get
legal:
  subject: normalizeSsin(input.body.ssin)
input:
  body:
    type: object
    required: [ssin]
    properties:
      ssin: {type: string}
timeout: 10s
steps:
  - id: r
    call: reg.get
    with:
      body:
        ssin: input.body.ssin
output: steps.r.body
`, 0o644)
	auditKey, subjectKey := filepath.Join(dir, "audit.key"), filepath.Join(dir, "subject.key")
	runOK(t, "audit", "keygen", "-out", auditKey)
	runOK(t, "audit", "secret", "-out", subjectKey)
	k, err := loadEd25519Key(auditKey)
	if err != nil {
		t.Fatal(err)
	}
	r.pub = k.Public().(ed25519.PublicKey)

	f := serveFlags{addr: "127.0.0.1:0", logLevel: "info", logFormat: logFormat}
	f.security = securityFlags{auditDir: r.auditDir, auditKey: auditKey, subjectKeyFile: subjectKey}
	log, err := f.logger(&r.logs)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = serveFlows(t, flows, f, serveOptions{log: log})
	return r
}

// call POSTs opsSSIN to the flow with trace as BelGov-Trace-Id, on a fresh
// connection.
func (r *opsRig) call(client *http.Client, trace string) (answer, string, error) {
	req, _ := http.NewRequest("POST", "http://"+r.srv.addr+"/p/v1/get", strings.NewReader(`{"ssin":"`+opsSSIN+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("BelGov-Trace-Id", trace)
	req.Header.Set("Authorization", "Bearer not-a-real-token-5ecret")
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, "", err
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		return answer{}, "", err
	}
	return answer{trace: trace, status: resp.StatusCode, receipt: resp.Header.Get(audit.ReceiptHeader)}, resp.Header.Get("BelGov-Trace-Id"), nil
}

// TestServeJSONAccessLog: with -log-format json, one call writes one
// access-log line (msg "request") with the flow, status, duration, the
// trace ids in and out and the organisation, and the SSIN of the body, the
// bearer token and the pseudonymised subject appear nowhere in the log.
func TestServeJSONAccessLog(t *testing.T) {
	r := startOpsRig(t, 0, "json")
	client := &http.Client{Timeout: 10 * time.Second}
	a, traceOut, err := r.call(client, "log-test-1")
	if err != nil || a.status != 200 || traceOut == "" {
		t.Fatalf("call: %+v %q %v", a, traceOut, err)
	}
	// A trace id that is an SSIN is not logged either.
	if b, _, err := r.call(client, opsSSIN); err != nil || b.status != 200 {
		t.Fatalf("call with an SSIN as trace id: %+v %v", b, err)
	}
	if code := r.srv.stop(); code != 0 {
		t.Fatalf("serve exit %d", code)
	}

	out := r.logs.String()
	for _, secret := range []string{opsSSIN, "68.03.14-017.42", "not-a-real-token-5ecret"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q:\n%s", secret, out)
		}
	}
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON log line: %q: %v", sc.Text(), err)
		}
		if m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d access-log lines, want 2:\n%s", len(lines), out)
	}
	l := lines[0]
	want := map[string]any{"level": "INFO", "flow": "p", "status": float64(200), "trace": traceOut,
		"trace_in": "log-test-1", "org": "anonymous"}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("access log %s = %v, want %v\n%v", k, l[k], v, l)
		}
	}
	if d, ok := l["duration"].(float64); !ok || d <= 0 {
		t.Errorf("access log duration = %v", l["duration"])
	}
	if _, ok := lines[1]["trace_in"]; ok {
		t.Errorf("an SSIN trace id was logged: %v", lines[1])
	}
}

// TestServeGracefulShutdown: calls in flight when the server is told to
// stop (the context wait watches, as Ctrl-C cancels it) all get their 2xx
// answer with a receipt, new connections are refused once shutdown began,
// and afterwards the audit trail verifies with a request and an outcome
// record for every answered call.
func TestServeGracefulShutdown(t *testing.T) {
	const n = 16
	const delay = 400 * time.Millisecond
	r := startOpsRig(t, delay, "text")

	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var completed atomic.Int64
	answers := make([]answer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			answers[i], _, errs[i] = r.call(client, fmt.Sprintf("shutdown-%d", i))
			completed.Add(1)
		})
	}
	// Every call is in flight: the source holds all of them.
	deadline := time.Now().Add(10 * time.Second)
	for r.arrived.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d calls reached the source", r.arrived.Load(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	r.srv.cancel() // what Ctrl-C does to serve's context

	// New connections are refused once shutdown began, while the calls in
	// flight are still being served.
	refused := false
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", r.srv.addr, time.Second)
		if err != nil {
			refused = true
			break
		}
		c.Close()
		time.Sleep(2 * time.Millisecond)
	}
	if !refused {
		t.Fatal("new connections still accepted after shutdown began")
	}
	if c := completed.Load(); c == n {
		t.Fatalf("connections were refused only after every call had finished: the test did not overlap them")
	}

	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("call %d lost: %v", i, errs[i])
		} else if answers[i].status/100 != 2 || answers[i].receipt == "" {
			t.Errorf("call %d: status %d, receipt %q", i, answers[i].status, answers[i].receipt)
		}
	}
	if code := r.srv.stop(); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	if t.Failed() {
		return
	}

	var stdout, stderr bytes.Buffer
	if code := run([]string{"audit", "verify", "-dir", r.auditDir, "-pub", hex.EncodeToString(r.pub)}, &stdout, &stderr); code != 0 {
		t.Fatalf("fsb audit verify: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	s, err := audit.Open(audit.Options{Dir: r.auditDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkReceipts(t, s, answers)
}
