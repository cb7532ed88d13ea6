package access

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestIssueToken(t *testing.T) {
	f := newFixture(t)
	tok, err := f.r.IssueToken(ctx, TokenRequest{ClientID: f.client.ID, ClientSecret: f.secret, ClientIP: testIP, Time: t0})
	mustDo(t, err)
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 300 || tok.Bound {
		t.Fatalf("token: %+v", tok)
	}
	claims := decodeClaims(t, tok.AccessToken)
	if claims["iss"] != testIssuer || claims["client_id"] != f.client.ID || claims["sub"] != f.client.ID || claims["cnf"] != nil || claims["jti"] == "" {
		t.Fatalf("claims: %v", claims)
	}

	// Over mTLS the token is bound to the certificate (RFC 8705).
	bound, err := f.r.IssueToken(ctx, TokenRequest{ClientID: f.client.ID, ClientSecret: f.secret, ClientIP: testIP, Time: t0, PeerCertificates: []*x509.Certificate{f.cert}})
	mustDo(t, err)
	sum := sha256.Sum256(f.cert.Raw)
	if c := decodeClaims(t, bound.AccessToken)["cnf"].(map[string]any); c["x5t#S256"] != base64.RawURLEncoding.EncodeToString(sum[:]) || !bound.Bound {
		t.Fatalf("cnf: %v", c)
	}
}

func TestIssueTokenRefusals(t *testing.T) {
	f := newFixture(t)
	other := newPKI(t, "Other")
	cases := map[string]TokenRequest{
		"wrong secret":   {ClientID: f.client.ID, ClientSecret: f.secret + "x"},
		"unknown client": {ClientID: "crd_nobody", ClientSecret: f.secret},
		"cert as client": {ClientID: f.cred.ID, ClientSecret: f.secret},
		"untrusted cert": {ClientID: f.client.ID, ClientSecret: f.secret, PeerCertificates: []*x509.Certificate{other.client(t, "x")}},
		"unregistered":   {ClientID: f.client.ID, ClientSecret: f.secret, PeerCertificates: []*x509.Certificate{f.ca.client(t, "y")}},
		"missing secret": {ClientID: f.client.ID},
		"missing client": {ClientSecret: f.secret},
	}
	for name, req := range cases {
		req.ClientIP, req.Time = otherIP, t0
		_, err := f.r.IssueToken(ctx, req)
		var oe *OAuthError
		if !errors.As(err, &oe) || (oe.Code != "invalid_client" && oe.Code != "invalid_request") {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if strings.Contains(err.Error(), f.secret) || strings.Contains(oe.Description, f.client.ID) {
			t.Errorf("%s: error leaks: %v", name, err)
		}
	}
	// A revoked client gets nothing, with the same answer as a wrong secret.
	mustDo(t, f.r.Revoke(ctx, admin, f.client.ID, "gone"))
	_, err := f.r.IssueToken(ctx, TokenRequest{ClientID: f.client.ID, ClientSecret: f.secret, ClientIP: testIP, Time: t0})
	if oe := (*OAuthError)(nil); !errors.As(err, &oe) || oe.Description != "client authentication failed" {
		t.Fatalf("revoked client: %v", err)
	}
	// Repeated failures from one address block it, valid secret or not.
	g := newFixture(t)
	for range g.r.opts.FailureLimit {
		g.r.IssueToken(ctx, TokenRequest{ClientID: g.client.ID, ClientSecret: "fsbs_guess", ClientIP: otherIP, Time: t0})
	}
	_, err = g.r.IssueToken(ctx, TokenRequest{ClientID: g.client.ID, ClientSecret: g.secret, ClientIP: otherIP, Time: t0})
	if oe := (*OAuthError)(nil); !errors.As(err, &oe) || oe.Status != 429 || oe.RetryAfter <= 0 {
		t.Fatalf("brute force not blocked: %v", err)
	}
}

// Rotation: a token signed by the previous key stays valid while listed.
func TestTokenKeyRotation(t *testing.T) {
	f := newFixture(t)
	old := f.token(nil)
	_, newKey, _ := ed25519.GenerateKey(rand.Reader)
	opts := testOptions(f.ca)
	opts.Tokens.Key = newKey
	opts.Tokens.Previous = []ed25519.PublicKey{testTokenKey.Public().(ed25519.PublicKey)}
	r2 := &Registry{opts: opts.withDefaults(), failures: newFailures(5, time.Minute)}
	r2.snap.Store(f.r.snap.Load())
	c := f.call()
	c.BearerToken = old
	if d := r2.Decide(ctx, c); !d.Allowed {
		t.Fatalf("token of the previous key refused: %s", d.Reason)
	}
	opts.Tokens.Previous = nil
	r3 := &Registry{opts: opts.withDefaults(), failures: newFailures(5, time.Minute)}
	r3.snap.Store(f.r.snap.Load())
	if d := r3.Decide(ctx, c); d.Allowed {
		t.Fatal("token of a retired key accepted")
	}
}

func decodeClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
		t.Fatal(err)
	}
	return claims
}
