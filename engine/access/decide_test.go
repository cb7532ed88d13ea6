package access

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/openfsb/fsb/engine/problem"
)

// forge signs claims of our shape with any method and key, to try what an
// attacker would.
func forge(t *testing.T, method jwt.SigningMethod, key any, mutate func(*accessClaims, map[string]any)) string {
	t.Helper()
	c := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: testIssuer, Subject: "crd_x", Audience: jwt.ClaimStrings{testAud},
			IssuedAt: jwt.NewNumericDate(t0), ExpiresAt: jwt.NewNumericDate(t0.Add(time.Minute)),
		},
		ClientID: "crd_x",
	}
	tok := jwt.NewWithClaims(method, &c)
	tok.Header["typ"] = tokenType
	tok.Header["kid"] = keyID(testTokenKey.Public().(ed25519.PublicKey))
	if mutate != nil {
		mutate(&c, tok.Header)
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDecide(t *testing.T) {
	otherCA := newPKI(t, "Untrusted CA")
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)

	cases := []struct {
		name   string
		setup  func(t *testing.T, f *fixture, c *Call)
		typ    string // Belgif problem name; "" means allowed
		status int
		step   Step
		detail string // a substring of the detail
	}{
		{name: "certificate: allowed", setup: func(t *testing.T, f *fixture, c *Call) {}},
		{name: "token without certificate: allowed", setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken, c.PeerCertificates = f.token(nil), nil
		}},
		{name: "token bound to the presented certificate: allowed", setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken = f.token(f.cert)
		}},
		{name: "IPv6 address in the allowlist: allowed", setup: func(t *testing.T, f *fixture, c *Call) {
			c.ClientIP = netip.MustParseAddr("2001:db8::5")
		}},
		{name: "IPv4-mapped address: allowed", setup: func(t *testing.T, f *fixture, c *Call) {
			c.ClientIP = netip.MustParseAddr("::ffff:192.0.2.10")
		}},
		{name: "no certificate, no token", typ: "noAccessToken", status: 401, step: StepCredential, detail: "neither", setup: func(t *testing.T, f *fixture, c *Call) {
			c.PeerCertificates = nil
		}},
		{name: "certificate from an untrusted CA", typ: "invalidAccessToken", status: 401, step: StepCertificate, detail: detailCertificate, setup: func(t *testing.T, f *fixture, c *Call) {
			c.PeerCertificates = []*x509.Certificate{otherCA.client(t, "app.consumer.test")}
		}},
		{name: "trusted but unregistered certificate", typ: "invalidAccessToken", status: 401, step: StepCredential, detail: detailCertificate, setup: func(t *testing.T, f *fixture, c *Call) {
			c.PeerCertificates = []*x509.Certificate{f.ca.client(t, "stranger.test")}
		}},
		{name: "expired certificate", typ: "invalidAccessToken", status: 401, step: StepCertificate, detail: detailCertificate, setup: func(t *testing.T, f *fixture, c *Call) {
			c.PeerCertificates = []*x509.Certificate{f.ca.issue(t, "old.test", t0.Add(-48*time.Hour), t0.Add(-time.Hour))}
		}},
		{name: "revoked credential", typ: "invalidAccessToken", status: 401, step: StepCredential, detail: detailCertificate, setup: func(t *testing.T, f *fixture, c *Call) {
			mustDo(t, f.r.Revoke(ctx, admin, f.cred.ID, "key compromised"))
		}},
		{name: "suspended organisation", typ: "invalidAccessToken", status: 401, step: StepCredential, setup: func(t *testing.T, f *fixture, c *Call) {
			mustDo(t, f.r.Suspend(ctx, admin, testEN, "unpaid"))
		}},
		{name: "IP outside the allowlist", typ: "missingPermission", status: 403, step: StepSourceIP, detail: "198.51.100.7", setup: func(t *testing.T, f *fixture, c *Call) {
			c.ClientIP = otherIP
		}},
		{name: "no client IP", typ: "missingPermission", status: 403, step: StepSourceIP, setup: func(t *testing.T, f *fixture, c *Call) {
			c.ClientIP = netip.Addr{}
		}},
		{name: "grant for another service", typ: "missingPermission", status: 403, step: StepGrant, detail: "no grant in effect", setup: func(t *testing.T, f *fixture, c *Call) {
			c.Service = Service{Name: "person", Major: 1}
		}},
		{name: "grant for another major version", typ: "missingPermission", status: 403, step: StepGrant, setup: func(t *testing.T, f *fixture, c *Call) {
			c.Service.Major = 2
		}},
		{name: "suspended grant", typ: "missingPermission", status: 403, step: StepGrant, setup: func(t *testing.T, f *fixture, c *Call) {
			mustDo(t, f.r.Suspend(ctx, admin, f.grant.ID, "audit pending"))
		}},
		{name: "revoked grant", typ: "missingPermission", status: 403, step: StepGrant, setup: func(t *testing.T, f *fixture, c *Call) {
			mustDo(t, f.r.Revoke(ctx, admin, f.grant.ID, "legal basis repealed"))
		}},
		{name: "wrong purpose", typ: "missingPermission", status: 403, step: StepPurpose, detail: HeaderPurpose, setup: func(t *testing.T, f *fixture, c *Call) {
			c.Purpose = "marketing"
		}},
		{name: "missing purpose", typ: "badRequest", status: 400, step: StepPurpose, setup: func(t *testing.T, f *fixture, c *Call) {
			c.Purpose = ""
		}},
		{name: "missing end user", typ: "badRequest", status: 400, step: StepPurpose, setup: func(t *testing.T, f *fixture, c *Call) {
			c.EndUser = ""
		}},
		{name: "end user is an SSIN", typ: "badRequest", status: 400, step: StepPurpose, setup: func(t *testing.T, f *fixture, c *Call) {
			c.EndUser = "85.07.30-033.28"
		}},
		{name: "expired grant", typ: "missingPermission", status: 403, step: StepValidity, detail: "not valid at this time", setup: func(t *testing.T, f *fixture, c *Call) {
			end := t0.Add(-time.Minute)
			_, err := f.r.AmendGrant(ctx, admin, f.grant.ID, Amendment{NotAfter: &end})
			mustDo(t, err)
		}},
		{name: "grant not yet valid", typ: "missingPermission", status: 403, step: StepValidity, setup: func(t *testing.T, f *fixture, c *Call) {
			c.Time = t0.Add(-2 * time.Hour)
		}},
		{name: "token bound to another certificate", typ: "invalidAccessToken", status: 401, step: StepCredential, detail: "bound", setup: func(t *testing.T, f *fixture, c *Call) {
			other := f.ca.client(t, "second.consumer.test")
			_, err := f.r.RegisterCertificate(ctx, admin, f.app.ID, pemOf(other))
			mustDo(t, err)
			c.BearerToken = f.token(other)
		}},
		{name: "bound token without a certificate", typ: "invalidAccessToken", status: 401, step: StepCredential, detail: "bound", setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken, c.PeerCertificates = f.token(f.cert), nil
		}},
		{name: "expired token", typ: "expiredAccessToken", status: 401, step: StepCredential, setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken = f.token(nil)
			c.Time = t0.Add(10 * time.Minute)
		}},
		{name: "token within leeway: allowed", setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken = f.token(nil)
			c.Time = t0.Add(5*time.Minute + 20*time.Second)
		}},
		{name: "token of a revoked client", typ: "invalidAccessToken", status: 401, step: StepCredential, setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken, c.PeerCertificates = f.token(nil), nil
			mustDo(t, f.r.Revoke(ctx, admin, f.client.ID, "left"))
		}},
		{name: "token alg none", typ: "invalidAccessToken", status: 401, step: StepCredential, setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken = forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, func(ac *accessClaims, _ map[string]any) {
				ac.ClientID, ac.Subject = f.client.ID, f.client.ID
			})
		}},
		{name: "token HS256 keyed with the public key", typ: "invalidAccessToken", status: 401, step: StepCredential, setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken = forge(t, jwt.SigningMethodHS256, []byte(testTokenKey.Public().(ed25519.PublicKey)), func(ac *accessClaims, _ map[string]any) {
				ac.ClientID, ac.Subject = f.client.ID, f.client.ID
			})
		}},
		{name: "token signed by another key", typ: "invalidAccessToken", status: 401, step: StepCredential, setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken = forge(t, jwt.SigningMethodEdDSA, otherKey, func(ac *accessClaims, _ map[string]any) {
				ac.ClientID, ac.Subject = f.client.ID, f.client.ID
			})
		}},
		{name: "expired token signed by another key is invalid, not expired", typ: "invalidAccessToken", status: 401, step: StepCredential, setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken = forge(t, jwt.SigningMethodEdDSA, otherKey, func(ac *accessClaims, _ map[string]any) {
				ac.ClientID, ac.Subject = f.client.ID, f.client.ID
				ac.ExpiresAt = jwt.NewNumericDate(t0.Add(-time.Hour))
			})
		}},
		{name: "token for another audience", typ: "invalidAccessToken", status: 401, step: StepCredential, setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken = forge(t, jwt.SigningMethodEdDSA, testTokenKey, func(ac *accessClaims, _ map[string]any) {
				ac.ClientID, ac.Subject, ac.Audience = f.client.ID, f.client.ID, jwt.ClaimStrings{"https://elsewhere"}
			})
		}},
		{name: "token from another issuer", typ: "invalidAccessToken", status: 401, step: StepCredential, setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken = forge(t, jwt.SigningMethodEdDSA, testTokenKey, func(ac *accessClaims, _ map[string]any) {
				ac.ClientID, ac.Subject, ac.Issuer = f.client.ID, f.client.ID, "https://evil"
			})
		}},
		{name: "JWT that is not an access token (typ)", typ: "invalidAccessToken", status: 401, step: StepCredential, setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken = forge(t, jwt.SigningMethodEdDSA, testTokenKey, func(ac *accessClaims, h map[string]any) {
				ac.ClientID, ac.Subject = f.client.ID, f.client.ID
				h["typ"] = "JWT"
			})
		}},
		{name: "token without expiry", typ: "invalidAccessToken", status: 401, step: StepCredential, setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken = forge(t, jwt.SigningMethodEdDSA, testTokenKey, func(ac *accessClaims, _ map[string]any) {
				ac.ClientID, ac.Subject, ac.ExpiresAt = f.client.ID, f.client.ID, nil
			})
		}},
		{name: "garbage token", typ: "invalidAccessToken", status: 401, step: StepCredential, setup: func(t *testing.T, f *fixture, c *Call) {
			c.BearerToken = "not.a.jwt"
		}},
		{name: "quota exceeded", typ: "tooManyRequests", status: 429, step: StepQuota, setup: func(t *testing.T, f *fixture, c *Call) {
			q := Quota{Requests: 2, Period: time.Hour}
			_, err := f.r.AmendGrant(ctx, admin, f.grant.ID, Amendment{Quota: &q})
			mustDo(t, err)
			for range 2 {
				if d := f.r.Decide(ctx, *c); !d.Allowed {
					t.Fatalf("call within quota refused: %v", d.Problem)
				}
			}
		}},
		{name: "repeated failures", typ: "tooManyFailedRequests", status: 429, step: StepFailedRequests, setup: func(t *testing.T, f *fixture, c *Call) {
			bad := *c
			bad.PeerCertificates = []*x509.Certificate{f.ca.client(t, "guess.test")}
			for range f.r.opts.FailureLimit {
				if d := f.r.Decide(ctx, bad); d.Allowed || d.Step != StepCredential {
					t.Fatalf("unregistered certificate: %+v", d)
				}
			}
			// Now even the valid certificate is refused from that address.
		}},
		{name: "test environment: production grant pending its connection test", setup: func(t *testing.T, f *fixture, c *Call) {
			pendingGrant(t, f, Service{Name: "person", Major: 1})
			c.Service, c.Environment = Service{Name: "person", Major: 1}, Test
		}},
		{name: "production: grant pending its connection test", typ: "missingPermission", status: 403, step: StepGrant, setup: func(t *testing.T, f *fixture, c *Call) {
			pendingGrant(t, f, Service{Name: "person", Major: 1})
			c.Service = Service{Name: "person", Major: 1}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			c := f.call()
			tc.setup(t, f, &c)
			d := f.r.Decide(ctx, c)
			if tc.typ == "" {
				if !d.Allowed {
					t.Fatalf("refused at %s: %s (%s)", d.Step, d.Problem.Detail, d.Reason)
				}
				checkAllowed(t, f, d)
				return
			}
			if d.Allowed {
				t.Fatalf("allowed, want %s", tc.typ)
			}
			p := d.Problem
			if p.Type != problem.BelgifPrefix+tc.typ || p.Status != tc.status || d.Step != tc.step {
				t.Fatalf("got %s %d at %s (%s), want %s %d at %s", p.Type, p.Status, d.Step, d.Reason, tc.typ, tc.status, tc.step)
			}
			if !strings.Contains(p.Detail+issueDetails(p), tc.detail) {
				t.Errorf("detail %q does not mention %q", p.Detail, tc.detail)
			}
			if (tc.status == 429) != (p.RetryAfter > 0) {
				t.Errorf("Retry-After %d for status %d", p.RetryAfter, tc.status)
			}
			// Nothing secret or internal reaches the consumer.
			body := string(p.JSON())
			for _, leak := range []string{f.secret, f.grant.ID, f.cred.ID, f.app.ID, "crd_", "grt_", "x509"} {
				if leak != "" && strings.Contains(body, leak) {
					t.Errorf("problem leaks %q: %s", leak, body)
				}
			}
			if c.BearerToken != "" && strings.Contains(d.Reason, c.BearerToken) {
				t.Errorf("reason holds the token")
			}
		})
	}
}

