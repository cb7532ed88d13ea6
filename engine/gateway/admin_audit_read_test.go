package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/gateway"
)

// lockedBuffer is a log sink shared with the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startAuditAdmin serves the admin API over a store with a few records on
// loopback; it returns the base URL and the admin log.
func startAuditAdmin(t *testing.T, token string) (string, *lockedBuffer) {
	t.Helper()
	ctx := context.Background()
	store, err := audit.Open(audit.Options{Dir: t.TempDir(), Signer: auditKey, SubjectKeys: []audit.Key{subjectKey},
		CheckpointEvery: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	for range 2 {
		c, err := store.Begin(ctx, audit.Request{Organisation: testOrg, Service: "person", Subject: "85010112345", TraceIn: "t-1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Finish(ctx, audit.Outcome{Status: 200, Response: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	logs := &lockedBuffer{}
	admin := gateway.NewAdmin(gateway.AdminConfig{Audit: store, Token: []byte(token),
		Log: slog.New(slog.NewJSONHandler(logs, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go admin.App().Listener(ln)
	t.Cleanup(func() { _ = admin.App().ShutdownWithTimeout(5 * time.Second); ln.Close() })
	return "http://" + ln.Addr().String() + gateway.AdminPath, logs
}

func adminCall(t *testing.T, method, url, auth, body string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, r)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set(gateway.HeaderAdminActor, "alice")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestAdminTokenProblems: no token is noAccessToken, a wrong one (longer,
// shorter, a prefix of the right one) a distinct invalidAccessToken whose
// answer says nothing of the right token; both 401 with WWW-Authenticate.
func TestAdminTokenProblems(t *testing.T) {
	const token = "admin-token-0123456789"
	base, _ := startAuditAdmin(t, token)
	for _, tc := range []struct {
		name, auth, typ string
	}{
		{"none", "", "noAccessToken"},
		{"not bearer", "Basic YWxpY2U6eA==", "noAccessToken"},
		{"wrong", "Bearer wrong-token", "invalidAccessToken"},
		{"prefix", "Bearer " + token[:10], "invalidAccessToken"},
		{"longer", "Bearer " + token + "x", "invalidAccessToken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, h, b := adminCall(t, "GET", base+"/audit/head", tc.auth, "")
			var p struct{ Type, Detail string }
			if st != 401 || json.Unmarshal(b, &p) != nil || p.Type != "urn:problem-type:belgif:"+tc.typ {
				t.Fatalf("%d %s, want 401 %s", st, b, tc.typ)
			}
			if h.Get("Www-Authenticate") == "" || h.Get("Content-Type") != "application/problem+json" {
				t.Errorf("headers %v", h)
			}
			if strings.Contains(string(b), token[:6]) {
				t.Errorf("the answer tells about the token: %s", b)
			}
		})
	}
	if st, _, b := adminCall(t, "GET", base+"/audit/head", "Bearer "+token, ""); st != 200 {
		t.Fatalf("the right token: %d %s", st, b)
	}
}

// TestAdminAuditReadsLogged: every read of the trail (record searches by
// query string and by body, consultations, exports) logs one info line
// with the actor, the kind of query and its filters; a subject is logged
// only as given, never its value.
func TestAdminAuditReadsLogged(t *testing.T) {
	const token = "admin-token-0123456789"
	const subject = "85010112345"
	base, logs := startAuditAdmin(t, token)
	auth := "Bearer " + token
	for _, tc := range []struct {
		method, path, body string
		want               map[string]any
	}{
		{"GET", "/audit/records?service=person&kind=request", "",
			map[string]any{"query": "records", "service": "person", "subject": false}},
		{"POST", "/audit/records/search", `{"subject":"` + subject + `","organisation":"` + testOrg + `","traceId":"t-1"}`,
			map[string]any{"query": "records", "organisation": testOrg, "traceId": "t-1", "subject": true}},
		{"POST", "/audit/consultations/search", `{"subject":"` + subject + `"}`,
			map[string]any{"query": "consultations", "subject": true}},
		{"GET", "/audit/export?from=1&to=2", "",
			map[string]any{"query": "export", "from": float64(1), "to": float64(2)}},
	} {
		before := strings.Count(logs.String(), "\n")
		st, _, b := adminCall(t, tc.method, base+tc.path, auth, tc.body)
		if st != 200 {
			t.Fatalf("%s %s: %d %s", tc.method, tc.path, st, b)
		}
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")[before:]
		if len(lines) != 1 {
			t.Fatalf("%s %s logged %d lines, want 1: %q", tc.method, tc.path, len(lines), lines)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
			t.Fatal(err)
		}
		if m["level"] != "INFO" || m["msg"] != "audit trail read" || m["actor"] != "token:alice" {
			t.Errorf("%s %s: %s", tc.method, tc.path, lines[0])
		}
		for k, v := range tc.want {
			if m[k] != v {
				t.Errorf("%s %s: %s = %v, want %v (%s)", tc.method, tc.path, k, m[k], v, lines[0])
			}
		}
	}
	if strings.Contains(logs.String(), subject) {
		t.Errorf("a subject identifier was logged:\n%s", logs.String())
	}
}
