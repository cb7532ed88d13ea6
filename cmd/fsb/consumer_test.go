package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// writePKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate with their keys into dir, and returns the file names.
func writePKI(t *testing.T, dir string) (ca, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name string, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, server bool) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		kder, _ := x509.MarshalPKCS8PrivateKey(key)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "PRIVATE KEY", kder)
	}
	ca = write("ca.pem", "CERTIFICATE", caDER)
	srvCert, srvKey = leaf("server", 2, true)
	cliCert, cliKey = leaf("client", 3, false)
	return
}

// TestConsumerOnboarding onboards a consumer from an empty registry to a
// successful production call with fsb consumer commands only, against a
// server started as fsb serve starts it (in process), then checks the
// audit trail with fsb audit.
func TestConsumerOnboarding(t *testing.T) {
	dir := t.TempDir()
	var hits atomic.Int64
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name":"Jan Peeters","birthDate":"1985-01-01"}`)
	}))
	defer src.Close()
	flows := filepath.Join(dir, "flows")
	os.Mkdir(flows, 0o755)
	os.WriteFile(filepath.Join(flows, "person.yaml"), []byte(`kind: Source
name: reg
protocol: rest
rest:
  baseUrl: `+src.URL+`
  operations:
    get: {method: POST, path: /get}
---
kind: Flow
name: person
version: 1.0.0
method: POST
path: /persons/v1/get
legal: {dataCategories: [personIdentity], subject: input.body.ssin}
input:
  body: {type: object, required: [ssin], properties: {ssin: {type: string}}}
steps:
  - {id: a, call: reg.get, with: {body: {ssin: input.body.ssin}}}
output: steps.a.body
`), 0o644)

	ca, srvCert, srvKey, cliCert, cliKey := writePKI(t, dir)
	auditKey, subjectKey, tokenFile := filepath.Join(dir, "audit.key"), filepath.Join(dir, "subject.key"), filepath.Join(dir, "admin.token")
	pub := strings.TrimSpace(runOK(t, "audit", "keygen", "-out", auditKey))
	runOK(t, "audit", "secret", "-out", subjectKey)
	runOK(t, "audit", "secret", "-out", tokenFile)

	f := serveFlags{addr: "127.0.0.1:0", logLevel: "error"}
	f.security = securityFlags{
		tlsCert: srvCert, tlsKey: srvKey, clientCA: ca, testAddr: "127.0.0.1:0",
		accessDir: filepath.Join(dir, "access"), auditDir: filepath.Join(dir, "audit"),
		auditKey: auditKey, subjectKeyFile: subjectKey,
		adminAddr: "127.0.0.1:0", adminTokenFile: tokenFile,
	}
	srv := serveFlows(t, flows, f, serveOptions{})

	admin := []string{"-admin", "http://" + srv.adminAddr, "-admin-token-file", tokenFile, "-actor", "test"}
	consumer := func(args ...string) map[string]any {
		t.Helper()
		out := runOK(t, append(append([]string{"consumer"}, args...), admin...)...)
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("fsb consumer %v printed %q", args, out)
		}
		return m
	}
	const en = "0203.201.340"
	consumer("org", "add", en, "Test Consumer")
	consumer("agreement", "sign", en, "-version", "2026-01", "-signer", "Jan Peeters")
	app := consumer("app", "add", en, "payroll")["id"].(string)
	grant := consumer("grant", "submit", app, "-service", "person/v1", "-basis", "law",
		"-reference", "Law of 8 August 1983, art. 5", "-purposes", "kyc", "-fields", "name")["id"].(string)
	consumer("grant", "approve", grant)
	// A legal basis for a service this gateway does not serve is refused.
	var subOut, subErr bytes.Buffer
	if code := run(append([]string{"consumer", "grant", "submit", app, "-service", "persons/v1", "-basis", "law",
		"-reference", "x", "-purposes", "kyc"}, admin...), &subOut, &subErr); code == 0 || !strings.Contains(subErr.String()+subOut.String(), "no service persons/v1 is served here; the services are") {
		t.Fatalf("grant for an unknown service: exit %d\n%s%s", code, subOut.String(), subErr.String())
	}
	consumer("cert", "add", app, cliCert)
	// Lists: org list has no flags; a filtered list works twice in a row
	// (its URL is not carried over from the previous call).
	if out := runOK(t, append([]string{"consumer", "org", "list"}, admin...)...); !strings.Contains(out, "0203201340") {
		t.Fatalf("org list:\n%s", out)
	}
	for range 2 {
		if out := runOK(t, append([]string{"consumer", "app", "list", en}, admin...)...); !strings.Contains(out, app) {
			t.Fatalf("app list:\n%s", out)
		}
	}
	if st := consumer("ips", "set", app, "127.0.0.1/32")["id"]; st != app {
		t.Fatalf("ips set: %v", st)
	}
	if st := consumer("grant", "show", grant)["state"]; st != "ipsRegistered" {
		t.Fatalf("grant state %v before the connection test", st)
	}

	// Production refuses until the connection test passed.
	cert, err := tls.LoadX509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := loadCertPool(ca)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	callProd := func() (int, string) {
		req, _ := http.NewRequest("POST", "https://"+srv.addr+"/persons/v1/get", strings.NewReader(`{"ssin":"85010112345"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("OpenFSB-Purpose", "kyc")
		req.Header.Set("OpenFSB-End-User", "officer-1")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := callProd(); st != 403 {
		t.Fatalf("production before the connection test: %d %s", st, body)
	}

	out := runOK(t, append([]string{"consumer", "connection-test", "-url", "https://" + srv.testAddr, "-grant", grant,
		"-cert", cliCert, "-key", cliKey, "-ca", ca, "-method", "POST", "-path", "/persons/v1/get",
		"-body", `{"ssin":"85010112345"}`, "-purpose", "kyc", "-audit-pub", pub}, admin...)...)
	if !strings.Contains(out, "is active") || strings.Contains(out, "FAIL") {
		t.Fatalf("connection test:\n%s", out)
	}
	if st, body := callProd(); st != 200 || body != `{"name":"Jan Peeters"}` {
		t.Fatalf("production after onboarding: %d %s", st, body)
	}

	// Suspending the application stops the next call.
	consumer("suspend", app, "-reason", "test")
	if st, _ := callProd(); st != 401 {
		t.Fatalf("call after suspend: %d", st)
	}
	if log := runOK(t, append([]string{"consumer", "log", "-subject", grant}, admin...)...); !strings.Contains(log, "token:test") {
		t.Errorf("admin log without the actor:\n%s", log)
	}

	// The audit trail, through the admin API.
	if out := runOK(t, append([]string{"audit", "verify"}, admin...)...); !strings.Contains(out, "ok: records") {
		t.Fatalf("audit verify:\n%s", out)
	}
	if out := runOK(t, append([]string{"audit", "query", "-subject", "85010112345", "-kind", "request"}, admin...)...); strings.Count(out, "\n") != 2 {
		t.Fatalf("audit query by subject:\n%s", out)
	}
	exp := runOK(t, append([]string{"audit", "export"}, admin...)...)
	expFile := filepath.Join(dir, "export.jsonl")
	os.WriteFile(expFile, []byte(exp), 0o600)
	runOK(t, "audit", "verify-export", "-pub", pub, expFile)
	// A range past the trail's end is a clear error, and leaves no file.
	var stdout, stderr bytes.Buffer
	past := filepath.Join(dir, "past.jsonl")
	if code := run(append([]string{"audit", "export", "-from", "1000000", "-out", past}, admin...), &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "no record to export: the trail ends at record") {
		t.Fatalf("export past the end: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if _, err := os.Stat(past); !os.IsNotExist(err) {
		t.Errorf("a failed export left %s: %v", past, err)
	}

	// After the server stops, offline verify on the directory.
	if code := srv.stop(); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	if out := runOK(t, "audit", "verify", "-dir", f.security.auditDir, "-pub", pub); !strings.Contains(out, "ok: records") {
		t.Fatalf("offline verify:\n%s", out)
	}
}
