package gateway_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/access"
)

// TestCatalogAccess: with access on, a service page shows a recognised
// visitor their own organisation, application and grants for the service
// (with the onboarding state and next step), never another consumer's, and
// shows anyone else only the static onboarding steps.
func TestCatalogAccess(t *testing.T) {
	s := newSecure(t, secureOpt{})
	ctx := context.Background()
	// app2 may call from loopback too, so that it is recognised here.
	_, err := s.reg.SetAllowlist(ctx, adminName, s.app2, loopback)
	s.must(err)
	// app1: a submitted grant for vat, and a test grant for vat approved
	// (so, with app1's certificate and allowlist, ipsRegistered).
	submitted, err := s.reg.SubmitLegalBasis(ctx, adminName, s.app1, access.GrantTerms{
		Service: access.Service{Name: "vat", Major: 1}, LegalBasis: access.LegalBasis{Kind: access.ProtocolAgreement, Reference: "Protocol 2026/17"},
		Purposes: []string{"vatCheck"}, Environment: access.Production,
	})
	s.must(err)
	pending, err := s.reg.SubmitLegalBasis(ctx, adminName, s.app1, access.GrantTerms{
		Service: access.Service{Name: "vat", Major: 1}, LegalBasis: access.LegalBasis{Kind: access.Law, Reference: "Law of 2 May 2019"},
		Purposes: []string{"trial"}, Environment: access.Test,
	})
	s.must(err)
	pending, err = s.reg.Approve(ctx, adminName, pending.ID)
	s.must(err)
	if pending.State != access.GrantIPsRegistered {
		t.Fatalf("approved grant: %s", pending.State)
	}
	app2Grants := s.reg.Grants(s.app2)
	if len(app2Grants) != 1 {
		t.Fatalf("app2 grants: %v", app2Grants)
	}
	otherGrant := app2Grants[0].ID

	page := func(c answer) string {
		t.Helper()
		if c.status != 200 || !strings.HasPrefix(c.header.Get("Content-Type"), "text/html") {
			t.Fatalf("page: %d %s", c.status, c.body)
		}
		if cc := c.header.Get("Cache-Control"); cc != "private, no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
		return string(c.body)
	}
	has := func(who, body string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: page lacks %q", who, w)
			}
		}
	}
	hasNot := func(who, body string, bad ...string) {
		t.Helper()
		for _, b := range bad {
			if strings.Contains(body, b) {
				t.Errorf("%s: page shows %q", who, b)
			}
		}
	}
	// Everything of the registry a page could show.
	registryData := []string{testOrg, otherOrg, "Org " + testOrg, "Org " + otherOrg, s.app1, s.app2, "payroll", "elsewhere",
		s.personGrant, otherGrant, submitted.ID, pending.ID, "Law of 8 August", "Protocol 2026/17", "Your access"}

	t.Run("anonymous", func(t *testing.T) {
		for _, p := range []string{"/catalog/services/person/v1", "/catalog/services/vat/v1"} {
			body := page(s.call(s.client(), "GET", p, ""))
			has("anonymous", body, `<h2 id="obtain-h">How to obtain access</h2>`, "Agreement:", "Legal basis:", "Approval:", "Credentials:", "IP addresses:", "Connection test:")
			hasNot("anonymous", body, registryData...)
		}
		// An unregistered certificate is nobody too.
		body := page(s.call(s.client(s.ca.issue(t, "nobody", false)), "GET", "/catalog/services/person/v1", ""))
		has("unregistered", body, "How to obtain access")
		hasNot("unregistered", body, registryData...)
	})

	t.Run("active grant", func(t *testing.T) {
		body := page(s.call(s.client(s.cert1), "GET", "/catalog/services/person/v1", ""))
		if testing.Verbose() {
			t.Log(body)
		}
		has("app1", body, `<h2 id="access-h">Your access</h2>`, "Org "+testOrg, "<code>"+testOrg+"</code>", "payroll", "<code>"+s.app1+"</code>",
			"<code>"+s.personGrant+"</code>", `<span class="badge">active</span>`, "none: the grant serves test and production calls",
			"production", "<code>kyc</code>", "a law: Law of 8 August 1983, art. 5", "name, address.city", "no quota", "no limit")
		hasNot("app1", body, otherOrg, s.app2, "elsewhere", otherGrant, "How to obtain access", submitted.ID)
	})

	t.Run("submitted and connection test pending, by token", func(t *testing.T) {
		// An unbound token, presented without a certificate.
		tok, err := s.reg.IssueToken(ctx, access.TokenRequest{ClientID: s.clientID, ClientSecret: s.secret, ClientIP: netip.MustParseAddr("127.0.0.1")})
		s.must(err)
		body := page(s.call(s.client(), "GET", "/catalog/services/vat/v1", "", "Authorization", "Bearer "+tok.AccessToken))
		has("app1 token", body, "Your access", "payroll",
			"<code>"+submitted.ID+"</code>", `<span class="badge">submitted</span>`, "approval pending", "a protocol agreement: Protocol 2026/17", "<code>vatCheck</code>", "the whole answer",
			"<code>"+pending.ID+"</code>", `<span class="badge">ipsRegistered</span>`, "connection test pending", "<code>trial</code>", "test")
		hasNot("app1 token", body, s.personGrant, otherGrant, otherOrg, "elsewhere")
		// A forged token is nobody.
		body = page(s.call(s.client(), "GET", "/catalog/services/vat/v1", "", "Authorization", "Bearer "+tok.AccessToken+"x"))
		hasNot("forged token", body, registryData...)
	})

	t.Run("another organisation", func(t *testing.T) {
		body := page(s.call(s.client(s.cert2), "GET", "/catalog/services/person/v1", ""))
		has("app2", body, "Your access", "Org "+otherOrg, "elsewhere", "<code>"+otherGrant+"</code>")
		hasNot("app2", body, "Org "+testOrg, s.app1, "payroll", s.personGrant, "name, address.city", submitted.ID, pending.ID)
		// app2 has no grant for vat: its page says so, and shows none of app1's.
		body = page(s.call(s.client(s.cert2), "GET", "/catalog/services/vat/v1", ""))
		has("app2 vat", body, "Your access", "no grant for this service yet", "Connection test:")
		hasNot("app2 vat", body, submitted.ID, pending.ID, "payroll", "Protocol 2026/17")
	})

	t.Run("held credential", func(t *testing.T) {
		s.must(s.reg.Suspend(ctx, adminName, s.app2, "audit"))
		body := page(s.call(s.client(s.cert2), "GET", "/catalog/services/person/v1", ""))
		hasNot("suspended app2", body, registryData...)
	})
}
