package access

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openfsb/fsb/engine/expr"
	"github.com/openfsb/fsb/sdk/jsonx"
)

// Admin actions. Each takes the acting administrator's name (from the admin
// API's authentication), is recorded in the admin log with the subject's
// state before and after, and applies to the next Decide.

// RegisterOrganisation registers a consumer organisation under its
// enterprise number, in any usual writing ("0203.201.340", "BE0203201340").
func (r *Registry) RegisterOrganisation(ctx context.Context, actor, enterpriseNumber, name string) (Organisation, error) {
	en, ok := expr.NormalizeEnterpriseNumber(enterpriseNumber)
	if !ok {
		return Organisation{}, fmt.Errorf("organisation: %q is not a valid Belgian enterprise number: %w", enterpriseNumber, ErrInvalid)
	}
	if err := checkName("organisation name", name); err != nil {
		return Organisation{}, err
	}
	var out Organisation
	err := r.update(ctx, actor, func(ch *change) error {
		if _, dup := ch.rs.orgs[en]; dup {
			return fmt.Errorf("organisation %s is already registered: %w", en, ErrInvalid)
		}
		o := &Organisation{EnterpriseNumber: en, Name: name, State: OrgRegistered, Created: ch.now}
		ch.putOrg(o)
		ch.record(ActRegisterOrganisation, en, "", string(o.State), name)
		out = *o
		return nil
	})
	return out, err
}

// SignAgreement records that the organisation signed the user agreement
// (a later version may be signed again).
func (r *Registry) SignAgreement(ctx context.Context, actor, org string, a Agreement) (Organisation, error) {
	if a.Version == "" || a.Signer == "" || a.Signed.IsZero() {
		return Organisation{}, fmt.Errorf("agreement: version, signer and date are required: %w", ErrInvalid)
	}
	var out Organisation
	err := r.update(ctx, actor, func(ch *change) error {
		old, err := ch.org(org)
		if err != nil {
			return err
		}
		if old.Hold != NoHold {
			return &TransitionError{Subject: "organisation " + old.EnterpriseNumber, State: status(string(old.State), old.Hold), Action: ActSignAgreement, Allowed: holdActions(old.Hold)}
		}
		o := *old
		o.State, o.Agreement = OrgAgreementSigned, &Agreement{Version: a.Version, Signer: a.Signer, Signed: a.Signed.UTC()}
		ch.putOrg(&o)
		ch.record(ActSignAgreement, o.EnterpriseNumber, string(old.State), string(o.State), "version "+a.Version+" signed by "+a.Signer)
		out = o
		return nil
	})
	return out, err
}

// AddApplication adds an application to an organisation.
func (r *Registry) AddApplication(ctx context.Context, actor, org, name string) (Application, error) {
	if err := checkName("application name", name); err != nil {
		return Application{}, err
	}
	var out Application
	err := r.update(ctx, actor, func(ch *change) error {
		o, err := ch.org(org)
		if err != nil {
			return err
		}
		if o.Hold == Revoked {
			return &TransitionError{Subject: "organisation " + o.EnterpriseNumber, State: "revoked", Action: ActAddApplication, Allowed: []string{}}
		}
		for _, a := range ch.rs.apps {
			if a.Organisation == o.EnterpriseNumber && a.Name == name {
				return fmt.Errorf("organisation %s already has an application %q: %w", o.EnterpriseNumber, name, ErrInvalid)
			}
		}
		a := &Application{ID: newID(appPrefix), Organisation: o.EnterpriseNumber, Name: name, Created: ch.now}
		ch.putApp(a)
		ch.record(ActAddApplication, a.ID, "", status("", NoHold), o.EnterpriseNumber+" "+name)
		out = *a
		return nil
	})
	return out, err
}

