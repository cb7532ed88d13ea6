package gateway_test

import (
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/sources"
)

// ---------------------------------------------------------------------------
// 7. How source answers and failures reach the consumer.

func TestE2EUpstreamStatuses(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/notfound", jsonHandler(404, `{"detail":"no such thing at 10.1.2.3"}`))
	mux.HandleFunc("/unavailable", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		jsonHandler(503, `{}`)(w, r)
	})
	mux.HandleFunc("/malformed", jsonHandler(200, `{"name": "Zonnebloem", "broken`))
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>oops</html>"))
	})
	mux.HandleFunc("/ok", jsonHandler(200, `{"name":"Zonnebloem"}`))
	mux.HandleFunc("/huge", jsonHandler(200, `{"pad":"`+strings.Repeat("x", 4096)+`"}`))
	up := upstream(t, mux.ServeHTTP)
	dead := deadURL(t)

	h := start(t, `
kind: Source
name: reg
protocol: rest
rest:
  baseUrl: ${UP}
  maxResponseBytes: 1KiB
  operations:
    notFound: {method: GET, path: /notfound}
    unavailable: {method: GET, path: /unavailable}
    malformed: {method: GET, path: /malformed}
    html: {method: GET, path: /html}
    ok: {method: GET, path: /ok}
    huge: {method: GET, path: /huge}
---
kind: Source
name: gone
protocol: rest
rest:
  baseUrl: ${DEAD}
  timeout: 1s
  operations:
    get: {method: GET, path: /x}
---
kind: Flow
name: unaccepted
version: 1.0.0
method: GET
path: /unaccepted/v1/x
steps:
  - id: lookup
    call: reg.notFound
output: {name: steps.lookup.body.name}
---
kind: Flow
name: accepted
version: 1.0.0
method: GET
path: /accepted/v1/x
steps:
  - id: lookup
    call: reg.notFound
    acceptStatus: [404]
  - id: missing
    when: steps.lookup.status == 404
    set: {known: false}
output:
  status: steps.lookup.status
  known: steps.missing.body?.known ?? true
  skipped: steps.missing.skipped
---
kind: Flow
name: notFoundFail
version: 1.0.0
method: GET
path: /notFoundFail/v1/x
steps:
  - id: lookup
    call: reg.notFound
    acceptStatus: [404]
  - id: outcome
    switch:
      cases:
        - when: steps.lookup.status == 404
          steps:
            - id: unknown
              fail: {type: resourceNotFound, detail: '"no such thing"'}
      default:
        - id: found
          set: {ok: true}
output: {ok: steps.found.body.ok}
---
kind: Flow
name: unavailable
version: 1.0.0
method: GET
path: /unavailable/v1/x
steps:
  - id: lookup
    call: reg.unavailable
output: {name: steps.lookup.body.name}
---
kind: Flow
name: malformedRead
version: 1.0.0
method: GET
path: /malformedRead/v1/x
steps:
  - id: lookup
    call: reg.malformed
output: {name: upper(steps.lookup.body.name)}
---
kind: Flow
name: htmlRead
version: 1.0.0
method: GET
path: /htmlRead/v1/x
steps:
  - id: lookup
    call: reg.html
  - id: use
    when: steps.lookup.body != nil
    set: {x: 1}
output: {x: steps.use.body?.x}
---
kind: Flow
name: malformedPassthrough
version: 1.0.0
method: GET
path: /malformedPassthrough/v1/x
steps:
  - id: lookup
    call: reg.malformed
output: steps.lookup.body
---
kind: Flow
name: malformedExtract
version: 1.0.0
method: GET
path: /malformedExtract/v1/x
steps:
  - id: lookup
    call: reg.malformed
output: {name: steps.lookup.body.name}
---
kind: Flow
name: tooLarge
version: 1.0.0
method: GET
path: /tooLarge/v1/x
steps:
  - id: lookup
    call: reg.huge
output: steps.lookup.body
---
kind: Flow
name: unreachable
version: 1.0.0
method: GET
path: /unreachable/v1/x
steps:
  - id: lookup
    call: gone.get
output: {x: steps.lookup.body.x}
---
kind: Flow
name: badExpr
version: 1.0.0
method: GET
path: /badExpr/v1/x
steps:
  - id: lookup
    call: reg.ok
  - id: compute
    set: {x: steps.lookup.body.missing.deeper}
output: {x: steps.compute.body.x}
`, map[string]string{"UP": up.URL, "DEAD": dead})

	cases := []struct {
		name, path string
		status     int
		typ, step  string
		retryAfter string
		body       string // for 200
	}{
		{name: "unaccepted 404", path: "/unaccepted/v1/x", status: 502, typ: typeBadGateway, step: "lookup"},
		{name: "accepted 404 branches", path: "/accepted/v1/x", status: 200, body: `{"status":404,"known":false,"skipped":false}`},
		{name: "accepted 404 into a fail step", path: "/notFoundFail/v1/x", status: 404, typ: typeNotFound, step: "unknown"},
		{name: "503 with Retry-After", path: "/unavailable/v1/x", status: 503, typ: typeUnavailable, step: "lookup", retryAfter: "7"},
		{name: "malformed JSON read by an expression", path: "/malformedRead/v1/x", status: 502, typ: typeBadGateway, step: "lookup"},
		{name: "HTML read by an expression", path: "/htmlRead/v1/x", status: 502, typ: typeBadGateway, step: "lookup"},
		{name: "answer over maxResponseBytes", path: "/tooLarge/v1/x", status: 502, typ: typeBadGateway, step: "lookup"},
		{name: "unreachable source", path: "/unreachable/v1/x", status: 502, typ: typeBadGateway, step: "lookup"},
		{name: "expression fails at run time", path: "/badExpr/v1/x", status: 500, typ: typeInternal, step: "compute"},
		// README: 502 when a source answered malformed JSON; a passthrough
		// output copies the bytes, but must not turn them into a 500.
		{name: "malformed JSON passed through", path: "/malformedPassthrough/v1/x", status: 502, typ: typeBadGateway, step: "lookup"},
		{name: "malformed JSON extracted", path: "/malformedExtract/v1/x", status: 502, typ: typeBadGateway, step: "lookup"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := *h
			h.t = t
			r := h.get(tc.path)
			checkTraceID(t, r)
			if tc.typ == "" {
				if r.status != tc.status || string(r.body) != tc.body {
					t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.body)
				}
				return
			}
			p := h.problem(r, tc.status, tc.typ)
			if p.Step != tc.step {
				t.Errorf("step %q, want %q", p.Step, tc.step)
			}
			if p.Instance != tc.path {
				t.Errorf("instance %q, want %q", p.Instance, tc.path)
			}
			if tc.step != "unknown" && !strings.Contains(p.Detail, tc.step) {
				t.Errorf("detail %q does not name the step", p.Detail)
			}
			if got := r.header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if strings.Contains(string(r.body), "10.1.2.3") || strings.Contains(string(r.body), "<html>") {
				t.Errorf("the source's own answer leaked into the problem: %s", r.body)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 8. Source retries.

func TestE2ESourceRetry(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		n := hits[r.URL.Path]
		mu.Unlock()
		if n <= 2 {
			jsonHandler(503, `{}`)(w, r)
			return
		}
		jsonHandler(200, `{"attempt":`+strconv.Itoa(n)+`}`)(w, r)
	})
	h := start(t, `
kind: Source
name: flaky
protocol: rest
rest:
  baseUrl: ${UP}
  retry: {attempts: 3, backoff: 5ms, maxBackoff: 20ms}
  operations:
    get: {method: GET, path: "/r/{key}"}
    post: {method: POST, path: "/r/{key}"}
    postIdempotent: {method: POST, path: "/r/{key}", idempotent: true}
    getNotIdempotent: {method: GET, path: "/r/{key}", idempotent: false}
---
kind: Flow
name: retry
version: 1.0.0
method: POST
path: /retry/v1/run
input:
  body:
    type: object
    required: [op, key]
    properties:
      op: {type: string, enum: [get, post, postIdempotent, getNotIdempotent]}
      key: {type: string}
steps:
  - id: route
    switch:
      cases:
        - when: input.body.op == "get"
          steps: [{id: viaGet, call: flaky.get, with: {path: {key: input.body.key}}}]
        - when: input.body.op == "post"
          steps: [{id: viaPost, call: flaky.post, with: {path: {key: input.body.key}, body: {k: input.body.key}}}]
        - when: input.body.op == "postIdempotent"
          steps: [{id: viaPostIdem, call: flaky.postIdempotent, with: {path: {key: input.body.key}, body: {k: input.body.key}}}]
      default:
        - {id: viaGetNot, call: flaky.getNotIdempotent, with: {path: {key: input.body.key}}}
output:
  attempt: steps.viaGet.body?.attempt ?? steps.viaPost.body?.attempt ?? steps.viaPostIdem.body?.attempt ?? steps.viaGetNot.body?.attempt
`, map[string]string{"UP": up.URL})
	cases := []struct {
		op     string
		status int
		hits   int
	}{
		{"get", 200, 3},
		{"post", 503, 1},
		{"postIdempotent", 200, 3},
		{"getNotIdempotent", 503, 1},
	}
	for _, tc := range cases {
		t.Run(tc.op, func(t *testing.T) {
			h := *h
			h.t = t
			before := len(h.obs.all())
			r := h.post("/retry/v1/run", `{"op":"`+tc.op+`","key":"`+tc.op+`"}`)
			if tc.status == 200 {
				if r.status != 200 || string(r.body) != `{"attempt":3}` {
					t.Errorf("got %d %s, want 200 {\"attempt\":3}", r.status, r.body)
				}
			} else {
				h.problem(r, tc.status, typeUnavailable)
			}
			mu.Lock()
			got := hits["/r/"+tc.op]
			mu.Unlock()
			if got != tc.hits {
				t.Errorf("the source was called %d times, want %d", got, tc.hits)
			}
			calls := h.obs.all()[before:]
			if len(calls) != 1 || calls[0].Attempts != tc.hits {
				t.Errorf("observer: %+v, want one call with %d attempts", calls, tc.hits)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 9. Secrets.

func TestE2ESecrets(t *testing.T) {
	var mu sync.Mutex
	var auths []string
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization")+"|"+r.Header.Get("X-Api-Key"))
		mu.Unlock()
		jsonHandler(200, `{"ok":true}`)(w, r)
	})
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("file-token-9876\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tokenFile, 0o600); err != nil {
		t.Fatal(err)
	}
	const srcTmpl = `
kind: Source
name: ${NAME}
protocol: rest
rest:
  baseUrl: ${UP}
  auth: ${AUTH}
  operations:
    get: {method: GET, path: /p}
`
	const flowTmpl = `
---
kind: Flow
name: f${NAME}
version: 1.0.0
method: GET
path: /f${NAME}/v1/x
steps:
  - id: a
    call: ${NAME}.get
output: {ok: steps.a.body.ok}
`
	joinDocs := func(names ...string) string { return strings.Join(names, "\n---\n") }
	src := func(name, auth string) string {
		return expand(srcTmpl, map[string]string{"NAME": name, "AUTH": auth})
	}
	fl := func(name string) string { return expand(flowTmpl, map[string]string{"NAME": name}) }

	t.Run("bearer from env, bearer from file, basic, header", func(t *testing.T) {
		yaml := joinDocs(
			src("envTok", `{type: bearer, token: {env: TOKEN}}`),
			src("fileTok", `{type: bearer, token: {file: "`+tokenFile+`"}}`),
			src("basicAuth", `{type: basic, username: fsb, password: {env: PASSWORD}}`),
			src("headerAuth", `{type: header, header: X-Api-Key, value: {env: API_KEY}}`),
		) + fl("envTok") + fl("fileTok") + fl("basicAuth") + fl("headerAuth")
		h := start(t, yaml, map[string]string{"UP": up.URL},
			withEnv(map[string]string{"TOKEN": "env-token-1234", "PASSWORD": "pw", "API_KEY": "key-5"}))
		want := map[string]string{
			"envTok":     "Bearer env-token-1234|",
			"fileTok":    "Bearer file-token-9876|",
			"basicAuth":  "Basic ZnNiOnB3|",
			"headerAuth": "|key-5",
		}
		for _, name := range []string{"envTok", "fileTok", "basicAuth", "headerAuth"} {
			mu.Lock()
			auths = nil
			mu.Unlock()
			r := h.get("/f" + name + "/v1/x")
			if r.status != 200 || string(r.body) != `{"ok":true}` {
				t.Errorf("%s: %d %s", name, r.status, r.body)
			}
			mu.Lock()
			got := append([]string(nil), auths...)
			mu.Unlock()
			if len(got) != 1 || got[0] != want[name] {
				t.Errorf("%s: the source received %q, want %q", name, got, want[name])
			}
		}
	})

	t.Run("missing env var", func(t *testing.T) {
		yaml := joinDocs(
			src("withSecret", `{type: bearer, token: {env: SET_TOKEN}}`),
			src("withoutSecret", `{type: bearer, token: {env: MISSING_TOKEN}}`),
		) + fl("withSecret") + fl("withoutSecret")
		set, _ := loadPlans(t, expand(yaml, map[string]string{"UP": up.URL}))
		conns, err := sources.Open(set, sources.Options{LookupEnv: func(k string) (string, bool) {
			if k == "SET_TOKEN" {
				return "very-secret-value-42", true
			}
			return "", false
		}})
		if err == nil {
			sources.Close(conns)
			t.Fatal("sources.Open succeeded without MISSING_TOKEN")
		}
		msg := err.Error()
		if !strings.Contains(msg, "MISSING_TOKEN") || !strings.Contains(msg, "withoutSecret") {
			t.Errorf("error %q does not name the variable and the source", msg)
		}
		if strings.Contains(msg, "very-secret-value-42") || strings.Contains(msg, "SET_TOKEN") {
			t.Errorf("error %q mentions another source's secret", msg)
		}
	})

	t.Run("empty env var", func(t *testing.T) {
		set, _ := loadPlans(t, expand(src("emptySecret", `{type: bearer, token: {env: EMPTY}}`), map[string]string{"UP": up.URL}))
		_, err := sources.Open(set, sources.Options{LookupEnv: func(k string) (string, bool) { return "", true }})
		if err == nil || !strings.Contains(err.Error(), "EMPTY") {
			t.Errorf("error %v, want one naming EMPTY", err)
		}
	})

	t.Run("file secrets", func(t *testing.T) {
		open := filepath.Join(dir, "world-readable")
		if err := os.WriteFile(open, []byte("world-secret-777"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(open, 0o644); err != nil {
			t.Fatal(err)
		}
		empty := filepath.Join(dir, "empty")
		if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ name, file, want string }{
			{"world readable", open, "readable"},
			{"missing", filepath.Join(dir, "nope"), "nope"},
			{"empty", empty, "empty"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				set, _ := loadPlans(t, expand(src("fileSecret", `{type: bearer, token: {file: "`+tc.file+`"}}`), map[string]string{"UP": up.URL}))
				conns, err := sources.Open(set, sources.Options{})
				if err == nil {
					sources.Close(conns)
					t.Fatalf("sources.Open accepted the secret file %s", tc.file)
				}
				if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.file) {
					t.Errorf("error %q, want it to name the file and say %q", err, tc.want)
				}
				if strings.Contains(err.Error(), "world-secret-777") {
					t.Errorf("error %q contains the secret", err)
				}
			})
		}
	})
}

// ---------------------------------------------------------------------------
// 10. TLS with client certificates.

type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	kpem []byte
}

var serial atomic.Int64

func newCert(t *testing.T, cn string, parent *pki, isCA bool, ips []net.IP, usage []x509.ExtKeyUsage) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           ips,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{
		cert: cert, key: key,
		pem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		kpem: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestE2ETLSClientCertificates(t *testing.T) {
	loop := []net.IP{net.ParseIP("127.0.0.1")}
	serverCA := newCert(t, "server CA", nil, true, nil, nil)
	serverCert := newCert(t, "registry", serverCA, false, loop, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	clientCA := newCert(t, "client CA", nil, true, nil, nil)
	clientCert := newCert(t, "openfsb", clientCA, false, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	otherCA := newCert(t, "other CA", nil, true, nil, nil)
	rogueClient := newCert(t, "rogue", otherCA, false, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})

	pair, err := tls.X509KeyPair(serverCert.pem, serverCert.kpem)
	if err != nil {
		t.Fatal(err)
	}
	clientPool := x509.NewCertPool()
	clientPool.AddCert(clientCA.cert)
	var peers atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			peers.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		jsonHandler(200, `{"secure":true}`)(w, r)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientPool,
		MinVersion:   tls.VersionTLS12,
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Fatalf("server URL %s", srv.URL)
	}

	dir := t.TempDir()
	files := map[string]string{
		"SERVER_CA":   writeFile(t, dir, "server-ca.pem", serverCA.pem),
		"OTHER_CA":    writeFile(t, dir, "other-ca.pem", otherCA.pem),
		"CLIENT_CERT": writeFile(t, dir, "client.pem", clientCert.pem),
		"CLIENT_KEY":  writeFile(t, dir, "client-key.pem", clientCert.kpem),
		"ROGUE_CERT":  writeFile(t, dir, "rogue.pem", rogueClient.pem),
		"ROGUE_KEY":   writeFile(t, dir, "rogue-key.pem", rogueClient.kpem),
	}
	const tmpl = `
kind: Source
name: secure
protocol: rest
rest:
  baseUrl: ${URL}
  timeout: 2s
  tls: ${TLS}
  operations:
    get: {method: GET, path: /s}
---
kind: Flow
name: secure
version: 1.0.0
method: GET
path: /secure/v1/x
steps:
  - id: fetch
    call: secure.get
output: steps.fetch.body
`
	cases := []struct {
		name, tls string
		status    int
	}{
		{"trusted CA and client certificate", `{caFile: "${SERVER_CA}", certFile: "${CLIENT_CERT}", keyFile: "${CLIENT_KEY}"}`, 200},
		{"a different CA", `{caFile: "${OTHER_CA}", certFile: "${CLIENT_CERT}", keyFile: "${CLIENT_KEY}"}`, 502},
		{"no client certificate", `{caFile: "${SERVER_CA}"}`, 502},
		{"a client certificate the server does not trust", `{caFile: "${SERVER_CA}", certFile: "${ROGUE_CERT}", keyFile: "${ROGUE_KEY}"}`, 502},
		{"system roots only", `{certFile: "${CLIENT_CERT}", keyFile: "${CLIENT_KEY}"}`, 502},
		{"wrong server name", `{caFile: "${SERVER_CA}", certFile: "${CLIENT_CERT}", keyFile: "${CLIENT_KEY}", serverName: registry.example.be}`, 502},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{"URL": srv.URL, "TLS": expand(tc.tls, files)}
			h := start(t, tmpl, vars)
			peers.Store("")
			r := h.get("/secure/v1/x")
			if tc.status == 200 {
				if r.status != 200 || string(r.body) != `{"secure":true}` {
					t.Fatalf("got %d %s", r.status, r.body)
				}
				if cn, _ := peers.Load().(string); cn != "openfsb" {
					t.Errorf("the server saw client certificate %q, want openfsb", cn)
				}
				return
			}
			p := h.problem(r, tc.status, typeBadGateway)
			if p.Step != "fetch" {
				t.Errorf("step %q", p.Step)
			}
			if strings.Contains(strings.ToLower(string(r.body)), "x509") || strings.Contains(strings.ToLower(string(r.body)), "certificate") {
				t.Errorf("the problem shows TLS internals: %s", r.body)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 11. /health.

func TestE2EHealth(t *testing.T) {
	var up [3]atomic.Bool
	var srvs [3]*httptest.Server
	for i := range srvs {
		srvs[i] = upstream(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/health" {
				jsonHandler(404, `{}`)(w, r)
				return
			}
			if up[i].Load() {
				jsonHandler(200, `{"status":"UP"}`)(w, r)
				return
			}
			jsonHandler(503, `{"status":"DOWN"}`)(w, r)
		})
	}
	yaml := ""
	for i := range srvs {
		yaml += expand(`
kind: Source
name: reg${I}
protocol: rest
rest:
  baseUrl: ${URL}
  healthPath: /health
  operations:
    get: {method: GET, path: /x}
---
`, map[string]string{"I": strconv.Itoa(i), "URL": srvs[i].URL})
	}
	yaml += `
kind: Flow
name: dummy
version: 1.0.0
method: GET
path: /dummy/v1/x
output: {x: 1}
`
	h := start(t, yaml, nil, withHealthTTL(time.Nanosecond))
	for i := range srvs {
		h.secrets = append(h.secrets, strings.TrimPrefix(srvs[i].URL, "http://"))
	}
	cases := []struct {
		name   string
		up     [3]bool
		status int
		want   string
	}{
		{"all up", [3]bool{true, true, true}, 200, "UP"},
		{"one down", [3]bool{true, false, true}, 200, "DEGRADED"},
		{"two down", [3]bool{false, false, true}, 200, "DEGRADED"},
		{"all down", [3]bool{false, false, false}, 503, "DOWN"},
		{"back up", [3]bool{true, true, true}, 200, "UP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := *h
			h.t = t
			for i := range up {
				up[i].Store(tc.up[i])
			}
			r := h.get("/health")
			checkTraceID(t, r)
			if r.status != tc.status || string(r.body) != `{"status":"`+tc.want+`"}` {
				t.Errorf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.want)
			}
			if !strings.HasPrefix(r.header.Get("Content-Type"), contentJSON) {
				t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
			}
			h.noInternals(r.body)
		})
	}

	t.Run("a source that does not listen is down; without healthPath it is dialled", func(t *testing.T) {
		alive := upstream(t, jsonHandler(404, `{}`)) // no healthPath: only dialled
		h := start(t, `
kind: Source
name: dialled
protocol: rest
rest: {baseUrl: "${ALIVE}", operations: {get: {method: GET, path: /x}}}
---
kind: Source
name: dead
protocol: rest
rest: {baseUrl: "${DEAD}", healthPath: /health, operations: {get: {method: GET, path: /x}}}
---
kind: Flow
name: dummy
version: 1.0.0
method: GET
path: /dummy/v1/x
output: {x: 1}
`, map[string]string{"ALIVE": alive.URL, "DEAD": deadURL(t)}, withHealthTTL(time.Nanosecond))
		r := h.get("/health")
		if r.status != 200 || string(r.body) != `{"status":"DEGRADED"}` {
			t.Errorf("got %d %s, want 200 DEGRADED", r.status, r.body)
		}
	})

	t.Run("the answer is cached for HealthTTL", func(t *testing.T) {
		var calls atomic.Int32
		srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			jsonHandler(200, `{}`)(w, r)
		})
		h := start(t, `
kind: Source
name: reg
protocol: rest
rest: {baseUrl: "${URL}", healthPath: /health, operations: {get: {method: GET, path: /x}}}
---
kind: Flow
name: dummy
version: 1.0.0
method: GET
path: /dummy/v1/x
output: {x: 1}
`, map[string]string{"URL": srv.URL}, withHealthTTL(time.Hour))
		for range 5 {
			if r := h.get("/health"); string(r.body) != `{"status":"UP"}` {
				t.Fatalf("got %d %s", r.status, r.body)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("the source was probed %d times in 5 /health calls within the TTL, want 1", n)
		}
	})
}

