package access

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/openfsb/fsb/engine/expr"
	"github.com/openfsb/fsb/engine/problem"
)

// Call is what the gateway knows about a consumer call when it asks Decide.
type Call struct {
	// PeerCertificates is the TLS client chain as presented, leaf first
	// (tls.ConnectionState.PeerCertificates); nil without a client
	// certificate. Decide verifies it against Options.ClientCAs itself, so
	// the listener should use tls.RequestClientCert: a chain refused in the
	// handshake would get a TLS alert instead of a problem document.
	PeerCertificates []*x509.Certificate
	// BearerToken is the access token of an "Authorization: Bearer" header
	// (see ParseBearer), "" without one.
	BearerToken string
	// ClientIP is the caller's address as the gateway resolved it: the
	// socket's peer address, or the X-Forwarded-For entry added by a
	// configured trusted proxy when the peer is one. Never a header value
	// from an untrusted peer.
	ClientIP netip.Addr
	// Service is the flow name and major version the route belongs to.
	Service Service
	// Environment is the endpoint's environment (test or production).
	Environment Environment
	// Purpose and EndUser are the values of the HeaderPurpose and
	// HeaderEndUser request headers ("" when absent).
	Purpose string
	EndUser string
	// Time is when the call arrived; zero means now.
	Time time.Time
}

// Step names a check of Decide, in the order they run.
type Step string

// The steps of Decide, in order.
const (
	StepFailedRequests Step = "failedRequests" // the address or credential is blocked
	StepCertificate    Step = "certificate"    // the TLS client chain verifies
	StepCredential     Step = "credential"     // a registered, usable credential
	StepSourceIP       Step = "sourceIP"       // the address is in the allowlist
	StepGrant          Step = "grant"          // a grant for this service and environment
	StepPurpose        Step = "purpose"        // the legal basis covers the stated purpose
	StepValidity       Step = "validity"       // the grant's validity window
	StepQuota          Step = "quota"          // the grant's quota
)

// Decision is Decide's answer, for the gateway, the flow and the audit.
type Decision struct {
	Allowed bool
	// Problem is the answer to send when the call is refused, nil when
	// allowed. Its detail says what is missing, never what exists.
	Problem *problem.Problem
	// Step is the check that refused the call ("" when allowed).
	Step Step
	// Reason explains a refusal for the audit trail and the logs; it may
	// name registry records and must not be sent to the consumer. It never
	// holds a token or a secret.
	Reason string

	// Who and why, filled as far as the checks got (the whole of it when
	// allowed).
	Organisation string // enterprise number
	Application  string // application id
	Credential   string // credential id
	Grant        string // grant id
	LegalBasis   LegalBasis
	Service      Service
	Environment  Environment
	Purpose      string
	EndUser      string
	// Fields are the response paths the grant releases; nil releases the
	// whole response (see Minimise). Shared: do not modify.
	Fields []string
	// QuotaRemaining is how many calls the window still allows; -1 when
	// the grant has no quota.
	QuotaRemaining int
	// Consumer is what flow expressions read as consumer.
	Consumer expr.Consumer
}

// Refusal details. They say what the caller must fix without saying which
// records exist: an unknown certificate, a revoked one and one whose chain
// fails all read the same.
const (
	detailNoCredential  = "the call presents neither a client certificate nor an access token"
	detailCertificate   = "the client certificate is not accepted: it must chain to a CA this service integrator trusts and be registered for an active credential"
	detailToken         = "the access token is not valid"
	detailTokenExpired  = "the access token has expired: request a new one"
	detailTokenBinding  = "the access token is bound to a client certificate this connection did not present"
	detailSourceIP      = "calls from %s are not allowed for your application"
	detailNoGrant       = "your application has no grant in effect for this service in the %s environment"
	detailPurpose       = "the purpose stated in " + HeaderPurpose + " is not covered by your grant for this service"
	detailValidity      = "your grant for this service is not valid at this time"
	detailQuota         = "the quota of your grant for this service is used up"
	detailFailedRequest = "too many failed requests: retry later"
)

