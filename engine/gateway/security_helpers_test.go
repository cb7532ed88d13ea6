package gateway_test

// Helpers for the access and audit tests: an ephemeral PKI, a real access
// registry and audit store, a loopback source that counts its hits, and
// the gateway on a real TLS listener with tls.RequestClientCert.

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/access"
	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/gateway"
	"github.com/openfsb/fsb/engine/sources"
)

// testCA is an ephemeral certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func newSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	return n
}

// issue makes a leaf: a client certificate, or a server one for 127.0.0.1.
func (ca *testCA) issue(t testing.TB, cn string, server bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func certPEM(c tls.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
}

// countingSource is a loopback REST source answering one JSON document
// and counting every request that reached it.
type countingSource struct {
	srv  *httptest.Server
	hits atomic.Int64
}

const personDoc = `{"name":"Jan Peeters","address":{"street":"Kerkstraat 1","city":"Gent"},"birthDate":"1985-01-01","ssin":"85010112345"}`

func newCountingSource(t testing.TB) *countingSource {
	cs := &countingSource{}
	cs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.hits.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, personDoc)
	}))
	t.Cleanup(cs.srv.Close)
	return cs
}

// secureFlows: three services on one source. person has a data subject.
const secureFlows = `kind: Source
name: reg
protocol: rest
rest:
  baseUrl: ${SRC}
  operations:
    get: {method: POST, path: /get}
---
kind: Flow
name: person
version: 1.0.0
method: POST
path: /persons/v1/get
legal: {dataCategories: [personIdentity], subject: input.body.id}
input:
  body: {type: object, required: [id], properties: {id: {type: string}}, additionalProperties: false}
steps:
  - {id: a, call: reg.get, with: {body: {id: input.body.id}}}
output: steps.a.body
---
kind: Flow
name: other
version: 1.0.0
method: GET
path: /other/v1/items/{id}
steps:
  - {id: a, call: reg.get, with: {body: {id: input.path.id}}}
output: steps.a.body
---
kind: Flow
name: vat
version: 1.0.0
method: GET
path: /vat/v1/items/{id}
steps:
  - {id: a, call: reg.get, with: {body: {id: input.path.id}}}
output: steps.a.body
---
kind: Flow
name: metered
version: 2.0.0
method: GET
path: /metered/v2/items/{id}
steps:
  - {id: a, call: reg.get, with: {body: {id: input.path.id}}}
output: steps.a.body
`

const (
	purpose   = "kyc"
	endUser   = "officer-42"
	testOrg   = "0203201340"
	otherOrg  = "0417497106"
	adminName = "alice"
	tokenIss  = "https://fsb.test"
	tokenAud  = "https://fsb.test/consumer"
)

var (
	auditKey   = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	subjectKey = audit.Key{ID: "s1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	loopback   = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
)

// secure is a gateway with access and audit on a real TLS listener.
type secure struct {
	t        testing.TB
	ca       *testCA
	server   *x509.CertPool // trusts the gateway's server certificate
	reg      *access.Registry
	store    *audit.Store
	src      *countingSource
	gw       *gateway.Gateway
	base     string // https://127.0.0.1:port
	adminURL string // http://127.0.0.1:port of the admin API
	token    string // admin token

	// app1 is fully onboarded for person (fields name, address.city) and
	// metered (quota 1 per hour) with cert1 and an OAuth client.
	app1, app2       string
	cert1, cert2     tls.Certificate
	clientID, secret string
	personGrant      string

	plans      map[string]*flow.Plan
	conns      map[string]connector.Connector
	serverCert tls.Certificate
}

// listen serves a gateway built from cfg on loopback, over TLS
// (tls.RequestClientCert) or plain HTTP, until the test ends.
func (s *secure) listen(cfg gateway.Config, useTLS bool) (*gateway.Gateway, string) {
	s.t.Helper()
	gw := gateway.New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	addr := ln.Addr().String()
	if useTLS {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{s.serverCert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12})
	}
	go gw.App().Listener(ln)
	s.t.Cleanup(func() { _ = gw.App().ShutdownWithTimeout(5 * time.Second) })
	return gw, addr
}

type secureOpt struct {
	audit     bool
	closeLate bool // keep the store open at cleanup (a test closed it)
}

