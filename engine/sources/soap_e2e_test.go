package sources_test

// End to end: a flow calls the VIES checkVat operation of a SOAP source
// through the real gateway on a loopback listener, with the committed
// codec module (plugins/soap/soap.wasm) running in the sandbox, against a
// mock SOAP server. Nothing of OpenFSB is mocked.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/gateway"
	"github.com/openfsb/fsb/engine/modules"
	"github.com/openfsb/fsb/engine/sources"
	"github.com/openfsb/fsb/engine/spec"
)

var (
	soapFixtures = filepath.Join("..", "connector", "soap", "testdata")
	codecModule  = filepath.Join("..", "..", "plugins", "soap", "soap.wasm")
)

// soapDocs are the documents of the tests: the codec plugin, the VIES
// source and two flows (one reads fields, one passes the answer through).
const soapDocs = `
kind: Plugin
name: soapCodec
module: ${MODULE}
digest: sha256:${DIGEST}
limits: {timeout: 2s}
---
kind: Source
name: vies
protocol: soap
soap:
  wsdl: ${WSDL}
  endpoint: ${ENDPOINT}
  codec: soapCodec
  timeout: 5s
---
kind: Flow
name: vatCheck
version: 1.0.0
method: POST
path: /vatCheck/v1/check
input:
  body:
    type: object
    required: [countryCode, vatNumber]
    properties: {countryCode: {type: string}, vatNumber: {type: string}}
steps:
  - id: vat
    call: vies.checkVat
    with:
      body:
        countryCode: input.body.countryCode
        vatNumber: input.body.vatNumber
output:
  vatNumber: steps.vat.body.countryCode + steps.vat.body.vatNumber
  valid: steps.vat.body.valid
  name: steps.vat.body.name
---
kind: Flow
name: vatRaw
version: 1.0.0
method: POST
path: /vatRaw/v1/check
input:
  body: {type: object, properties: {vatNumber: {type: string}}}
steps:
  - id: vat
    call: vies.checkVat
    with: {body: {countryCode: '"BE"', vatNumber: input.body.vatNumber}}
output: steps.vat.body
`