// Decide runs the access checks for one consumer call, in this fixed order:
//
//  0. failed requests: a source address blocked after repeated refusals
//  1. TLS client certificate: a presented chain must verify
//  2. credential: a bearer token (signature, issuer, audience, expiry,
//     certificate binding) or else the certificate's pinned fingerprint
//     must name a credential free of holds, as its application and
//     organisation are; then a blocked credential is refused
//  3. source IP: the address must be in the application's allowlist
//  4. grant: a grant for this service that may serve this environment
//  5. legal basis and purpose: the stated purpose must be one the grant's
//     legal basis covers; the end-user reference must be present
//  6. validity: now must be inside the grant's validity window
//  7. quota: the grant's quota for the current window
//
// A refusal at steps 1–6 counts as a failed request for the source address
// and, once known, the credential; Options.FailureLimit of them within
// Options.FailureWindow block both until the window ends. Decide never
// blocks and does no I/O; it is safe for concurrent use.
func (r *Registry) Decide(ctx context.Context, c Call) Decision {
	now := c.Time
	if now.IsZero() {
		now = time.Now()
	}
	d := Decision{Service: c.Service, Environment: c.Environment, Purpose: c.Purpose, EndUser: c.EndUser, QuotaRemaining: -1}
	s := r.snap.Load()
	ce := r.authenticate(&d, c, now, s)
	if ce == nil {
		return d
	}

	// 4. A grant for this service in this environment.
	env := c.Environment
	if env == "" {
		env = Production
	}
	grants := s.grantsFor[grantKey{app: ce.app.ID, name: c.Service.Name, major: c.Service.Major}]
	n := 0
	for i := range grants {
		if grants[i].g.servesIn(env) {
			n++
		}
	}
	if n == 0 {
		return r.fail(&d, c, now, StepGrant, problem.New("missingPermission", 403, fmt.Sprintf(detailNoGrant, env)), "no grant in effect for "+c.Service.String())
	}

	// 5. Legal basis and purpose. Malformed headers are a bad request
	// (the caller is known by now, so saying which header is safe).
	if msg := checkPurpose(c.Purpose); msg != "" {
		return r.fail(&d, c, now, StepPurpose, badHeader(HeaderPurpose, c.Purpose == "", c.Purpose, msg), HeaderPurpose+" "+msg)
	}
	if msg := checkEndUser(c.EndUser); msg != "" {
		return r.fail(&d, c, now, StepPurpose, badHeader(HeaderEndUser, c.EndUser == "", nil, msg), HeaderEndUser+" "+msg)
	}
	var forPurpose *grantEntry
	for i := range grants {
		if grants[i].g.servesIn(env) && covers(grants[i].g, c.Purpose) {
			forPurpose = &grants[i]
			break
		}
	}
	if forPurpose == nil {
		return r.fail(&d, c, now, StepPurpose, problem.New("missingPermission", 403, detailPurpose), "purpose not covered by any grant for "+c.Service.String())
	}

	// 6. Validity: the first grant, in id order, that serves, covers the
	// purpose and is valid now.
	var ge *grantEntry
	for i := range grants {
		g := grants[i].g
		if g.servesIn(env) && covers(g, c.Purpose) && validAt(g, now) {
			ge = &grants[i]
			break
		}
	}
	if ge == nil {
		d.Grant = forPurpose.g.ID
		return r.fail(&d, c, now, StepValidity, problem.New("missingPermission", 403, detailValidity), "grant outside its validity window")
	}
	g := ge.g
	d.Grant, d.LegalBasis, d.Fields = g.ID, g.LegalBasis, g.Fields

	// 7. Quota.
	ok, remaining, retryAfter := ge.quota.take(g.Quota, now)
	if !ok {
		p := problem.New("tooManyRequests", 429, detailQuota)
		p.RetryAfter = retryAfter
		return d.refuse(StepQuota, p, "quota used up")
	}
	d.Allowed, d.QuotaRemaining = true, remaining
	d.Consumer = expr.Consumer{Organisation: d.Organisation, Application: d.Application, Purpose: c.Purpose, EndUser: c.EndUser}
	return d
}

// Authenticate runs only the first checks of Decide (0–3: failed requests,
// certificate, credential, source address) for calls that concern the
// caller itself rather than a service, such as a consumer reading the audit
// records of its own calls. Allowed means the caller is a usable credential
// of an organisation calling from its allowlist; Organisation, Application
// and Credential say which. Refusals count as failed requests as in Decide.
func (r *Registry) Authenticate(ctx context.Context, c Call) Decision {
	now := c.Time
	if now.IsZero() {
		now = time.Now()
	}
	d := Decision{Environment: c.Environment, QuotaRemaining: -1}
	if r.authenticate(&d, c, now, r.snap.Load()) == nil {
		return d
	}
	d.Allowed = true
	return d
}