// ---------------------------------------------------------------------------
// 12. Passthrough and output building.

func TestE2EPassthrough(t *testing.T) {
	// Key order, spacing, escapes, a number written as 2.50, non-ASCII text:
	// a passthrough must not touch any of it.
	const raw = "{\"zeta\": 1,\n  \"alpha\": {\"deep\": {\"path\": {\"b\": \"\u00e9\\u00e9 \u2603 \u65e5\u672c \U0001F600\", \"a\": [1, 2.50, true, null]}}},\n  \"nullField\": null, \"emptyObj\": {}, \"list\": [\"x\", {\"k\": \"v\"}],\n  \"ctl\": \"bell\\u0007 nul\\u0000 esc\\u001b tab\\t quote\\\" back\\\\\", \"tag\": \"q\\\" \\udb40\\udc01\"}\n"
	up := upstream(t, jsonHandler(200, raw))
	h := start(t, `
kind: Source
name: reg
protocol: rest
rest:
  baseUrl: ${UP}
  operations:
    get: {method: GET, path: /doc}
---
kind: Flow
name: whole
version: 1.0.0
method: GET
path: /whole/v1/x
steps:
  - id: a
    call: reg.get
output: steps.a.body
---
kind: Flow
name: extract
version: 1.0.0
method: GET
path: /extract/v1/x
steps:
  - id: a
    call: reg.get
output:
  x: steps.a.body.alpha.deep.path
  missing: steps.a.body.nope.nada
  alsoMissing: steps.a.body.alpha.nope
  nullField: steps.a.body.nullField
  nilExpr: nil
  nullLiteral: null
  list: steps.a.body.list
  literal: '"text"'
  number: 42
  arr: [steps.a.body.zeta, nil, steps.a.body.nope]
  nested:
    empty: steps.a.body.emptyObj
    gone: steps.a.body.nope
---
kind: Flow
name: ctl
version: 1.0.0
method: GET
path: /ctl/v1/x
steps:
  - id: a
    call: reg.get
output:
  ctl: steps.a.body.ctl
  tag: steps.a.body.tag
---
kind: Flow
name: decoded
version: 1.0.0
method: GET
path: /decoded/v1/x
steps:
  - id: a
    call: reg.get
  - id: s
    set:
      b: steps.a.body.alpha.deep.path.b
      absent: steps.a.body.nullField
      zeta: steps.a.body.zeta
output:
  s: steps.s.body
  size: len(steps.a.body.list)
`, map[string]string{"UP": up.URL})

	t.Run("byte for byte", func(t *testing.T) {
		r := h.get("/whole/v1/x")
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if !bytes.Equal(r.body, []byte(raw)) {
			t.Errorf("passthrough changed the bytes\n got %q\nwant %q", r.body, raw)
		}
		if r.header.Get("Content-Type") != contentJSON {
			t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
		}
	})
	t.Run("extract raw values, omit absent ones", func(t *testing.T) {
		r := h.get("/extract/v1/x")
		const want = "{\"x\":{\"b\":\"\u00e9\u00e9 \u2603 \u65e5\u672c \U0001F600\",\"a\":[1,2.50,true,null]}," +
			"\"list\":[\"x\",{\"k\":\"v\"}],\"literal\":\"text\",\"number\":42,\"arr\":[1,null,null],\"nested\":{\"empty\":{}}}"
		if string(r.body) != want {
			t.Errorf("body\n got %s\nwant %s", r.body, want)
		}
	})
	t.Run("control characters in an extracted string", func(t *testing.T) {
		var src struct{ Ctl, Tag string }
		if err := json.Unmarshal([]byte(raw), &src); err != nil {
			t.Fatal(err)
		}
		r := h.get("/ctl/v1/x")
		var got struct{ Ctl, Tag string }
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("BUG: the consumer received invalid JSON (%v): %s", err, r.body)
		}
		if got != src {
			t.Errorf("got %+q, want %+q", got, src)
		}
	})
	t.Run("decoded values, nil left out of set objects", func(t *testing.T) {
		r := h.get("/decoded/v1/x")
		const want = "{\"s\":{\"b\":\"\u00e9\u00e9 \u2603 \u65e5\u672c \U0001F600\",\"zeta\":1},\"size\":2}"
		if string(r.body) != want {
			t.Errorf("body\n got %s\nwant %s", r.body, want)
		}
	})
}

