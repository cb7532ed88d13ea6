package gateway

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/netip"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/openfsb/fsb/engine/access"
	"github.com/openfsb/fsb/engine/flow"
)

// TokenPath is where consumers obtain OAuth2 access tokens (client
// credentials grant, RFC 6749 §4.4) on the consumer listener.
const TokenPath = "/oauth2/token"

// proxySet holds the trusted proxies as prefixes.
type proxySet []netip.Prefix

func parseProxies(list []string) proxySet {
	var ps proxySet
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			ps = append(ps, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return ps
}

func (ps proxySet) trusts(a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the caller's address: the socket's peer, or, when the peer
// is a trusted proxy, the rightmost X-Forwarded-For entry that is not itself
// a trusted proxy (the one the first trusted proxy saw). Entries further
// left were written by the client and are never believed. An unreadable
// header from a trusted proxy yields the zero address, which no allowlist
// admits (fail closed).
func (g *Gateway) clientIP(c *fiber.Ctx) netip.Addr {
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	peer = peer.Unmap()
	if len(g.proxies) == 0 || !g.proxies.trusts(peer) {
		return peer
	}
	xff := c.Request().Header.Peek(fiber.HeaderXForwardedFor)
	if len(xff) == 0 {
		return peer
	}
	parts := strings.Split(string(xff), ",")
	for i := len(parts) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(parts[i]))
		if err != nil {
			return netip.Addr{}
		}
		a = a.Unmap()
		if !g.proxies.trusts(a) {
			return a
		}
	}
	return netip.Addr{}
}

// peerCertificates is the TLS client chain, nil on plain HTTP or without a
// client certificate.
func peerCertificates(c *fiber.Ctx) []*x509.Certificate {
	if cs := c.Context().TLSConnectionState(); cs != nil {
		return cs.PeerCertificates
	}
	return nil
}

// accessCall is what Decide needs to know about a consumer call.
func (g *Gateway) accessCall(c *fiber.Ctx, p *flow.Plan) access.Call {
	tok, _ := access.ParseBearer(c.Get(fiber.HeaderAuthorization))
	return access.Call{
		PeerCertificates: peerCertificates(c),
		BearerToken:      tok,
		ClientIP:         g.clientIP(c),
		Service:          access.Service{Name: p.Name, Major: p.Major},
		Environment:      g.cfg.Environment,
		Purpose:          c.Get(access.HeaderPurpose),
		EndUser:          c.Get(access.HeaderEndUser),
	}
}

// authenticate identifies the caller of an endpoint that is not a service
// (the consumer's audit API): steps 0–3 of Decide.
func (g *Gateway) authenticate(c *fiber.Ctx) access.Decision {
	tok, _ := access.ParseBearer(c.Get(fiber.HeaderAuthorization))
	return g.cfg.Access.Authenticate(c.UserContext(), access.Call{
		PeerCertificates: peerCertificates(c),
		BearerToken:      tok,
		ClientIP:         g.clientIP(c),
		Environment:      g.cfg.Environment,
	})
}

// handleToken is the OAuth2 token endpoint: client credentials only, the
// client authenticated by HTTP Basic or by form fields (not both), the
// token bound to the TLS client certificate when one is presented
// (RFC 8705). Errors are RFC 6749 §5.2 JSON, not problem documents, because
// OAuth clients expect that shape.
func (g *Gateway) handleToken(c *fiber.Ctx) error {
	g.traceHeaders(c)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("Pragma", "no-cache")
	ct, _, _ := strings.Cut(c.Get(fiber.HeaderContentType), ";")
	if !strings.EqualFold(strings.TrimSpace(ct), fiber.MIMEApplicationForm) {
		return oauthError(c, &access.OAuthError{Status: 400, Code: "invalid_request", Description: "send the request as application/x-www-form-urlencoded"})
	}
	form, err := url.ParseQuery(string(c.Body()))
	if err != nil {
		return oauthError(c, &access.OAuthError{Status: 400, Code: "invalid_request", Description: "the form cannot be read"})
	}
	for k, v := range form {
		if len(v) > 1 {
			return oauthError(c, &access.OAuthError{Status: 400, Code: "invalid_request", Description: "parameter " + k + " is repeated"})
		}
	}
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		code := "unsupported_grant_type"
		if gt == "" {
			code = "invalid_request"
		}
		return oauthError(c, &access.OAuthError{Status: 400, Code: code, Description: "only grant_type=client_credentials is supported"})
	}
	id, secret := form.Get("client_id"), form.Get("client_secret")
	basic := false
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		bid, bsecret, ok := parseBasic(h)
		if !ok || id != "" || secret != "" {
			return oauthError(c, &access.OAuthError{Status: 400, Code: "invalid_request", Description: "authenticate the client with HTTP Basic or with form fields, not both"})
		}
		id, secret, basic = bid, bsecret, true
	}
	tok, err := g.cfg.Access.IssueToken(c.UserContext(), access.TokenRequest{
		ClientID: id, ClientSecret: secret, PeerCertificates: peerCertificates(c), ClientIP: g.clientIP(c),
	})
	if err != nil {
		var oe *access.OAuthError
		if !errors.As(err, &oe) {
			g.log.Error("token endpoint", "err", err)
			oe = &access.OAuthError{Status: 500, Code: "server_error", Description: "the token could not be issued"}
		}
		if basic && oe.Status == 401 {
			c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="openfsb"`)
		}
		return oauthError(c, oe)
	}
	return c.Status(200).JSON(tok)
}

func oauthError(c *fiber.Ctx, e *access.OAuthError) error {
	if e.RetryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, itoa(e.RetryAfter))
	}
	b, _ := json.Marshal(map[string]string{"error": e.Code, "error_description": e.Description})
	c.Status(e.Status)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(b)
}

// parseBasic reads an HTTP Basic Authorization value; RFC 6749 §2.3.1 has
// the client id and secret form-urlencoded inside it.
func parseBasic(h string) (id, secret string, ok bool) {
	scheme, rest, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", false
	}
	id, secret, found = strings.Cut(string(raw), ":")
	if !found {
		return "", "", false
	}
	var e1, e2 error
	id, e1 = url.QueryUnescape(id)
	secret, e2 = url.QueryUnescape(secret)
	return id, secret, e1 == nil && e2 == nil
}