// authenticate runs steps 0–3 of Decide. It returns the caller's
// credential, or nil after setting *d to the refusal.
func (r *Registry) authenticate(d *Decision, c Call, now time.Time, s *snapshot) *credEntry {
	// 0. An address that failed too often is refused before anything
	// else, so that guessing learns nothing more.
	if ra, blocked := r.failures.blockedIP(c.ClientIP, now); blocked {
		*d = d.refuse(StepFailedRequests, tooManyFailed(ra), "source address blocked after repeated failed requests")
		return nil
	}

	// 1. TLS client certificate.
	var fp [32]byte
	hasCert := len(c.PeerCertificates) > 0 && c.PeerCertificates[0] != nil
	if hasCert {
		fp = fingerprint(c.PeerCertificates[0].Raw)
		if err := r.verifyChain(fp, c.PeerCertificates, now); err != nil {
			*d = r.fail(d, c, now, StepCertificate, problem.New("invalidAccessToken", 401, detailCertificate), "certificate chain: "+err.Error())
			return nil
		}
	}

	// 2. Credential.
	var ce *credEntry
	switch {
	case c.BearerToken != "":
		vt, err := r.verifyToken(c.BearerToken, now)
		if errors.Is(err, errTokenExpired) {
			*d = r.fail(d, c, now, StepCredential, problem.New("expiredAccessToken", 401, detailTokenExpired), "access token expired")
			return nil
		}
		if err != nil {
			*d = r.fail(d, c, now, StepCredential, problem.New("invalidAccessToken", 401, detailToken), err.Error())
			return nil
		}
		ce = s.byClient[vt.clientID]
		if ce == nil || !ce.usable {
			*d = r.fail(d, c, now, StepCredential, problem.New("invalidAccessToken", 401, detailToken), "access token of an unknown or held client "+vt.clientID)
			return nil
		}
		if vt.bound && (!hasCert || vt.cnf != fp) {
			d.Credential = ce.cred.ID
			*d = r.fail(d, c, now, StepCredential, problem.New("invalidAccessToken", 401, detailTokenBinding), "access token bound to another certificate")
			return nil
		}
	case hasCert:
		ce = s.byFingerprint[fp]
		if ce == nil || !ce.usable {
			*d = r.fail(d, c, now, StepCredential, problem.New("invalidAccessToken", 401, detailCertificate), unregisteredReason(fp))
			return nil
		}
	default:
		*d = r.fail(d, c, now, StepCredential, problem.New("noAccessToken", 401, detailNoCredential), "no credential presented")
		return nil
	}
	d.Credential, d.Application, d.Organisation = ce.cred.ID, ce.app.ID, ce.org.EnterpriseNumber
	if ra, blocked := r.failures.blockedCred(ce.cred.ID, now); blocked {
		*d = d.refuse(StepFailedRequests, tooManyFailed(ra), "credential blocked after repeated failed requests")
		return nil
	}

	// 3. Source address.
	if !c.ClientIP.IsValid() || !allowed(ce.app.Allowlist, c.ClientIP) {
		ip := "this address"
		if c.ClientIP.IsValid() {
			ip = c.ClientIP.Unmap().String()
		}
		*d = r.fail(d, c, now, StepSourceIP, problem.New("missingPermission", 403, fmt.Sprintf(detailSourceIP, ip)), "source address not in the allowlist")
		return nil
	}

	return ce
}

// unregisteredReason takes fp by value so that Decide's copy stays on the
// stack.
func unregisteredReason(fp [32]byte) string {
	return fmt.Sprintf("certificate sha256 %x… is not registered or not usable", fp[:8])
}

func covers(g *Grant, purpose string) bool {
	for _, p := range g.Purposes {
		if p == purpose {
			return true
		}
	}
	return false
}

func validAt(g *Grant, now time.Time) bool {
	if !g.NotBefore.IsZero() && now.Before(g.NotBefore) {
		return false
	}
	return g.NotAfter.IsZero() || now.Before(g.NotAfter)
}

func (d Decision) refuse(step Step, p *problem.Problem, reason string) Decision {
	d.Allowed, d.Step, d.Problem, d.Reason = false, step, p, reason
	return d
}

// fail refuses the call and counts it as a failed request.
func (r *Registry) fail(d *Decision, c Call, now time.Time, step Step, p *problem.Problem, reason string) Decision {
	r.failures.add(c.ClientIP, d.Credential, now)
	return d.refuse(step, p, reason)
}

func tooManyFailed(retryAfter int) *problem.Problem {
	p := problem.New("tooManyFailedRequests", 429, detailFailedRequest)
	p.RetryAfter = retryAfter
	return p
}

// badHeader is a badRequest naming the header. Only a short purpose is
// echoed: an end-user value may be personal data.
func badHeader(name string, missing bool, value any, msg string) *problem.Problem {
	typ := problem.InvalidInput
	if missing {
		typ = problem.RequiredInput
	}
	if s, ok := value.(string); ok && (s == "" || len(s) > maxPurpose) {
		value = nil
	}
	return problem.BadRequest("the request has an invalid header", problem.NewIssue(typ, "header", name, value, name+" "+msg))
}