// SetAllowlist replaces an application's IP allowlist (see ParseAllowlist
// for text input). Grants waiting for addresses move on.
func (r *Registry) SetAllowlist(ctx context.Context, actor, app string, prefixes []netip.Prefix) (Application, error) {
	list, err := normaliseAllowlist(prefixes)
	if err != nil {
		return Application{}, err
	}
	var out Application
	err = r.update(ctx, actor, func(ch *change) error {
		old, err := ch.app(app)
		if err != nil {
			return err
		}
		if old.Hold == Revoked {
			return &TransitionError{Subject: "application " + old.ID, State: "revoked", Action: ActSetAllowlist, Allowed: []string{}}
		}
		a := *old
		a.Allowlist = list
		ch.putApp(&a)
		ch.record(ActSetAllowlist, a.ID, prefixList(old.Allowlist), prefixList(list), "")
		ch.advanceGrants(a.ID)
		out = a
		return nil
	})
	return out, err
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// RegisterCertificate registers a client certificate (PEM, leaf first and
// optional intermediates, or DER) as a credential of an application. The
// chain must verify against Options.ClientCAs for client authentication;
// the leaf is pinned by the SHA-256 of its DER. Grants waiting for a
// credential move on.
func (r *Registry) RegisterCertificate(ctx context.Context, actor, app string, cert []byte) (Credential, error) {
	chain, err := parseCertificates(cert)
	if err != nil {
		return Credential{}, err
	}
	if r.opts.ClientCAs == nil {
		return Credential{}, fmt.Errorf("certificate: no client CA is configured: %w", ErrInvalid)
	}
	leaf := chain[0]
	now := r.opts.Now()
	opts := x509.VerifyOptions{Roots: r.opts.ClientCAs, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, Intermediates: x509.NewCertPool()}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(opts); err != nil {
		return Credential{}, fmt.Errorf("certificate %q: %w: %w", leaf.Subject.String(), err, ErrInvalid)
	}
	fp := fingerprint(leaf.Raw)
	fpHex := hex.EncodeToString(fp[:])
	var out Credential
	err = r.update(ctx, actor, func(ch *change) error {
		a, err := ch.app(app)
		if err != nil {
			return err
		}
		if a.Hold == Revoked {
			return &TransitionError{Subject: "application " + a.ID, State: "revoked", Action: ActRegisterCertificate, Allowed: []string{}}
		}
		for _, c := range ch.rs.creds {
			if c.Kind == Certificate && c.Fingerprint == fpHex && c.Hold != Revoked {
				return fmt.Errorf("certificate %s is already registered: %w", fpHex[:16], ErrInvalid)
			}
		}
		c := &Credential{ID: newID(credPrefix), Application: a.ID, Kind: Certificate, Fingerprint: fpHex,
			Subject: leaf.Subject.String(), NotAfter: leaf.NotAfter.UTC(), DER: leaf.Raw, Created: ch.now}
		ch.putCred(c)
		ch.record(ActRegisterCertificate, c.ID, "", status("", NoHold), "application "+a.ID+", sha256 "+fpHex)
		ch.advanceGrants(a.ID)
		out = *c
		return nil
	})
	return out, err
}

// CreateOAuthClient creates an OAuth2 client credential for an application
// and returns it with its secret. The secret is shown only here: the
// registry keeps only its hash. The credential id is the client_id.
func (r *Registry) CreateOAuthClient(ctx context.Context, actor, app string) (Credential, string, error) {
	var out Credential
	var secret string
	err := r.update(ctx, actor, func(ch *change) error {
		a, err := ch.app(app)
		if err != nil {
			return err
		}
		if a.Hold == Revoked {
			return &TransitionError{Subject: "application " + a.ID, State: "revoked", Action: ActCreateOAuthClient, Allowed: []string{}}
		}
		var hash *SecretHash
		secret, hash = newSecret()
		c := &Credential{ID: newID(credPrefix), Application: a.ID, Kind: OAuthClient, SecretHash: hash, Created: ch.now}
		ch.putCred(c)
		ch.record(ActCreateOAuthClient, c.ID, "", status("", NoHold), "application "+a.ID)
		ch.advanceGrants(a.ID)
		out = *c
		return nil
	})
	if err != nil {
		return Credential{}, "", err
	}
	return out, secret, nil
}

// SubmitLegalBasis asks for a grant: the application's organisation must
// have signed the user agreement. The grant starts in GrantSubmitted.
func (r *Registry) SubmitLegalBasis(ctx context.Context, actor, app string, t GrantTerms) (Grant, error) {
	t, err := checkTerms(t)
	if err != nil {
		return Grant{}, err
	}
	var out Grant
	err = r.update(ctx, actor, func(ch *change) error {
		a, err := ch.app(app)
		if err != nil {
			return err
		}
		o := ch.rs.orgs[a.Organisation]
		switch {
		case a.Hold == Revoked:
			return &TransitionError{Subject: "application " + a.ID, State: "revoked", Action: ActSubmitLegalBasis, Allowed: []string{}}
		case o.Hold != NoHold:
			return &TransitionError{Subject: "organisation " + o.EnterpriseNumber, State: status(string(o.State), o.Hold), Action: ActSubmitLegalBasis, Allowed: holdActions(o.Hold)}
		case o.State != OrgAgreementSigned:
			return &TransitionError{Subject: "organisation " + o.EnterpriseNumber, State: string(o.State), Action: ActSubmitLegalBasis, Allowed: []string{ActSignAgreement}}
		}
		g := &Grant{ID: newID(grantPrefix), Application: a.ID, GrantTerms: t, State: GrantSubmitted, Created: ch.now}
		ch.putGrant(g)
		ch.record(ActSubmitLegalBasis, g.ID, "", string(g.State), fmt.Sprintf("%s for %s: %s %s", a.ID, t.Service, t.LegalBasis.Kind, t.LegalBasis.Reference))
		out = *g
		return nil
	})
	return out, err
}

// Approve approves a submitted grant's legal basis. It moves on at once to
// the furthest state the application's credentials and allowlist allow.
func (r *Registry) Approve(ctx context.Context, actor, grant string) (Grant, error) {
	return r.grantAction(ctx, actor, grant, ActApprove, "", func(ch *change, g *Grant) error {
		g.State = GrantApproved
		return nil
	})
}

// Reject rejects a submitted grant's legal basis, for a reason.
func (r *Registry) Reject(ctx context.Context, actor, grant, reason string) (Grant, error) {
	if reason == "" {
		return Grant{}, fmt.Errorf("reject: a reason is required: %w", ErrInvalid)
	}
	return r.grantAction(ctx, actor, grant, ActReject, reason, func(ch *change, g *Grant) error {
		g.State = GrantRejected
		return nil
	})
}

// RecordConnectionTest stores a connection test result. The test passes
// when it holds every check of RequiredChecks and all its checks passed;
// a passed test makes a grant in GrantIPsRegistered active. A failed test
// of an active grant is stored but does not demote it.
func (r *Registry) RecordConnectionTest(ctx context.Context, actor, grant string, t ConnectionTest) (Grant, error) {
	if t.At.IsZero() {
		t.At = r.opts.Now()
	}
	t.At = t.At.UTC()
	t.Checks = slices.Clone(t.Checks)
	t.Passed = len(t.Checks) > 0
	have := map[string]bool{}
	var failed []string
	for _, c := range t.Checks {
		have[c.Name] = true
		if !c.Passed {
			t.Passed = false
			failed = append(failed, c.Name)
		}
	}
	for _, name := range RequiredChecks {
		if !have[name] {
			t.Passed = false
			failed = append(failed, name+" (missing)")
		}
	}
	detail := "passed"
	if !t.Passed {
		detail = "failed: " + strings.Join(failed, ", ")
	}
	return r.grantAction(ctx, actor, grant, ActRecordTest, detail, func(ch *change, g *Grant) error {
		g.LastTest = &t
		if t.Passed && g.State == GrantIPsRegistered {
			g.State = GrantActive
		}
		return nil
	})
}

// Amendment changes the terms of a grant that the integrator may change at
// any time; nil fields are left as they are. A different service, legal
// basis or purpose needs a new grant.
type Amendment struct {
	Quota     *Quota
	Fields    *[]string // a pointer to nil releases the whole response again
	NotBefore *time.Time
	NotAfter  *time.Time
}

// AmendGrant changes a grant's quota, released fields or validity window.
func (r *Registry) AmendGrant(ctx context.Context, actor, grant string, a Amendment) (Grant, error) {
	var parts []string
	if a.Quota != nil {
		parts = append(parts, fmt.Sprintf("quota %d per %s", a.Quota.Requests, a.Quota.Period))
	}
	if a.Fields != nil {
		parts = append(parts, "fields ["+strings.Join(*a.Fields, ", ")+"]")
	}
	if a.NotBefore != nil || a.NotAfter != nil {
		parts = append(parts, "validity")
	}
	return r.grantAction(ctx, actor, grant, ActAmendGrant, strings.Join(parts, "; "), func(ch *change, g *Grant) error {
		t := g.GrantTerms
		if a.Quota != nil {
			t.Quota = *a.Quota
		}
		if a.Fields != nil {
			t.Fields = slices.Clone(*a.Fields)
		}
		if a.NotBefore != nil {
			t.NotBefore = *a.NotBefore
		}
		if a.NotAfter != nil {
			t.NotAfter = *a.NotAfter
		}
		t, err := checkTerms(t)
		if err != nil {
			return err
		}
		g.GrantTerms = t
		return nil
	})
}

// grantAction runs an onboarding action on a copy of a grant and stores it.
func (r *Registry) grantAction(ctx context.Context, actor, id, action, detail string, fn func(*change, *Grant) error) (Grant, error) {
	var out Grant
	err := r.update(ctx, actor, func(ch *change) error {
		old, err := ch.grant(id)
		if err != nil {
			return err
		}
		if err := grantAllows(old, action); err != nil {
			return err
		}
		g := *old
		if err := fn(ch, &g); err != nil {
			return err
		}
		before := status(string(old.State), old.Hold)
		ch.putGrant(&g)
		ch.record(action, g.ID, before, status(string(g.State), g.Hold), detail)
		if action == ActApprove {
			ch.advanceGrants(g.Application)
			g = *ch.rs.grants[g.ID]
		}
		out = g
		return nil
	})
	return out, err
}

// advanceGrants moves the application's approved grants on as far as its
// credentials and allowlist allow, logging each move.
func (ch *change) advanceGrants(app string) {
	a := ch.rs.apps[app]
	hasCred := false
	for _, c := range ch.rs.creds {
		if c.Application == app && c.Hold == NoHold {
			hasCred = true
			break
		}
	}
	hasIPs := a != nil && len(a.Allowlist) > 0
	for _, id := range slices.Sorted(maps.Keys(ch.rs.grants)) {
		old := ch.rs.grants[id]
		if old.Application != app || old.Hold == Revoked {
			continue
		}
		g := *old
		if advance(&g, hasCred, hasIPs) {
			ch.putGrant(&g)
			ch.record(ActAdvance, g.ID, status(string(old.State), old.Hold), status(string(g.State), g.Hold), "")
		}
	}
}

// Suspend, Resume and Revoke take any record id: an enterprise number, or
// an application (app_…), credential (crd_…) or grant (grt_…) id. A hold on
// an organisation or application stops all of its calls; revoking is final.

// Suspend stops a record's calls until Resume.
func (r *Registry) Suspend(ctx context.Context, actor, id, reason string) error {
	return r.setHold(ctx, actor, id, ActSuspend, reason, Suspended)
}

// Resume lifts a suspension.
func (r *Registry) Resume(ctx context.Context, actor, id, reason string) error {
	return r.setHold(ctx, actor, id, ActResume, reason, NoHold)
}

// Revoke stops a record for good.
func (r *Registry) Revoke(ctx context.Context, actor, id, reason string) error {
	return r.setHold(ctx, actor, id, ActRevoke, reason, Revoked)
}

func (r *Registry) setHold(ctx context.Context, actor, id, action, reason string, h Hold) error {
	if reason == "" {
		return fmt.Errorf("%s: a reason is required: %w", action, ErrInvalid)
	}
	return r.update(ctx, actor, func(ch *change) error {
		switch {
		case strings.HasPrefix(id, grantPrefix):
			old, err := ch.grant(id)
			if err != nil {
				return err
			}
			if err := holdAllows("grant "+id, string(old.State), old.Hold, action); err != nil {
				return err
			}
			g := *old
			g.Hold = h
			ch.putGrant(&g)
			ch.record(action, id, status(string(old.State), old.Hold), status(string(g.State), g.Hold), reason)
		case strings.HasPrefix(id, credPrefix):
			old, ok := ch.rs.creds[id]
			if !ok {
				return fmt.Errorf("credential %q: %w", id, ErrNotFound)
			}
			if err := holdAllows("credential "+id, "", old.Hold, action); err != nil {
				return err
			}
			c := *old
			c.Hold = h
			ch.putCred(&c)
			ch.record(action, id, status("", old.Hold), status("", c.Hold), reason)
			if h == NoHold {
				ch.advanceGrants(c.Application)
			}
		case strings.HasPrefix(id, appPrefix):
			old, err := ch.app(id)
			if err != nil {
				return err
			}
			if err := holdAllows("application "+id, "", old.Hold, action); err != nil {
				return err
			}
			a := *old
			a.Hold = h
			ch.putApp(&a)
			ch.record(action, id, status("", old.Hold), status("", a.Hold), reason)
		default:
			old, err := ch.org(id)
			if err != nil {
				return err
			}
			if err := holdAllows("organisation "+old.EnterpriseNumber, string(old.State), old.Hold, action); err != nil {
				return err
			}
			o := *old
			o.Hold = h
			ch.putOrg(&o)
			ch.record(action, o.EnterpriseNumber, status(string(old.State), old.Hold), status(string(o.State), o.Hold), reason)
		}
		return nil
	})
}

// Lookups inside a change, with not-found errors.

func (ch *change) org(id string) (*Organisation, error) {
	en, ok := expr.NormalizeEnterpriseNumber(id)
	if o := ch.rs.orgs[en]; ok && o != nil {
		return o, nil
	}
	return nil, fmt.Errorf("organisation %q: %w", id, ErrNotFound)
}

func (ch *change) app(id string) (*Application, error) {
	if a := ch.rs.apps[id]; a != nil {
		return a, nil
	}
	return nil, fmt.Errorf("application %q: %w", id, ErrNotFound)
}

func (ch *change) grant(id string) (*Grant, error) {
	if g := ch.rs.grants[id]; g != nil {
		return g, nil
	}
	return nil, fmt.Errorf("grant %q: %w", id, ErrNotFound)
}

// checkName accepts 1–200 characters of printable UTF-8.
func checkName(what, s string) error {
	if s == "" || len(s) > 200 || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%s: 1 to 200 printable characters required: %w", what, ErrInvalid)
	}
	return nil
}