func newSecure(t testing.TB, o secureOpt) *secure {
	t.Helper()
	s := &secure{t: t, ca: newCA(t, "consumer CA"), src: newCountingSource(t), token: "admin-token-0123456789"}
	serverCA := newCA(t, "server CA")
	s.server = serverCA.pool
	_, tokKey, _ := ed25519.GenerateKey(rand.Reader)
	var err error
	s.reg, err = access.OpenInMemory(access.Options{
		ClientCAs:    s.ca.pool,
		Tokens:       access.TokenConfig{Issuer: tokenIss, Audience: tokenAud, Key: tokKey},
		FailureLimit: 100000, // the suite refuses many calls from one address on purpose
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.reg.Close() })
	if o.audit {
		s.store, err = audit.Open(audit.Options{Dir: t.TempDir(), Signer: auditKey, SubjectKeys: []audit.Key{subjectKey},
			CheckpointEvery: 16, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.store.Close() })
	}
	s.onboard()

	set, plans := loadPlans(t, expand(secureFlows, map[string]string{"SRC": s.src.srv.URL}))
	conns, err := sources.Open(set, sources.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sources.Close(conns) })
	s.plans, s.conns = plans, conns
	s.serverCert = serverCA.issue(t, "gateway", true)
	cfg := gateway.Config{Plans: plans, Runtime: &flow.Runtime{Conns: conns}, Access: s.reg}
	if s.store != nil {
		cfg.Audit = s.store
	}
	var addr string
	s.gw, addr = s.listen(cfg, true)
	s.base = "https://" + addr

	admin := gateway.NewAdmin(gateway.AdminConfig{Access: s.reg, Audit: cfg.Audit, Token: []byte(s.token)})
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go admin.App().Listener(aln)
	t.Cleanup(func() { _ = admin.App().ShutdownWithTimeout(5 * time.Second) })
	s.adminURL = "http://" + aln.Addr().String()
	return s
}

func (s *secure) must(err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
}

// onboard registers two organisations. app1 (testOrg) gets cert1, an OAuth
// client, a loopback allowlist and active grants for person (two fields)
// and metered (quota 1/h), and an expired grant for other. app2
// (otherOrg) gets cert2 and an allowlist that excludes loopback.
func (s *secure) onboard() {
	ctx, r := context.Background(), s.reg
	now := time.Now()
	for _, en := range []string{testOrg, otherOrg} {
		_, err := r.RegisterOrganisation(ctx, adminName, en, "Org "+en)
		s.must(err)
		_, err = r.SignAgreement(ctx, adminName, en, access.Agreement{Version: "2026-01", Signer: "Jan", Signed: now})
		s.must(err)
	}
	a1, err := r.AddApplication(ctx, adminName, testOrg, "payroll")
	s.must(err)
	a2, err := r.AddApplication(ctx, adminName, otherOrg, "elsewhere")
	s.must(err)
	s.app1, s.app2 = a1.ID, a2.ID
	s.cert1, s.cert2 = s.ca.issue(s.t, "app1", false), s.ca.issue(s.t, "app2", false)
	_, err = r.RegisterCertificate(ctx, adminName, s.app1, certPEM(s.cert1))
	s.must(err)
	_, err = r.RegisterCertificate(ctx, adminName, s.app2, certPEM(s.cert2))
	s.must(err)
	cl, secret, err := r.CreateOAuthClient(ctx, adminName, s.app1)
	s.must(err)
	s.clientID, s.secret = cl.ID, secret
	_, err = r.SetAllowlist(ctx, adminName, s.app1, loopback)
	s.must(err)
	_, err = r.SetAllowlist(ctx, adminName, s.app2, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	s.must(err)
	grant := func(app string, svc access.Service, terms func(*access.GrantTerms)) access.Grant {
		gt := access.GrantTerms{
			Service: svc, LegalBasis: access.LegalBasis{Kind: access.Law, Reference: "Law of 8 August 1983, art. 5"},
			Purposes: []string{purpose}, Environment: access.Production,
		}
		if terms != nil {
			terms(&gt)
		}
		g, err := r.SubmitLegalBasis(ctx, adminName, app, gt)
		s.must(err)
		_, err = r.Approve(ctx, adminName, g.ID)
		s.must(err)
		var checks []access.Check
		for _, c := range access.RequiredChecks {
			checks = append(checks, access.Check{Name: c, Passed: true})
		}
		g, err = r.RecordConnectionTest(ctx, adminName, g.ID, access.ConnectionTest{At: now, Checks: checks})
		s.must(err)
		return g
	}
	s.personGrant = grant(s.app1, access.Service{Name: "person", Major: 1}, func(gt *access.GrantTerms) {
		gt.Fields = []string{"name", "address.city"}
	}).ID
	grant(s.app1, access.Service{Name: "metered", Major: 2}, func(gt *access.GrantTerms) {
		gt.Quota = access.Quota{Requests: 1, Period: time.Hour}
	})
	grant(s.app1, access.Service{Name: "other", Major: 1}, func(gt *access.GrantTerms) {
		gt.NotBefore, gt.NotAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	})
	grant(s.app2, access.Service{Name: "person", Major: 1}, nil)
}

// client is an HTTPS client presenting certs (none for no certificate).
func (s *secure) client(certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.server, Certificates: certs, MinVersion: tls.VersionTLS12},
	}}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) problemType() string {
	var p struct{ Type string }
	_ = json.Unmarshal(a.body, &p)
	return p.Type
}

// call sends one request; hdr is name, value pairs.
func (s *secure) call(c *http.Client, method, path, body string, hdr ...string) answer {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	s.must(err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	s.must(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	s.must(err)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// person calls the person service with the right purpose.
func (s *secure) person(c *http.Client, hdr ...string) answer {
	s.t.Helper()
	return s.call(c, "POST", "/persons/v1/get", `{"id":"85010112345"}`, append([]string{"OpenFSB-Purpose", purpose, "OpenFSB-End-User", endUser}, hdr...)...)
}