// soapVars are the values of the ${…} in soapDocs.
func soapVars(t testing.TB, endpoint string) map[string]string {
	t.Helper()
	mod, err := filepath.Abs(codecModule)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(mod)
	if err != nil {
		t.Fatalf("the codec module is committed beside its source: %v (build it: go run ./cmd/fsb plugin build -o plugins/soap/soap.wasm plugins/soap/wasm)", err)
	}
	sum := sha256.Sum256(b)
	wsdl, err := filepath.Abs(filepath.Join(soapFixtures, "checkVatService.wsdl"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"MODULE": mod, "DIGEST": hex.EncodeToString(sum[:]), "WSDL": wsdl, "ENDPOINT": endpoint}
}

func expand(text string, vars map[string]string) string {
	for k, v := range vars {
		text = strings.ReplaceAll(text, "${"+k+"}", v)
	}
	return text
}

// soapStack is a loaded set with its plugins and sources open.
type soapStack struct {
	set   *spec.Set
	plans map[string]*flow.Plan
	conns map[string]connector.Connector
}

// openSOAPStack loads docs, loads the plugins (the codec as WebAssembly)
// and opens the sources with them, as fsb serve does.
func openSOAPStack(t testing.TB, docs string) *soapStack {
	t.Helper()
	set, err := spec.Load(map[string][]byte{"soap.yaml": []byte(docs)})
	if err != nil {
		t.Fatalf("spec.Load: %v", err)
	}
	plans, err := flow.Compile(set)
	if err != nil {
		t.Fatalf("flow.Compile: %v", err)
	}
	plugins, closePlugins, err := modules.Open(context.Background(), set, modules.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatalf("modules.Open: %v", err)
	}
	t.Cleanup(closePlugins)
	conns, err := sources.Open(set, sources.Options{Plugins: plugins})
	if err != nil {
		t.Fatalf("sources.Open: %v", err)
	}
	t.Cleanup(func() { sources.Close(conns) })
	return &soapStack{set: set, plans: plans, conns: conns}
}

// mockVIES answers checkVat by the VAT number asked: the fixtures'
// response, a fault whose detail holds a stack trace, an HTML error page,
// or an answer larger than the source accepts.
func mockVIES(t testing.TB) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(soapFixtures, "messages", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ok, invalid := read("checkVat.response.xml"), read("checkVat.invalid.xml")
	fault := `<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><env:Fault>` +
		`<faultcode>env:Server</faultcode><faultstring>MS_UNAVAILABLE` + "\t\n   member state\u202e down" + `</faultstring>` +
		`<faultactor>http://10.1.2.3/internal</faultactor>` +
		`<detail><trace>java.lang.IllegalStateException at eu.europa.vies.Checker.check(Checker.java:42)</trace></detail>` +
		`</env:Fault></env:Body></env:Envelope>`
	var calls atomic.Int32
	vatRe := regexp.MustCompile(`<ns1:vatNumber>([^<]*)</ns1:vatNumber>`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("SOAPAction") != `""` || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/xml") {
			http.Error(w, "not a SOAP 1.1 call", http.StatusBadRequest)
			return
		}
		m := vatRe.FindSubmatch(body)
		if m == nil {
			http.Error(w, "no vatNumber", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		switch string(m[1]) {
		case "0417497106":
			w.Write(ok)
		case "0000000000":
			w.Write(invalid)
		case "1":
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, fault)
		case "2":
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html><body>Service Temporarily Unavailable</body></html>")
		case "3":
			w.Write([]byte(strings.Repeat(" ", 300<<10)))
			w.Write(ok)
		default:
			http.Error(w, "unknown", http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// serve runs the gateway on 127.0.0.1:0 until the test ends.
func serve(t *testing.T, st *soapStack) string {
	t.Helper()
	gw := gateway.New(gateway.Config{Plans: st.plans, Runtime: &flow.Runtime{Conns: st.conns}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.App().Listener(ln) }()
	t.Cleanup(func() {
		_ = gw.App().ShutdownWithTimeout(5 * time.Second)
		_ = ln.Close() // Shutdown misses a listener Listener has not registered yet
		<-done
	})
	return "http://" + ln.Addr().String()
}

func postJSON(t *testing.T, url, body string) (int, string, map[string]any) {
	t.Helper()
	c := &http.Client{Timeout: 15 * time.Second}
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, b)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), m
}

func TestSOAPFlowEndToEnd(t *testing.T) {
	srv, calls := mockVIES(t)
	vars := soapVars(t, srv.URL)
	base := serve(t, openSOAPStack(t, expand(soapDocs, vars)))

	t.Run("answer", func(t *testing.T) {
		status, ct, got := postJSON(t, base+"/vatCheck/v1/check", `{"countryCode":"BE","vatNumber":"0417497106"}`)
		if status != 200 || ct != "application/json" {
			t.Fatalf("status %d %s: %v", status, ct, got)
		}
		want := map[string]any{"vatNumber": "BE0417497106", "valid": true, "name": "NV ANHEUSER-BUSCH IN BEV"}
		if b1, b2 := mustJSON(got), mustJSON(want); b1 != b2 {
			t.Errorf("got %s, want %s", b1, b2)
		}
	})
	t.Run("passthrough keeps the codec's typed JSON", func(t *testing.T) {
		status, _, got := postJSON(t, base+"/vatRaw/v1/check", `{"vatNumber":"0000000000"}`)
		if status != 200 {
			t.Fatalf("status %d: %v", status, got)
		}
		if got["valid"] != false || got["countryCode"] != "BE" {
			t.Errorf("got %v", got)
		}
		if _, ok := got["name"]; ok {
			t.Errorf("an absent name is left out, got %v", got)
		}
	})
	problems := []struct {
		name, vat string
		detail    []string // all must occur
	}{
		{"fault", "1", []string{`step "vat": source "vies" answered a SOAP fault "Server": MS_UNAVAILABLE member state down`}},
		{"not XML", "2", []string{`step "vat": source "vies" answered with a malformed response`}},
		{"too large", "3", []string{`step "vat": the answer of source "vies" is too large`}},
	}
	for _, c := range problems {
		t.Run(c.name, func(t *testing.T) {
			status, ct, got := postJSON(t, base+"/vatCheck/v1/check", `{"countryCode":"BE","vatNumber":"`+c.vat+`"}`)
			if status != 502 || ct != "application/problem+json" || got["type"] != "urn:problem-type:belgif:badGateway" || got["step"] != "vat" {
				t.Fatalf("status %d %s: %v", status, ct, got)
			}
			detail, _ := got["detail"].(string)
			for _, d := range c.detail {
				if !strings.Contains(detail, d) {
					t.Errorf("detail %q lacks %q", detail, d)
				}
			}
			body := mustJSON(got)
			for _, leak := range []string{"java", "Checker", "10.1.2.3", "internal", "\u202e", "\a", srv.Listener.Addr().String(), "127.0.0.1"} {
				if strings.Contains(body, leak) {
					t.Errorf("the problem shows %q: %s", leak, body)
				}
			}
		})
	}
	if n := calls.Load(); n != 5 {
		t.Errorf("the source was called %d times, want 5 (SOAP calls are not retried)", n)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
