package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/openfsb/fsb/engine/access"
	"github.com/openfsb/fsb/engine/catalog"
)

// mountCatalog serves the service catalogue (engine/catalog) on the
// consumer listener: its pages and JSON API under catalog.Prefix and each
// API's OpenAPI document at the Belgif reserved paths /{api}/v{n}/doc/….
// It is public, like /health: no credential is asked, no access decision
// made and nothing audited, and it shows nothing secret (no source
// addresses or credentials). Only the catalogue's own paths are routed to
// it, so it cannot shadow a flow.
//
// With access enforcement on, a service page also shows a visitor who
// presents a registered client certificate or a valid access token their
// own organisation, application and grants for that service (visitorAccess),
// and everyone else the onboarding steps; nothing of another consumer.
func (g *Gateway) mountCatalog(app *fiber.App) {
	cat := g.cfg.Catalog
	if cat == nil {
		cat = catalog.New(nil, g.cfg.Plans) // without the documents: no source titles, no examples
	}
	var h, page fiber.Handler
	if g.cfg.Access == nil {
		h = adaptor.HTTPHandler(cat.Handler())
		page = h
	} else {
		h = adaptor.HTTPHandler(cat.HandlerWithAccess(g.visitorAccess))
		page = func(c *fiber.Ctx) error {
			// Authenticated here, where the TLS state and the client
			// address are known, and handed to visitorAccess by the
			// request's context (fasthttp user values).
			if d, ok := g.identifyVisitor(c); ok {
				c.Context().SetUserValue(visitorKey{}, d)
			}
			return h(c)
		}
	}
	serve := func(handler fiber.Handler) fiber.Handler {
		return func(c *fiber.Ctx) error {
			g.traceHeaders(c)
			return handler(c)
		}
	}
	for _, p := range cat.Paths() {
		if p == cat.ServicePagePath() {
			app.Get(fiberPath(p), serve(page))
		} else {
			app.Get(fiberPath(p), serve(h))
		}
	}
}

// visitorKey keys the visitor's access.Decision among the request's user
// values.
type visitorKey struct{}

// identifyVisitor authenticates the visitor of a service page as the
// consumer audit API does (g.authenticate: certificate or token, usable
// credential, allowlisted address). A visitor who presents neither a
// client certificate nor a bearer token is not looked up at all, so
// browsing the catalogue never counts as a failed request; a presented
// credential that is refused counts exactly as access counts it.
func (g *Gateway) identifyVisitor(c *fiber.Ctx) (access.Decision, bool) {
	tok, _ := access.ParseBearer(c.Get(fiber.HeaderAuthorization))
	if len(peerCertificates(c)) == 0 && tok == "" {
		return access.Decision{}, false
	}
	d := g.authenticate(c)
	return d, d.Allowed
}

// visitorAccess is the catalogue's AccessFunc: the authenticated visitor's
// organisation, application and that application's grants for the
// service, nil for anyone else.
func (g *Gateway) visitorAccess(r *http.Request, name string, major int) *catalog.Visitor {
	d, ok := visitorDecision(r.Context())
	if !ok || !d.Allowed || d.Application == "" {
		return nil
	}
	reg := g.cfg.Access
	org, err := reg.Organisation(d.Organisation)
	if err != nil {
		return nil
	}
	app, err := reg.Application(d.Application)
	if err != nil || app.Organisation != org.EnterpriseNumber {
		return nil
	}
	v := &catalog.Visitor{Organisation: org.EnterpriseNumber, OrganisationName: org.Name, Application: app.ID, ApplicationName: app.Name}
	for _, gr := range reg.Grants(app.ID) {
		if gr.Application != app.ID || gr.Service.Name != name || gr.Service.Major != major {
			continue
		}
		v.Grants = append(v.Grants, grantView(gr))
	}
	return v
}

func visitorDecision(ctx context.Context) (access.Decision, bool) {
	if ctx == nil {
		return access.Decision{}, false
	}
	d, ok := ctx.Value(visitorKey{}).(access.Decision)
	return d, ok
}

// grantView words a grant for its consumer.
func grantView(gr access.Grant) catalog.VisitorGrant {
	state := string(gr.State)
	if gr.Hold != access.NoHold {
		state = string(gr.Hold)
	}
	v := catalog.VisitorGrant{
		ID: gr.ID, State: state, Environment: string(gr.Environment), Purposes: gr.Purposes,
		LegalBasis: legalBasisTitle(gr.LegalBasis.Kind), Reference: gr.LegalBasis.Reference, Link: gr.LegalBasis.Link,
		Validity: validityText(gr.NotBefore, gr.NotAfter), Quota: quotaText(gr.Quota), NextStep: nextStep(gr),
	}
	switch {
	case gr.Fields == nil:
		v.Fields = "the whole answer"
	case len(gr.Fields) == 0:
		v.Fields = "none (an empty object)"
	default:
		v.Fields = strings.Join(gr.Fields, ", ")
	}
	return v
}

// nextStep follows the onboarding state machine (engine/access).
func nextStep(gr access.Grant) string {
	switch gr.Hold {
	case access.Revoked:
		return "none: the grant is revoked; submit a new legal basis"
	case access.Suspended:
		return "the grant is suspended: ask the service integrator to resume it"
	}
	switch gr.State {
	case access.GrantSubmitted:
		return "approval pending: the service integrator reviews your legal basis"
	case access.GrantRejected:
		return "none: the legal basis was rejected; submit a new one"
	case access.GrantApproved:
		return "register a credential: a client certificate or an OAuth2 client"
	case access.GrantCredentialsRegistered:
		return "register the IP addresses your calls come from"
	case access.GrantIPsRegistered:
		if gr.LastTest != nil && !gr.LastTest.Passed {
			return "connection test pending: the last one failed; run it again against the test endpoint"
		}
		return "connection test pending: run it against the test endpoint"
	case access.GrantActive:
		if gr.Environment == access.Production {
			return "none: the grant serves test and production calls"
		}
		return "none: the grant serves test calls"
	}
	return "ask the service integrator"
}

func legalBasisTitle(k access.LegalBasisKind) string {
	switch k {
	case access.Law:
		return "a law"
	case access.ProtocolAgreement:
		return "a protocol agreement"
	case access.PriorAuthorisation:
		return "an earlier authorisation"
	}
	return string(k)
}

func validityText(from, to time.Time) string {
	const day = "2006-01-02"
	switch {
	case from.IsZero() && to.IsZero():
		return "no limit"
	case to.IsZero():
		return "from " + from.UTC().Format(day) + ", no end"
	case from.IsZero():
		return "until " + to.UTC().Format(day)
	}
	return "from " + from.UTC().Format(day) + " until " + to.UTC().Format(day)
}

func quotaText(q access.Quota) string {
	if q.Requests <= 0 || q.Period <= 0 {
		return "no quota"
	}
	per := q.Period.String()
	switch q.Period {
	case time.Second:
		per = "second"
	case time.Minute:
		per = "minute"
	case time.Hour:
		per = "hour"
	case 24 * time.Hour:
		per = "day"
	}
	unit := " requests"
	if q.Requests == 1 {
		unit = " request"
	}
	return fmt.Sprintf("%s%s per %s", strconv.Itoa(q.Requests), unit, per)
}
