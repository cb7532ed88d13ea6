package gateway_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/access"
)

const (
	typeNoToken        = "urn:problem-type:belgif:noAccessToken"
	typeInvalidToken   = "urn:problem-type:belgif:invalidAccessToken"
	typeExpiredToken   = "urn:problem-type:belgif:expiredAccessToken"
	typeMissingPerm    = "urn:problem-type:belgif:missingPermission"
	typeTooManyReqs    = "urn:problem-type:belgif:tooManyRequests"
	headerPurpose      = "OpenFSB-Purpose"
	headerEndUser      = "OpenFSB-End-User"
	headerAuditReceipt = "OpenFSB-Audit-Receipt"
)

// issueToken asks the token endpoint over mTLS with cert (HTTP Basic).
func (s *secure) issueToken(cert tls.Certificate) string {
	s.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}.Encode()
	req, _ := http.NewRequest("POST", s.base+"/oauth2/token", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(s.clientID), url.QueryEscape(s.secret))
	resp, err := s.client(cert).Do(req)
	s.must(err)
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&tok) != nil || tok.TokenType != "Bearer" {
		s.t.Fatalf("token endpoint: %d", resp.StatusCode)
	}
	return tok.AccessToken
}

// TestSecurityNegative is the negative security suite of issue 4: each
// call is refused with the right problem type and none reaches the source.
func TestSecurityNegative(t *testing.T) {
	s := newSecure(t, secureOpt{})
	untrusted := newCA(t, "rogue CA").issue(t, "app1", false)
	unregistered := s.ca.issue(t, "nobody", false)
	revoked := s.ca.issue(t, "revoked", false)
	cred, err := s.reg.RegisterCertificate(context.Background(), adminName, s.app1, certPEM(revoked))
	s.must(err)
	s.must(s.reg.Revoke(context.Background(), adminName, cred.ID, "key lost"))

	bound := s.issueToken(s.cert1)
	expired, err := s.reg.IssueToken(context.Background(), access.TokenRequest{
		ClientID: s.clientID, ClientSecret: s.secret, PeerCertificates: []*x509.Certificate{s.cert1.Leaf},
		ClientIP: netip.MustParseAddr("127.0.0.1"), Time: time.Now().Add(-time.Hour),
	})
	s.must(err)

	// The quota of metered is one call an hour: use it up first.
	if a := s.call(s.client(s.cert1), "GET", "/metered/v2/items/1", "", headerPurpose, purpose, headerEndUser, endUser); a.status != 200 {
		t.Fatalf("first metered call: %d %s", a.status, a.body)
	}
	hitsBefore := s.src.hits.Load()

	cases := []struct {
		name    string
		client  *http.Client
		method  string
		path    string
		body    string
		hdr     []string
		status  int
		typ     string
		retryAt bool
	}{
		{"no certificate", s.client(), "", "", "", nil, 401, typeNoToken, false},
		{"untrusted CA", s.client(untrusted), "", "", "", nil, 401, typeInvalidToken, false},
		{"trusted but unregistered", s.client(unregistered), "", "", "", nil, 401, typeInvalidToken, false},
		{"revoked credential", s.client(revoked), "", "", "", nil, 401, typeInvalidToken, false},
		{"expired grant", s.client(s.cert1), "GET", "/other/v1/items/1", "", nil, 403, typeMissingPerm, false},
		{"grant for another service", s.client(s.cert1), "GET", "/vat/v1/items/1", "", nil, 403, typeMissingPerm, false},
		{"wrong purpose", s.client(s.cert1), "", "", "", []string{headerPurpose, "marketing"}, 403, typeMissingPerm, false},
		{"missing purpose", s.client(s.cert1), "", "", "", []string{headerPurpose, ""}, 400, typeBadRequest, false},
		{"ip outside the allowlist", s.client(s.cert2), "", "", "", nil, 403, typeMissingPerm, false},
		{"forged X-Forwarded-For from an untrusted peer", s.client(s.cert2), "", "", "", []string{"X-Forwarded-For", "192.0.2.10"}, 403, typeMissingPerm, false},
		{"token bound to another certificate", s.client(s.cert2), "", "", "", []string{"Authorization", "Bearer " + bound}, 401, typeInvalidToken, false},
		{"token without its certificate", s.client(), "", "", "", []string{"Authorization", "Bearer " + bound}, 401, typeInvalidToken, false},
		{"expired token", s.client(s.cert1), "", "", "", []string{"Authorization", "Bearer " + expired.AccessToken}, 401, typeExpiredToken, false},
		{"forged token", s.client(s.cert1), "", "", "", []string{"Authorization", "Bearer " + bound[:len(bound)-4] + "AAAA"}, 401, typeInvalidToken, false},
		{"quota exceeded", s.client(s.cert1), "GET", "/metered/v2/items/1", "", nil, 429, typeTooManyReqs, true},
		{"admin API through the consumer port", s.client(s.cert1), "GET", "/admin/v1/organisations", "", []string{"Authorization", "Bearer " + s.token}, 404, typeNotFound, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method, path, body := c.method, c.path, c.body
			if method == "" {
				method, path, body = "POST", "/persons/v1/get", `{"id":"85010112345"}`
			}
			hdr := append([]string{headerPurpose, purpose, headerEndUser, endUser}, c.hdr...)
			a := s.call(c.client, method, path, body, hdr...)
			if a.status != c.status || a.problemType() != c.typ {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, c.status, c.typ)
			}
			if ct := a.header.Get("Content-Type"); ct != contentProblem {
				t.Errorf("Content-Type %q", ct)
			}
			if c.retryAt && a.header.Get("Retry-After") == "" {
				t.Errorf("no Retry-After")
			}
			if !traceIDRe.MatchString(a.header.Get(headerTrace)) {
				t.Errorf("no BelGov-Trace-Id")
			}
			// Details never name what exists.
			for _, leak := range []string{s.app1, s.app2, s.personGrant, testOrg, otherOrg, "revoked"} {
				if strings.Contains(string(a.body), leak) {
					t.Errorf("the problem names %q: %s", leak, a.body)
				}
			}
		})
	}
	if n := s.src.hits.Load(); n != hitsBefore {
		t.Fatalf("refused calls reached the source %d times", n-hitsBefore)
	}

	// The same calls done right pass: a token bound to cert1 with cert1,
	// and plain cert1.
	for _, hdr := range [][]string{{"Authorization", "Bearer " + bound}, nil} {
		if a := s.person(s.client(s.cert1), hdr...); a.status != 200 {
			t.Fatalf("allowed call: %d %s", a.status, a.body)
		}
	}
	if n := s.src.hits.Load(); n != hitsBefore+2 {
		t.Fatalf("source hits %d, want %d", n, hitsBefore+2)
	}
}

