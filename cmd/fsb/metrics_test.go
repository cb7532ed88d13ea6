package main

import (
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
	flows := writeFlows(t, dir, src.URL)
	auditKey, subjectKey, tokenFile := filepath.Join(dir, "audit.key"), filepath.Join(dir, "subject.key"), filepath.Join(dir, "admin.token")
	runOK(t, "audit", "keygen", "-out", auditKey)
	runOK(t, "audit", "secret", "-out", subjectKey)
	runOK(t, "audit", "secret", "-out", tokenFile)
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}

	f := serveFlags{addr: "127.0.0.1:0", logLevel: "error"}
	f.security = securityFlags{
		auditDir: filepath.Join(dir, "audit"), auditKey: auditKey, subjectKeyFile: subjectKey,
		adminAddr: "127.0.0.1:0", adminTokenFile: tokenFile,
	}
	srv := serveFlows(t, flows, f, serveOptions{})

	if body := httpGet(t, "http://"+srv.addr+"/x/v1/x", 200); !strings.Contains(string(body), "Jan Peeters") {
		t.Fatalf("consumer call: %s", body)
	}

	metrics := "http://" + srv.adminAddr + "/admin/v1/metrics"
	if code, _ := getMetrics(t, metrics, ""); code != 401 {
		t.Fatalf("metrics without the admin token: %d, want 401", code)
	}
	code, text := getMetrics(t, metrics, strings.TrimSpace(string(token)))
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
