package access

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenConfig configures the access tokens the registry issues and accepts:
// JWTs (RFC 9068 profile, typ at+jwt) signed with Ed25519 (alg EdDSA).
type TokenConfig struct {
	Issuer   string             // iss; required to issue or accept tokens
	Audience string             // aud; required to issue or accept tokens
	Key      ed25519.PrivateKey // signs new tokens; its public key verifies them
	// Previous holds retired public keys still accepted while tokens they
	// signed live out their TTL (key rotation).
	Previous []ed25519.PublicKey
	TTL      time.Duration // token lifetime; default 5 minutes, at most 1 hour
	Leeway   time.Duration // clock skew allowed on exp, nbf, iat; default 30 s
}

// Token is an issued access token, with what an RFC 6749 token response
// needs.
type Token struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"` // "Bearer"
	ExpiresIn   int       `json:"expires_in"` // seconds
	ExpiresAt   time.Time `json:"-"`
	Bound       bool      `json:"-"` // carries a cnf claim (RFC 8705)
}

// TokenRequest is a client credentials token request, as the gateway's
// token endpoint received it. The gateway checks grant_type and reads the
// client id and secret from the Authorization header or the form.
type TokenRequest struct {
	ClientID     string
	ClientSecret string
	// PeerCertificates is the TLS client chain as presented (leaf first),
	// nil without mTLS. When present, it must verify and be a registered
	// certificate of the client's application; the token is then bound to
	// it (cnf x5t#S256) and only accepted with that certificate.
	PeerCertificates []*x509.Certificate
	ClientIP         netip.Addr // resolved as for Call.ClientIP
	Time             time.Time  // zero: now
}

// OAuthError is a refused token request, to be answered as RFC 6749 §5.2
// JSON ({"error": Code, "error_description": Description}) with Status and,
// when RetryAfter > 0, a Retry-After header. It never holds the secret.
type OAuthError struct {
	Status      int
	Code        string // invalid_request, invalid_client
	Description string
	RetryAfter  int
}

func (e *OAuthError) Error() string { return "oauth: " + e.Code + ": " + e.Description }

func invalidClient(detail string) *OAuthError {
	return &OAuthError{Status: 401, Code: "invalid_client", Description: detail}
}

// accessClaims are the claims of our access tokens.
type accessClaims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	Cnf      *cnf   `json:"cnf,omitempty"`
}

type cnf struct {
	X5tS256 string `json:"x5t#S256"`
}

const tokenType = "at+jwt"

// keyID names a public key in the kid header: the first 16 hex digits of
// its SHA-256.
func keyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// IssueToken authenticates an OAuth client by its id and secret and issues
// a short-lived access token. Failed attempts count towards
// tooManyFailedRequests like failed calls do.
func (r *Registry) IssueToken(ctx context.Context, req TokenRequest) (Token, error) {
	tc := r.opts.Tokens
	if tc.Key == nil || tc.Issuer == "" || tc.Audience == "" {
		return Token{}, &OAuthError{Status: 400, Code: "unsupported_grant_type", Description: "this service integrator does not issue access tokens"}
	}
	now := req.Time
	if now.IsZero() {
		now = time.Now()
	}
	if req.ClientID == "" || req.ClientSecret == "" {
		return Token{}, &OAuthError{Status: 400, Code: "invalid_request", Description: "client_id and client_secret are required"}
	}
	if ra, blocked := r.failures.blockedIP(req.ClientIP, now); blocked {
		return Token{}, &OAuthError{Status: 429, Code: "invalid_client", Description: "too many failed requests: retry later", RetryAfter: ra}
	}
	if ra, blocked := r.failures.blockedCred(req.ClientID, now); blocked {
		return Token{}, &OAuthError{Status: 429, Code: "invalid_client", Description: "too many failed requests: retry later", RetryAfter: ra}
	}
	fail := func(detail string) (Token, error) {
		r.failures.add(req.ClientIP, req.ClientID, now)
		return Token{}, invalidClient(detail)
	}
	s := r.snap.Load()
	e := s.byClient[req.ClientID]
	var hash *SecretHash
	if e != nil {
		hash = e.cred.SecretHash
	}
	// The secret is always checked, also for an unknown or unusable
	// client, so that the answer and its timing say nothing about which.
	if !hash.matches(req.ClientSecret) || !e.usable {
		return fail("client authentication failed")
	}
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    tc.Issuer,
			Subject:   req.ClientID,
			Audience:  jwt.ClaimStrings{tc.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(r.tokenTTL())),
			ID:        newJTI(),
		},
		ClientID: req.ClientID,
	}
	if len(req.PeerCertificates) > 0 {
		fp := fingerprint(req.PeerCertificates[0].Raw)
		if err := r.verifyChain(fp, req.PeerCertificates, now); err != nil {
			return fail("the client certificate is not accepted")
		}
		ce := s.byFingerprint[fp]
		if ce == nil || !ce.usable || ce.app.ID != e.app.ID {
			return fail("the client certificate is not registered for this client's application")
		}
		claims.Cnf = &cnf{X5tS256: base64.RawURLEncoding.EncodeToString(fp[:])}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["typ"] = tokenType
	t.Header["kid"] = keyID(tc.Key.Public().(ed25519.PublicKey))
	signed, err := t.SignedString(tc.Key)
	if err != nil {
		return Token{}, fmt.Errorf("access token: sign: %w", err)
	}
	exp := claims.ExpiresAt.Time
	return Token{AccessToken: signed, TokenType: "Bearer", ExpiresIn: int(exp.Sub(now) / time.Second), ExpiresAt: exp, Bound: claims.Cnf != nil}, nil
}