// ---------------------------------------------------------------------------
// A call's request: path, query, headers and body as the source receives them.

func TestE2ECallRequest(t *testing.T) {
	type seen struct {
		method, path, rawQuery, ctype, accept, lang string
		body                                        []byte
	}
	got := make(chan seen, 1)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 0, 256)
		buf := bytes.NewBuffer(b)
		_, _ = buf.ReadFrom(r.Body)
		select {
		case got <- seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Content-Type"), r.Header.Get("Accept"), r.Header.Get("Accept-Language"), buf.Bytes()}:
		default:
		}
		jsonHandler(200, `{"ok":true}`)(w, r)
	})
	h := start(t, `
kind: Source
name: reg
protocol: rest
rest:
  baseUrl: ${UP}/base/
  headers: {Accept-Language: nl}
  operations:
    put: {method: PUT, path: "/things/{id}/parts/{part}", query: {static: "1"}}
---
kind: Flow
name: req
version: 1.0.0
method: POST
path: /req/v1/things/{id}
input:
  path: {properties: {id: {type: string}}}
  query: {properties: {n: {type: integer}}}
  body: {type: object, properties: {name: {type: string}}}
steps:
  - id: call
    call: reg.put
    with:
      path: {id: input.path.id, part: '"a/b c"'}
      query: {n: input.query.n, absent: nil}
      headers: {Accept-Language: '"fr"'}
      body: {name: input.body.name, absent: nil, n: input.query.n}
output: {ok: steps.call.body.ok}
`, map[string]string{"UP": up.URL})
	r := h.post("/req/v1/things/x%2Fy?n=5", `{"name":"Zon\u00e9"}`)
	if r.status != 200 || string(r.body) != `{"ok":true}` {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	var s seen
	select {
	case s = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the source received nothing")
	}
	if s.method != "PUT" {
		t.Errorf("method %s", s.method)
	}
	if s.path != "/base/things/x%2Fy/parts/a%2Fb%20c" {
		t.Errorf("path %s", s.path)
	}
	if q := s.rawQuery; !strings.Contains(q, "n=5") || !strings.Contains(q, "static=1") || strings.Contains(q, "absent") {
		t.Errorf("query %s", q)
	}
	if s.ctype != contentJSON || s.accept != contentJSON || s.lang != "fr" {
		t.Errorf("headers Content-Type %q Accept %q Accept-Language %q", s.ctype, s.accept, s.lang)
	}
	var body map[string]any
	if err := json.Unmarshal(s.body, &body); err != nil {
		t.Fatalf("body %s: %v", s.body, err)
	}
	if len(body) != 2 || body["name"] != "Zoné" || body["n"] != float64(5) {
		t.Errorf("body %s", s.body)
	}
}