// TestMinimisation: a grant covering two fields releases exactly those.
func TestMinimisation(t *testing.T) {
	s := newSecure(t, secureOpt{})
	a := s.person(s.client(s.cert1))
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if got, want := string(a.body), `{"name":"Jan Peeters","address":{"city":"Gent"}}`; got != want {
		t.Fatalf("body %s, want %s", got, want)
	}
	if rel := a.header.Get(headerRelated); rel != "" {
		t.Errorf("related trace id without a caller id: %q", rel)
	}
}

// TestTokenEndpointErrors: RFC 6749 §5.2 errors, no problem documents.
func TestTokenEndpointErrors(t *testing.T) {
	s := newSecure(t, secureOpt{})
	post := func(form url.Values, basic bool) (int, string) {
		req, _ := http.NewRequest("POST", s.base+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth(s.clientID, "wrong")
		}
		resp, err := s.client(s.cert1).Do(req)
		s.must(err)
		defer resp.Body.Close()
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error
	}
	for _, c := range []struct {
		form   url.Values
		basic  bool
		status int
		code   string
	}{
		{url.Values{"grant_type": {"password"}}, false, 400, "unsupported_grant_type"},
		{url.Values{}, false, 400, "invalid_request"},
		{url.Values{"grant_type": {"client_credentials"}}, true, 401, "invalid_client"},
		{url.Values{"grant_type": {"client_credentials"}, "client_id": {s.clientID}, "client_secret": {s.secret}}, true, 400, "invalid_request"},
	} {
		if st, code := post(c.form, c.basic); st != c.status || code != c.code {
			t.Errorf("%v: got %d %s, want %d %s", c.form, st, code, c.status, c.code)
		}
	}
}

// TestAdminAPIAuth: the admin API needs its token; a wrong one, or none,
// is refused before routing, unknown paths included.
func TestAdminAPIAuth(t *testing.T) {
	s := newSecure(t, secureOpt{})
	get := func(path, tok string) int {
		req, _ := http.NewRequest("GET", s.adminURL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		s.must(err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, tok string
		want      int
	}{
		{"/admin/v1/organisations", "", 401},
		{"/admin/v1/organisations", "admin-token-0123456788", 401},
		{"/admin/v1/nothing", "", 401},
		{"/admin/v1/organisations", s.token, 200},
		{"/admin/v1/nothing", s.token, 404},
	} {
		if got := get(c.path, c.tok); got != c.want {
			t.Errorf("GET %s with %q: %d, want %d", c.path, c.tok, got, c.want)
		}
	}
}