func (r *Registry) tokenTTL() time.Duration {
	ttl := r.opts.Tokens.TTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	return min(ttl, time.Hour)
}

func (r *Registry) tokenLeeway() time.Duration {
	if l := r.opts.Tokens.Leeway; l > 0 {
		return min(l, 5*time.Minute)
	}
	return 30 * time.Second
}

func newJTI() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// verifiedToken is what Decide needs from a token whose signature, issuer
// and audience checked out.
type verifiedToken struct {
	clientID  string
	bound     bool
	cnf       [32]byte
	notBefore time.Time
	expires   time.Time
}

// tokenCache remembers verified tokens by the SHA-256 of their text, so
// that the Ed25519 check runs once per token, not once per call. The time
// claims are checked on every use; the credential behind the token is
// looked up on every use, so a revocation still applies at once.
type tokenCache struct {
	mu sync.RWMutex
	m  map[[32]byte]*verifiedToken
}

const maxCachedTokens = 50_000

var (
	errTokenExpired = errors.New("token expired")
	errTokenInvalid = errors.New("token invalid")
)

// verifyToken checks a bearer token at now. The error is errTokenExpired
// or wraps errTokenInvalid with the reason (for the audit, not the caller).
func (r *Registry) verifyToken(tok string, now time.Time) (*verifiedToken, error) {
	tc := r.opts.Tokens
	if tc.Key == nil || tc.Issuer == "" || tc.Audience == "" {
		return nil, fmt.Errorf("%w: tokens are not configured", errTokenInvalid)
	}
	leeway := r.tokenLeeway()
	h := sha256.Sum256([]byte(tok))
	r.tokens.mu.RLock()
	vt := r.tokens.m[h]
	r.tokens.mu.RUnlock()
	if vt != nil {
		switch {
		case now.After(vt.expires.Add(leeway)):
			return nil, errTokenExpired
		case now.Before(vt.notBefore.Add(-leeway)):
			return nil, fmt.Errorf("%w: not valid yet", errTokenInvalid)
		}
		return vt, nil
	}
	var claims accessClaims
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(tc.Issuer),
		jwt.WithAudience(tc.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithStrictDecoding(),
	)
	_, err := p.ParseWithClaims(tok, &claims, r.tokenKey)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		// Only reported once the signature verified: the parser checks it
		// before the claims, so a forged expired token is "invalid".
		return nil, errTokenExpired
	case err != nil:
		return nil, fmt.Errorf("%w: %w", errTokenInvalid, err)
	case claims.ClientID == "" || claims.Subject != claims.ClientID:
		return nil, fmt.Errorf("%w: client_id and sub missing or different", errTokenInvalid)
	}
	vt = &verifiedToken{clientID: claims.ClientID, expires: claims.ExpiresAt.Time}
	if claims.NotBefore != nil {
		vt.notBefore = claims.NotBefore.Time
	}
	if claims.Cnf != nil {
		b, err := base64.RawURLEncoding.DecodeString(claims.Cnf.X5tS256)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("%w: malformed cnf x5t#S256", errTokenInvalid)
		}
		vt.bound = true
		copy(vt.cnf[:], b)
	}
	r.tokens.mu.Lock()
	if r.tokens.m == nil || len(r.tokens.m) >= maxCachedTokens {
		r.tokens.m = make(map[[32]byte]*verifiedToken)
	}
	r.tokens.m[h] = vt
	r.tokens.mu.Unlock()
	return vt, nil
}

// tokenKey picks the verification key by kid and insists on typ at+jwt, so
// that no other JWT signed with the same key passes as an access token.
// The alg is pinned to EdDSA by the parser (WithValidMethods): none, HS*
// and RS* are refused before any key is chosen.
func (r *Registry) tokenKey(t *jwt.Token) (any, error) {
	if typ, _ := t.Header["typ"].(string); typ != tokenType {
		return nil, fmt.Errorf("typ %q, want %q", typ, tokenType)
	}
	kid, _ := t.Header["kid"].(string)
	pub := r.opts.Tokens.Key.Public().(ed25519.PublicKey)
	if kid == keyID(pub) {
		return pub, nil
	}
	for _, k := range r.opts.Tokens.Previous {
		if kid == keyID(k) {
			return k, nil
		}
	}
	return nil, fmt.Errorf("unknown kid %q", kid)
}
