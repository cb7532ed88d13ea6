package catalog

import "net/http"

// Visitor is what a service page shows a visitor about their own access:
// the organisation and application the server in front of the catalogue
// authenticated them as, and that application's grants for the service.
// The catalogue knows nothing of the access registry; the gateway fills
// this from it (see AccessFunc) and must put nothing of another consumer
// in it.
type Visitor struct {
	Organisation     string // enterprise number
	OrganisationName string
	Application      string // application id
	ApplicationName  string
	Grants           []VisitorGrant // for this service only
}

// VisitorGrant is one of the visitor's grants for the service, ready to
// show: the gateway words the states and terms of its registry.
type VisitorGrant struct {
	ID          string
	State       string // the onboarding state, or suspended / revoked when held
	Environment string
	Purposes    []string
	LegalBasis  string // the kind, worded
	Reference   string // the text the legal basis refers to
	Link        string // optional
	Validity    string
	Quota       string
	Fields      string // the released fields, worded
	NextStep    string // what onboarding needs next, or that nothing does
}

// AccessFunc tells what the visitor of r may see of their own access to a
// service (its flow name and major version): nil for a visitor who is not
// recognised, who then sees only how to obtain access. It must not count
// a page view against the visitor (no failed request for someone who
// presented nothing) and must return only the visitor's own records.
type AccessFunc func(r *http.Request, name string, major int) *Visitor

// OnboardingSteps are the steps to obtain access to a service, shown on
// its page to every visitor who is not recognised. Static text: no
// registry data.
var OnboardingSteps = []string{
	"Agreement: your organisation is registered by its enterprise number and signs the service integrator's user agreement.",
	"Legal basis: submit, for this service, one of the accepted legal bases above with the purposes you will state, the environment (test or production) and the fields you need.",
	"Approval: the service integrator reviews the legal basis and approves or rejects it.",
	"Credentials: register a client certificate (mTLS) or create an OAuth2 client for your application.",
	"IP addresses: register the addresses your calls come from; no other address is admitted.",
	"Connection test: run the automated test against the test endpoint; once it passes, the grant is active and production calls are served.",
}