func issueDetails(p *problem.Problem) string {
	var b strings.Builder
	for _, i := range p.Issues {
		b.WriteString(i.Name + " " + i.Detail)
	}
	return b.String()
}

func checkAllowed(t *testing.T, f *fixture, d Decision) {
	t.Helper()
	if d.Problem != nil || d.Step != "" {
		t.Errorf("allowed with a problem: %+v", d)
	}
	if d.Organisation != "0203201340" || d.Application != f.app.ID || d.Grant == "" || d.Credential == "" {
		t.Errorf("who: %+v", d)
	}
	if d.LegalBasis.Kind == "" || d.Purpose != testPurpose || d.EndUser != testEndUser {
		t.Errorf("why: %+v", d)
	}
	if d.Consumer.Organisation != "0203201340" || d.Consumer.Application != f.app.ID || d.Consumer.Purpose != testPurpose || d.Consumer.EndUser != testEndUser {
		t.Errorf("consumer: %+v", d.Consumer)
	}
}

// pendingGrant adds an approved production grant for svc; the fixture's
// application already has credentials and addresses, so it stops at
// ipsRegistered, waiting for its connection test.
func pendingGrant(t *testing.T, f *fixture, svc Service) Grant {
	g, err := f.r.SubmitLegalBasis(ctx, admin, f.app.ID, GrantTerms{
		Service: svc, LegalBasis: LegalBasis{Kind: ProtocolAgreement, Reference: "Protocol 2026/7"},
		Purposes: []string{testPurpose}, Environment: Production,
	})
	mustDo(t, err)
	g, err = f.r.Approve(ctx, admin, g.ID)
	mustDo(t, err)
	if g.State != GrantIPsRegistered {
		t.Fatalf("approved grant is %s, want ipsRegistered", g.State)
	}
	return g
}

