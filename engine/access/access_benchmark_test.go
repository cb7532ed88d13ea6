package access

import (
	"net/netip"
	"testing"
	"time"
)

// The cost of Decide on the hot path: after the first call the chain check
// and the token signature come from their caches, as with keep-alive.

func benchFixture(b *testing.B) *fixture {
	f := newFixtureWith(b, func(o *Options) { o.FailureLimit = 1 << 30 })
	q := Quota{Requests: 1 << 40, Period: time.Hour}
	_, err := f.r.AmendGrant(ctx, admin, f.grant.ID, Amendment{Quota: &q})
	mustDo(b, err)
	return f
}

func BenchmarkDecideCertificate(b *testing.B) {
	f := benchFixture(b)
	c := f.call()
	b.ReportAllocs()
	for b.Loop() {
		if d := f.r.Decide(ctx, c); !d.Allowed {
			b.Fatal(d.Reason)
		}
	}
}

func BenchmarkDecideCertificateParallel(b *testing.B) {
	f := benchFixture(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := f.call()
		for pb.Next() {
			if d := f.r.Decide(ctx, c); !d.Allowed {
				b.Error(d.Reason)
				return
			}
		}
	})
}

func BenchmarkDecideBoundToken(b *testing.B) {
	f := benchFixture(b)
	c := f.call()
	c.BearerToken = f.token(f.cert)
	b.ReportAllocs()
	for b.Loop() {
		if d := f.r.Decide(ctx, c); !d.Allowed {
			b.Fatal(d.Reason)
		}
	}
}

// A registry with 1,000 organisations and their grants: lookups must not
// grow with it.
func BenchmarkDecideCertificateLargeRegistry(b *testing.B) {
	f := benchFixture(b)
	for i := range 1000 {
		en := enterpriseNumber(1_000_000 + i)
		_, err := f.r.RegisterOrganisation(ctx, admin, en, "Org")
		mustDo(b, err)
		_, err = f.r.SignAgreement(ctx, admin, en, Agreement{Version: "1", Signer: "x", Signed: t0})
		mustDo(b, err)
		app, err := f.r.AddApplication(ctx, admin, en, "app")
		mustDo(b, err)
		_, err = f.r.SubmitLegalBasis(ctx, admin, app.ID, GrantTerms{Service: testService, LegalBasis: LegalBasis{Kind: Law, Reference: "x"}, Purposes: []string{"p"}})
		mustDo(b, err)
	}
	c := f.call()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if d := f.r.Decide(ctx, c); !d.Allowed {
			b.Fatal(d.Reason)
		}
	}
}

// enterpriseNumber makes a valid 10-digit number from 8 digits.
func enterpriseNumber(n int) string {
	d := n % 100_000_000
	check := 97 - d%97
	return padded(d, 8) + padded(check, 2)
}

func padded(n, width int) string {
	s := make([]byte, width)
	for i := width - 1; i >= 0; i-- {
		s[i] = byte('0' + n%10)
		n /= 10
	}
	return string(s)
}

// A trusted but unregistered certificate: its chain check is cached like
// any trusted leaf's, the registry lookup fails.
func BenchmarkDecideUnregisteredCertificate(b *testing.B) {
	f := benchFixture(b)
	c := f.call()
	c.PeerCertificates[0] = f.ca.client(b, "stranger")
	b.ReportAllocs()
	for b.Loop() {
		if d := f.r.Decide(ctx, c); d.Allowed {
			b.Fatal("allowed")
		}
	}
}

// The slow path a stranger pays: an untrusted chain is verified on every
// call (failures are not cached); tooManyFailedRequests caps how often.
func BenchmarkDecideUntrustedCertificate(b *testing.B) {
	f := benchFixture(b)
	c := f.call()
	c.PeerCertificates[0] = newPKI(b, "stranger CA").client(b, "stranger")
	b.ReportAllocs()
	for b.Loop() {
		if d := f.r.Decide(ctx, c); d.Allowed {
			b.Fatal("allowed")
		}
	}
}

func BenchmarkIssueToken(b *testing.B) {
	f := benchFixture(b)
	req := TokenRequest{ClientID: f.client.ID, ClientSecret: f.secret, ClientIP: netip.MustParseAddr("192.0.2.1"), Time: t0}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.r.IssueToken(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMinimise(b *testing.B) {
	body := []byte(`{"name":"Acme","vat":"BE0203201340","directors":[{"name":"An","ssin":"85073003328"},{"name":"Bo","ssin":"1"}],"address":{"street":"Kerkstraat 1","city":"Gent"}}`)
	fields := []string{"name", "directors[*].name"}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Minimise(fields, body); err != nil {
			b.Fatal(err)
		}
	}
}