// checkTerms validates grant terms and returns them normalised.
func checkTerms(t GrantTerms) (GrantTerms, error) {
	bad := func(format string, args ...any) (GrantTerms, error) {
		return GrantTerms{}, fmt.Errorf("grant: "+format+": %w", append(args, ErrInvalid)...)
	}
	if !isIdentifier(t.Service.Name) || t.Service.Major < 0 {
		return bad("service needs a flow name and a major version ≥ 0")
	}
	switch t.LegalBasis.Kind {
	case Law, ProtocolAgreement, PriorAuthorisation:
	default:
		return bad("legal basis kind %q: want %s, %s or %s", t.LegalBasis.Kind, Law, ProtocolAgreement, PriorAuthorisation)
	}
	if err := checkName("legal basis reference", t.LegalBasis.Reference); err != nil {
		return GrantTerms{}, err
	}
	if t.LegalBasis.Link != "" {
		u, err := url.Parse(t.LegalBasis.Link)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return bad("legal basis link %q is not an http(s) URL", t.LegalBasis.Link)
		}
	}
	if len(t.Purposes) == 0 {
		return bad("at least one purpose is required")
	}
	t.Purposes = slices.Clone(t.Purposes)
	for i, p := range t.Purposes {
		if msg := checkPurpose(p); msg != "" {
			return bad("purpose %q %s", p, msg)
		}
		if slices.Contains(t.Purposes[:i], p) {
			return bad("purpose %q is listed twice", p)
		}
	}
	if !t.NotBefore.IsZero() && !t.NotAfter.IsZero() && !t.NotAfter.After(t.NotBefore) {
		return bad("notAfter must be after notBefore")
	}
	if !t.NotBefore.IsZero() {
		t.NotBefore = t.NotBefore.UTC()
	}
	if !t.NotAfter.IsZero() {
		t.NotAfter = t.NotAfter.UTC()
	}
	if t.Environment == "" {
		t.Environment = Production
	}
	if !t.Environment.valid() {
		return bad("environment %q: want %s or %s", t.Environment, Test, Production)
	}
	switch q := t.Quota; {
	case q.Requests < 0 || q.Period < 0:
		return bad("quota must not be negative")
	case q.Requests > 0 && q.Period < time.Second:
		return bad("quota period must be at least 1s")
	case q.Requests == 0 && q.Period != 0:
		return bad("quota with a period needs a number of requests")
	}
	if t.Fields != nil {
		t.Fields = slices.Clone(t.Fields)
		for _, f := range t.Fields {
			p, err := jsonx.ParsePath(f)
			if err != nil {
				return bad("field %q: %v", f, err)
			}
			if p.IsRoot() {
				return bad("field \"\" would release the whole response: leave fields out instead")
			}
		}
	}
	return t, nil
}

// isIdentifier matches flow names as engine/spec checks them:
// [a-zA-Z_][a-zA-Z0-9_]*.
func isIdentifier(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
