package access

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/netip"
	"testing"
	"time"
)

// pki is an ephemeral CA made for one test.
type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	return n
}

func newPKI(t testing.TB, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             t0.Add(-24 * time.Hour),
		NotAfter:              t0.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &pki{cert: cert, key: key, pool: pool}
}

// issue makes a client certificate valid from notBefore to notAfter.
func (p *pki) issue(t testing.TB, cn string, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Test consumer"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func (p *pki) client(t testing.TB, cn string) *x509.Certificate {
	return p.issue(t, cn, t0.Add(-24*time.Hour), t0.Add(365*24*time.Hour))
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// t0 is the tests' "now": admin actions and calls happen then.
var t0 = time.Date(2026, 3, 2, 10, 0, 30, 0, time.UTC)

const (
	testEN      = "0203.201.340"
	testIssuer  = "https://fsb.test"
	testAud     = "https://fsb.test/consumer"
	testPurpose = "kyc"
	testEndUser = "officer-42"
	admin       = "alice"
)

var (
	testService  = Service{Name: "enterprise", Major: 1}
	testIP       = netip.MustParseAddr("192.0.2.10")
	otherIP      = netip.MustParseAddr("198.51.100.7")
	testTokenKey = func() ed25519.PrivateKey {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		return k
	}()
)

// fixture is a registry with one organisation fully onboarded: an
// application with a certificate and an OAuth client, an allowlist, and an
// active production grant for testService and testPurpose.
type fixture struct {
	t      testing.TB
	r      *Registry
	ca     *pki
	cert   *x509.Certificate
	app    Application
	cred   Credential // the certificate credential
	client Credential // the OAuth client
	secret string
	grant  Grant
}

var ctx = context.Background()

func testOptions(ca *pki) Options {
	return Options{
		ClientCAs:     ca.pool,
		Tokens:        TokenConfig{Issuer: testIssuer, Audience: testAud, Key: testTokenKey},
		FailureLimit:  5,
		FailureWindow: time.Minute,
		Now:           func() time.Time { return t0 },
		Logger:        slog.New(slog.DiscardHandler),
	}
}

func newFixture(t testing.TB) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith lets the test change the options first.
func newFixtureWith(t testing.TB, change func(*Options)) *fixture {
	t.Helper()
	ca := newPKI(t, "Test client CA")
	opts := testOptions(ca)
	if change != nil {
		change(&opts)
	}
	r, err := OpenInMemory(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f := &fixture{t: t, r: r, ca: ca, cert: ca.client(t, "app.consumer.test")}
	f.onboard(testService, Quota{})
	return f
}

// onboard runs the whole onboarding for one service and leaves the
// fixture's grant active.
func (f *fixture) onboard(svc Service, q Quota) {
	t, r := f.t, f.r
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Organisation(testEN); err != nil {
		_, err := r.RegisterOrganisation(ctx, admin, testEN, "Test Consumer")
		must(err)
		_, err = r.SignAgreement(ctx, admin, testEN, Agreement{Version: "2026-01", Signer: "Jan Peeters", Signed: t0})
		must(err)
		f.app, err = r.AddApplication(ctx, admin, testEN, "payroll")
		must(err)
	}
	g, err := r.SubmitLegalBasis(ctx, admin, f.app.ID, GrantTerms{
		Service:    svc,
		LegalBasis: LegalBasis{Kind: Law, Reference: "Law of 16 January 2003, art. 17", Link: "https://www.ejustice.just.fgov.be/"},
		Purposes:   []string{testPurpose, "audit"},
		NotBefore:  t0.Add(-time.Hour),
		NotAfter:   t0.Add(30 * 24 * time.Hour),
		Quota:      q,
		Fields:     []string{"name", "directors[*].name"},
	})
	must(err)
	_, err = r.Approve(ctx, admin, g.ID)
	must(err)
	if f.cred.ID == "" {
		f.cred, err = r.RegisterCertificate(ctx, admin, f.app.ID, pemOf(f.cert))
		must(err)
		f.client, f.secret, err = r.CreateOAuthClient(ctx, admin, f.app.ID)
		must(err)
		_, err = r.SetAllowlist(ctx, admin, f.app.ID, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")})
		must(err)
	}
	g, err = r.RecordConnectionTest(ctx, admin, g.ID, passingTest())
	must(err)
	if g.State != GrantActive {
		t.Fatalf("grant state %s after a passed test, want active", g.State)
	}
	f.grant = g
}

func passingTest() ConnectionTest {
	var checks []Check
	for _, c := range RequiredChecks {
		checks = append(checks, Check{Name: c, Passed: true})
	}
	return ConnectionTest{At: t0, Checks: checks}
}

// call is a valid call with the fixture's certificate.
func (f *fixture) call() Call {
	return Call{
		PeerCertificates: []*x509.Certificate{f.cert},
		ClientIP:         testIP,
		Service:          testService,
		Environment:      Production,
		Purpose:          testPurpose,
		EndUser:          testEndUser,
		Time:             t0,
	}
}

func (f *fixture) token(cert *x509.Certificate) string {
	f.t.Helper()
	req := TokenRequest{ClientID: f.client.ID, ClientSecret: f.secret, ClientIP: testIP, Time: t0}
	if cert != nil {
		req.PeerCertificates = []*x509.Certificate{cert}
	}
	tok, err := f.r.IssueToken(ctx, req)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok.AccessToken
}
