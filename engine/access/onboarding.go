package access

import (
	"errors"
	"fmt"
	"strings"
)

// OrgState is an organisation's onboarding state.
type OrgState string

// The organisation states.
const (
	OrgRegistered      OrgState = "registered"
	OrgAgreementSigned OrgState = "agreementSigned"
)

// GrantState is a grant's onboarding state. The order is fixed:
//
//	submitted → approved | rejected
//	approved → credentialsRegistered → ipsRegistered → active
//
// A grant advances from approved by itself as soon as its application has a
// usable credential and then an allowlist (they may be registered before
// the approval: onboarding steps run in parallel); a passed connection test
// makes it active. Suspend, resume and revoke are holds laid over the state.
type GrantState string

// The grant states.
const (
	GrantSubmitted             GrantState = "submitted"
	GrantApproved              GrantState = "approved"
	GrantRejected              GrantState = "rejected"
	GrantCredentialsRegistered GrantState = "credentialsRegistered"
	GrantIPsRegistered         GrantState = "ipsRegistered"
	GrantActive                GrantState = "active"
)

// Admin actions, as named in transition errors and in the admin log.
const (
	ActRegisterOrganisation = "registerOrganisation"
	ActSignAgreement        = "signAgreement"
	ActAddApplication       = "addApplication"
	ActSubmitLegalBasis     = "submitLegalBasis"
	ActApprove              = "approve"
	ActReject               = "reject"
	ActRegisterCertificate  = "registerCertificate"
	ActCreateOAuthClient    = "createOAuthClient"
	ActSetAllowlist         = "setAllowlist"
	ActAdvance              = "advance" // a grant moved on by a credential or allowlist change
	ActRecordTest           = "recordConnectionTest"
	ActAmendGrant           = "amendGrant"
	ActSuspend              = "suspend"
	ActResume               = "resume"
	ActRevoke               = "revoke"
)

// ErrNotFound is wrapped by errors about a record that does not exist.
var ErrNotFound = errors.New("not found")

// ErrInvalid is wrapped by errors about an invalid admin request.
var ErrInvalid = errors.New("invalid")

// TransitionError is an admin action that the subject's current state does
// not allow. It names the state and the actions that are allowed.
type TransitionError struct {
	Subject string   // "grant grt_…", "organisation 0203201340" …
	State   string   // the current state, with its hold
	Action  string   // what was attempted
	Allowed []string // what may happen next
}

func (e *TransitionError) Error() string {
	next := "nothing"
	if len(e.Allowed) > 0 {
		next = strings.Join(e.Allowed, ", ")
	}
	return fmt.Sprintf("%s is %s: %s is not allowed; allowed next: %s", e.Subject, e.State, e.Action, next)
}

// status is a state with its hold, as shown in errors and the admin log.
func status(state string, h Hold) string {
	switch h {
	case Revoked:
		return "revoked"
	case Suspended:
		if state == "" {
			return "suspended"
		}
		return state + " (suspended)"
	}
	if state == "" {
		return "in use"
	}
	return state
}

// holdActions are what a hold allows; nil means the hold does not decide.
func holdActions(h Hold) []string {
	switch h {
	case Revoked:
		return []string{}
	case Suspended:
		return []string{ActResume, ActRevoke}
	}
	return nil
}

// grantActions lists what a grant in state s (without a hold) allows.
func grantActions(s GrantState) []string {
	switch s {
	case GrantSubmitted:
		return []string{ActApprove, ActReject, ActAmendGrant, ActSuspend, ActRevoke}
	case GrantApproved:
		return []string{ActRegisterCertificate + " or " + ActCreateOAuthClient, ActAmendGrant, ActSuspend, ActRevoke}
	case GrantCredentialsRegistered:
		return []string{ActSetAllowlist, ActAmendGrant, ActSuspend, ActRevoke}
	case GrantIPsRegistered, GrantActive:
		return []string{ActRecordTest, ActAmendGrant, ActSuspend, ActRevoke}
	case GrantRejected:
		return []string{ActRevoke, "a new " + ActSubmitLegalBasis}
	}
	return nil
}

// grantAllows checks that action is allowed on g now.
func grantAllows(g *Grant, action string) error {
	allowed := holdActions(g.Hold)
	if allowed == nil {
		allowed = grantActions(g.State)
	}
	for _, a := range allowed {
		if a == action {
			return nil
		}
	}
	return &TransitionError{Subject: "grant " + g.ID, State: status(string(g.State), g.Hold), Action: action, Allowed: allowed}
}

// holdAllows checks a suspend/resume/revoke against a record's hold.
func holdAllows(subject, state string, h Hold, action string) error {
	var allowed []string
	switch h {
	case Revoked:
		allowed = []string{}
	case Suspended:
		allowed = []string{ActResume, ActRevoke}
	default:
		allowed = []string{ActSuspend, ActRevoke}
	}
	for _, a := range allowed {
		if a == action {
			return nil
		}
	}
	return &TransitionError{Subject: subject, State: status(state, h), Action: action, Allowed: allowed}
}

// advance moves an approved grant as far as its application's credentials
// and allowlist allow, and reports whether it moved.
func advance(g *Grant, hasCredential, hasAllowlist bool) bool {
	moved := false
	if g.State == GrantApproved && hasCredential {
		g.State, moved = GrantCredentialsRegistered, true
	}
	if g.State == GrantCredentialsRegistered && hasAllowlist {
		g.State, moved = GrantIPsRegistered, true
	}
	return moved
}

// servesIn reports whether a grant in its current state and hold may serve
// a call in environment env: production needs an active production grant;
// the test environment also admits a grant whose connection test is
// pending, so that the test can run.
func (g *Grant) servesIn(env Environment) bool {
	if g.Hold != NoHold {
		return false
	}
	switch env {
	case Production:
		return g.Environment == Production && g.State == GrantActive
	case Test:
		return g.State == GrantActive || g.State == GrantIPsRegistered
	}
	return false
}
