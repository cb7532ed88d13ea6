package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeMetrics: with the admin API on, one consumer call shows in
// GET /admin/v1/metrics on the admin listener (admin token required), and
// the consumer listener serves no metrics.
func TestServeMetrics(t *testing.T) {
	dir := t.TempDir()
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name":"Jan Peeters"}`)
	}))
	defer src.Close()
	flows := filepath.Join(dir, "flows")
	if err := os.Mkdir(flows, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(flows, "x.yaml"), `kind: Source
name: reg
protocol: rest
rest:
  baseUrl: `+src.URL+`
  operations:
    get: {method: GET, path: /x}
---
kind: Flow
name: x
version: 1.0.0
method: GET
path: /x/v1/x
steps:
  - id: r
    call: reg.get
output: steps.r.body
`)
	runOK := func(args ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("fsb %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
	}
	auditKey, subjectKey, tokenFile := filepath.Join(dir, "audit.key"), filepath.Join(dir, "subject.key"), filepath.Join(dir, "admin.token")
	runOK("audit", "keygen", "-out", auditKey)
	runOK("audit", "secret", "-out", subjectKey)
	runOK("audit", "secret", "-out", tokenFile)
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}

	f := serveFlags{addr: "127.0.0.1:0", logLevel: "error"}
	f.security = securityFlags{
		auditDir: filepath.Join(dir, "audit"), auditKey: auditKey, subjectKeyFile: subjectKey,
		adminAddr: "127.0.0.1:0", adminTokenFile: tokenFile,
	}
	srv := serveFlows(t, flows, f)

	if body := httpGet(t, "http://"+srv.addr+"/x/v1/x", 200); !strings.Contains(string(body), "Jan Peeters") {
		t.Fatalf("consumer call: %s", body)
	}

	scrape := func(base, tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/admin/v1/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	admin := "http://" + srv.adminAddr
	if code, _ := scrape(admin, ""); code != 401 {
		t.Fatalf("metrics without the admin token: %d, want 401", code)
	}
	code, text := scrape(admin, strings.TrimSpace(string(token)))
	if code != 200 {
		t.Fatalf("metrics: %d\n%s", code, text)
	}
	for _, want := range []string{
		`fsb_requests_total{consumer="anonymous",service="x",status="200"} 1`,
		`fsb_request_duration_seconds_count{service="x"} 1`,
		`fsb_source_calls_total{operation="get",outcome="ok",source="reg"} 1`,
		`fsb_source_call_duration_seconds_count{operation="get",source="reg"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, text)
		}
	}
	for _, path := range []string{"/admin/v1/metrics", "/metrics"} {
		httpGet(t, "http://"+srv.addr+path, 404)
	}
}