// Step-level retry (around the whole call) and what the observer hears when
// the source's own retries end in a transport failure.
func TestE2EStepRetryAndAttempts(t *testing.T) {
	var hits atomic.Int32
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= 2 {
			jsonHandler(502, `{}`)(w, r)
			return
		}
		jsonHandler(200, `{"ok":true}`)(w, r)
	})
	h := start(t, `
kind: Source
name: flaky
protocol: rest
rest:
  baseUrl: ${UP}
  operations:
    get: {method: GET, path: /x}
---
kind: Source
name: gone
protocol: rest
rest:
  baseUrl: ${DEAD}
  retry: {attempts: 3, backoff: 5ms, maxBackoff: 10ms}
  operations:
    get: {method: GET, path: /x}
---
kind: Flow
name: stepRetry
version: 1.0.0
method: GET
path: /stepRetry/v1/x
steps:
  - id: a
    call: flaky.get
    retry: {attempts: 3, backoff: 5ms, maxBackoff: 10ms}
output: {ok: steps.a.body.ok}
---
kind: Flow
name: goneRetry
version: 1.0.0
method: GET
path: /goneRetry/v1/x
steps:
  - id: b
    call: gone.get
output: {ok: steps.b.body.ok}
`, map[string]string{"UP": up.URL, "DEAD": deadURL(t)})

	t.Run("step retry", func(t *testing.T) {
		h := *h
		h.t = t
		r := h.get("/stepRetry/v1/x")
		if r.status != 200 || string(r.body) != `{"ok":true}` {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		if n := hits.Load(); n != 3 {
			t.Errorf("the source was called %d times, want 3", n)
		}
		calls := h.obs.all()
		if len(calls) != 3 {
			t.Fatalf("observer saw %d calls, want 3 (one per step attempt)", len(calls))
		}
		ids := map[string]bool{}
		for _, c := range calls {
			ids[c.TraceID] = true
		}
		if len(ids) != 3 {
			t.Errorf("the step's attempts shared trace ids: %d distinct", len(ids))
		}
	})
	t.Run("source retries ending in a transport error", func(t *testing.T) {
		h := *h
		h.t = t
		before := len(h.obs.all())
		r := h.get("/goneRetry/v1/x")
		h.problem(r, 502, typeBadGateway)
		calls := h.obs.all()[before:]
		if len(calls) != 1 {
			t.Fatalf("observer saw %d calls, want 1", len(calls))
		}
		if calls[0].Err == nil {
			t.Errorf("observer: no error for an unreachable source")
		}
		if calls[0].Attempts != 3 {
			t.Errorf("BUG: observer reports %d attempt(s) for a call the connector tried 3 times", calls[0].Attempts)
		}
	})
}