func mustDo(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// An unknown caller cannot tell an unregistered certificate from a revoked
// one, nor a missing grant from a missing service.
func TestDecideDoesNotLeak(t *testing.T) {
	f := newFixture(t)
	stranger := f.call()
	stranger.PeerCertificates = []*x509.Certificate{f.ca.client(t, "stranger.test")}
	unregistered := f.r.Decide(ctx, stranger)

	mustDo(t, f.r.Revoke(ctx, admin, f.cred.ID, "rotated"))
	revoked := f.r.Decide(ctx, f.call())
	if string(unregistered.Problem.JSON()) != string(revoked.Problem.JSON()) {
		t.Errorf("unregistered and revoked differ:\n%s\n%s", unregistered.Problem.JSON(), revoked.Problem.JSON())
	}

	g := newFixture(t)
	c := g.call()
	c.Service = Service{Name: "person", Major: 1} // exists elsewhere, no grant
	a := g.r.Decide(ctx, c)
	c.Service = Service{Name: "noSuchService", Major: 9}
	b := g.r.Decide(ctx, c)
	if string(a.Problem.JSON()) != string(b.Problem.JSON()) {
		t.Errorf("no grant and no service differ:\n%s\n%s", a.Problem.JSON(), b.Problem.JSON())
	}
}

// Failed requests are counted per credential too: a known credential that
// keeps asking for what it may not have is blocked from every address.
func TestDecideFailuresPerCredential(t *testing.T) {
	f := newFixture(t)
	c := f.call()
	c.Purpose = "fishing"
	for range f.r.opts.FailureLimit {
		if d := f.r.Decide(ctx, c); d.Step != StepPurpose {
			t.Fatalf("got %s", d.Step)
		}
	}
	other := f.call()
	other.ClientIP = netip.MustParseAddr("192.0.2.99")
	d := f.r.Decide(ctx, other)
	if d.Step != StepFailedRequests || d.Problem.Status != 429 || d.Problem.RetryAfter != 60 {
		t.Fatalf("credential not blocked: %s %+v", d.Step, d.Problem)
	}
	// The window ends: calls pass again.
	other.Time = t0.Add(61 * time.Second)
	if d := f.r.Decide(ctx, other); !d.Allowed {
		t.Fatalf("still blocked after the window: %s", d.Reason)
	}
}

func TestDecideQuotaWindow(t *testing.T) {
	f := newFixture(t)
	q := Quota{Requests: 1, Period: time.Minute}
	_, err := f.r.AmendGrant(ctx, admin, f.grant.ID, Amendment{Quota: &q})
	mustDo(t, err)
	c := f.call() // t0 is 10:00:30
	if d := f.r.Decide(ctx, c); !d.Allowed || d.QuotaRemaining != 0 {
		t.Fatalf("first call: %+v", d)
	}
	d := f.r.Decide(ctx, c)
	if d.Allowed || d.Problem.RetryAfter != 30 {
		t.Fatalf("second call: allowed=%v retry-after=%d, want refused, 30", d.Allowed, d.Problem.RetryAfter)
	}
	c.Time = t0.Add(30 * time.Second) // the next window
	if d := f.r.Decide(ctx, c); !d.Allowed {
		t.Fatalf("next window refused: %s", d.Reason)
	}
}