// A compressed request body is limited like any other: the gateway must not
// inflate more than the flow's maxBodySize to find out it is too large.
func TestE2ECompressedBodyIsBounded(t *testing.T) {
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
`, nil)
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		_, _ = w.Write(b)
		_ = w.Close()
		return buf.Bytes()
	}
	t.Run("small gzip body", func(t *testing.T) {
		h := *h
		h.t = t
		r := h.do(http.MethodPost, "/small/v1/echo", gz([]byte(`{"s":"abc"}`)), "Content-Encoding", "gzip")
		if r.status != 200 || string(r.body) != `{"n":3}` {
			t.Errorf("got %d %s", r.status, r.body)
		}
	})
	t.Run("gzip body that is not gzip", func(t *testing.T) {
		h := *h
		h.t = t
		r := h.do(http.MethodPost, "/small/v1/echo", []byte(`{"s":"abc"}`), "Content-Encoding", "gzip")
		if r.status < 400 || r.status >= 500 {
			t.Errorf("got %d %s, want a 4xx problem", r.status, r.body)
		}
		h.noInternals(r.body)
	})
	t.Run("gzip bomb", func(t *testing.T) {
		h := *h
		h.t = t
		const inflated = 8 << 20
		payload := append([]byte(`{"s":"`), bytes.Repeat([]byte("a"), inflated)...)
		payload = append(payload, `"}`...)
		bomb := gz(payload)
		payload = nil
		if len(bomb) > 1<<20 {
			t.Fatalf("compressed bomb is %d bytes, over the global limit", len(bomb))
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := h.do(http.MethodPost, "/small/v1/echo", bomb, "Content-Encoding", "gzip")
		runtime.ReadMemStats(&after)
		h.problem(r, 413, typeTooLarge)
		if grown := after.TotalAlloc - before.TotalAlloc; grown > 4<<20 {
			t.Errorf("BUG: answering 413 for a %d-byte gzip body to a 1KiB flow allocated %d MiB: the body was inflated without a limit",
				len(bomb), grown>>20)
		}
	})
}
