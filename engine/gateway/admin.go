package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"

	"github.com/openfsb/fsb/engine/access"
	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/problem"
)

// AdminPath prefixes every admin API route.
const AdminPath = "/admin/v1"

// HeaderAdminActor names the person behind an admin token, for the admin
// log ("token:<value>"). A client certificate names its holder itself.
const HeaderAdminActor = "OpenFSB-Admin-Actor"

// AdminConfig is what the admin API serves. It listens on its own address,
// never on the consumer listener.
type AdminConfig struct {
	Access *access.Registry // nil: the registry routes answer 404
	Audit  *audit.Store     // nil: the audit routes answer 404
	// Token is the bearer token admins present (compared in constant time).
	// Empty disables token authentication.
	Token []byte
	// ClientCAs, when set, also admits a TLS client certificate that
	// chains to it for client authentication; the actor is its subject.
	ClientCAs *x509.CertPool
	Log       *slog.Logger
	// Services are the services the gateway serves; a legal basis submitted
	// for another one is refused (a typo would otherwise surface only as
	// the consumer's "no grant in effect"). Nil: not checked.
	Services []access.Service
	// Metrics serves GET /admin/v1/metrics (engine/metrics, Prometheus
	// format), behind the admin's authentication like every admin route;
	// nil: 404.
	Metrics fiber.Handler
}

// Admin serves the admin API.
type Admin struct {
	app *fiber.App
	cfg AdminConfig
	log *slog.Logger
	// tokenSum is SHA-256 of the token: comparing fixed-length sums keeps
	// the comparison constant-time whatever length the caller sends.
	tokenSum [32]byte
	services atomic.Pointer[[]access.Service] // AdminConfig.Services, then SetServices
}

// SetServices replaces AdminConfig.Services; safe while serving (a hot
// reload that adds or removes a service calls it).
func (a *Admin) SetServices(s []access.Service) { a.services.Store(&s) }

// SetMetrics sets AdminConfig.Metrics; call it before serving.
func (a *Admin) SetMetrics(h fiber.Handler) { a.cfg.Metrics = h }

// NewAdmin builds the admin API. Without a token and without ClientCAs no
// request is ever admitted.
func NewAdmin(cfg AdminConfig) *Admin {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	a := &Admin{cfg: cfg, log: cfg.Log, tokenSum: sha256.Sum256(cfg.Token)}
	a.SetServices(cfg.Services)
	app := fiber.New(fiber.Config{
		AppName: "openfsb-admin", DisableStartupMessage: true, BodyLimit: 1 << 20,
		ReadTimeout: 30 * time.Second, WriteTimeout: 5 * time.Minute, IdleTimeout: 120 * time.Second,
		ErrorHandler: a.errorHandler,
	})
	app.Use(recover.New())
	app.Use(a.authenticate)
	r := app.Group(AdminPath)
	if cfg.Access != nil {
		r.Get("/organisations", a.listOrganisations)
		r.Post("/organisations", a.registerOrganisation)
		r.Get("/organisations/:org", a.getOrganisation)
		r.Post("/organisations/:org/agreement", a.signAgreement)
		r.Get("/applications", a.listApplications)
		r.Post("/applications", a.addApplication)
		r.Get("/applications/:app", a.getApplication)
		r.Put("/applications/:app/allowlist", a.setAllowlist)
		r.Post("/applications/:app/certificates", a.registerCertificate)
		r.Post("/applications/:app/oauthClients", a.createOAuthClient)
		r.Get("/credentials", a.listCredentials)
		r.Get("/grants", a.listGrants)
		r.Post("/grants", a.submitLegalBasis)
		r.Get("/grants/:grant", a.getGrant)
		r.Post("/grants/:grant/approve", a.approve)
		r.Post("/grants/:grant/reject", a.reject)
		r.Post("/grants/:grant/amend", a.amend)
		r.Post("/grants/:grant/connectionTests", a.recordTest)
		r.Post("/holds/:id/:action", a.hold)
		r.Get("/log", a.adminLog)
	}
	r.Get("/metrics", a.metrics)
	if cfg.Audit != nil {
		r.Get("/audit/records", a.queryRecords)
		r.Post("/audit/records/search", a.searchRecords)
		r.Get("/audit/records/:seq", a.getRecord)
		r.Get("/audit/records/:seq/proof", a.proof)
		r.Post("/audit/consultations/search", a.consultations)
		r.Get("/audit/head", a.head)
		r.Post("/audit/verify", a.verify)
		r.Get("/audit/export", a.export)
		r.Post("/audit/prune", a.prune)
		r.Get("/audit/backup", a.backup)
	}
	a.app = app
	return a
}

// App returns the fiber app (for Listen, Test, Shutdown).
func (a *Admin) App() *fiber.App { return a.app }

// metrics serves AdminConfig.Metrics (set at start, read-only after).
func (a *Admin) metrics(c *fiber.Ctx) error {
	if a.cfg.Metrics == nil {
		return fiber.ErrNotFound
	}
	return a.cfg.Metrics(c)
}

type actorKey struct{}

// authenticate admits a request with the admin token or an admin client
// certificate, and stores the actor for the admin log. Everything else,
// unknown paths included, is refused before routing: an unauthenticated
// caller learns nothing about the API.
func (a *Admin) authenticate(c *fiber.Ctx) error {
	actor := ""
	tok, sent := access.ParseBearer(c.Get(fiber.HeaderAuthorization))
	if sent {
		// Always compare (constant time, fixed-length sums), whether or not
		// token authentication is on, so the answer's timing does not tell.
		sum := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1 && len(a.cfg.Token) > 0 {
			actor = "token"
			if who := c.Get(HeaderAdminActor); who != "" && len(who) <= 128 && printable(who) {
				actor = "token:" + who
			}
		}
	}
	if actor == "" && a.cfg.ClientCAs != nil {
		if certs := peerCertificates(c); len(certs) > 0 {
			inter := x509.NewCertPool()
			for _, ic := range certs[1:] {
				inter.AddCert(ic)
			}
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: a.cfg.ClientCAs, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
				actor = "cert:" + certs[0].Subject.String()
			}
		}
	}
	if actor == "" && sent {
		// A token was sent and is not the admin token: say so, and nothing
		// about the right one.
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="openfsb-admin", error="invalid_token"`)
		return a.problem(c, problem.New("invalidAccessToken", 401, "the bearer token presented is not valid for the admin API"))
	}
	if actor == "" {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="openfsb-admin"`)
		return a.problem(c, problem.New("noAccessToken", 401, "the admin API needs the admin token (Authorization: Bearer) or an admin client certificate"))
	}
	c.SetUserContext(context.WithValue(c.UserContext(), actorKey{}, actor))
	return c.Next()
}

func actor(c *fiber.Ctx) string {
	s, _ := c.UserContext().Value(actorKey{}).(string)
	return s
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (a *Admin) problem(c *fiber.Ctx, p *problem.Problem) error { return sendProblem(c, p) }

func (a *Admin) errorHandler(c *fiber.Ctx, err error) error {
	var p *problem.Problem
	var fe *fiber.Error
	switch {
	case errors.As(err, &p):
	case errors.As(err, &fe) && fe.Code == 404:
		p = problem.NotFound("no admin resource at this path")
	case errors.As(err, &fe) && fe.Code == 405:
		p = &problem.Problem{Type: "about:blank", Title: "Method Not Allowed", Status: 405}
	case errors.As(err, &fe) && fe.Code == 413:
		p = problem.TooLarge("the request body exceeds 1 MiB")
	case errors.As(err, &fe) && fe.Code < 500:
		p = &problem.Problem{Type: "about:blank", Title: fe.Message, Status: fe.Code}
	default:
		a.log.Error("admin API", "path", c.Path(), "err", err)
		p = problem.Internal("an internal error occurred")
	}
	return a.problem(c, p)
}

// registryError maps an access error to a problem. Admin callers are
// trusted, so the detail is the error itself.
func registryError(err error) *problem.Problem {
	var te *access.TransitionError
	switch {
	case errors.As(err, &te):
		p := problem.New("conflict", 409, te.Error())
		return p
	case errors.Is(err, access.ErrNotFound):
		return problem.NotFound(err.Error())
	case errors.Is(err, access.ErrInvalid):
		return problem.BadRequest(err.Error())
	}
	return problem.Internal("the registry could not complete the action")
}

// decode reads a JSON body strictly (Belgif: unknown properties are errors).
func decode(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		typ := problem.SchemaViolation
		if strings.Contains(err.Error(), "unknown field") {
			typ = problem.UnknownInput
		}
		return problem.BadRequest("the request body is not valid", problem.NewIssue(typ, "body", "", nil, err.Error()))
	}
	if _, err := dec.Token(); err != io.EOF {
		return problem.BadRequest("the request body holds more than one JSON value")
	}
	return nil
}

func reply(c *fiber.Ctx, status int, v any, err error) error {
	if err != nil {
		return registryError(err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).JSON(v)
}

func (a *Admin) listOrganisations(c *fiber.Ctx) error {
	return reply(c, 200, fiber.Map{"organisations": a.cfg.Access.Organisations()}, nil)
}

func (a *Admin) registerOrganisation(c *fiber.Ctx) error {
	var in struct {
		EnterpriseNumber string `json:"enterpriseNumber"`
		Name             string `json:"name"`
	}
	if err := decode(c, &in); err != nil {
		return err
	}
	o, err := a.cfg.Access.RegisterOrganisation(c.UserContext(), actor(c), in.EnterpriseNumber, in.Name)
	return reply(c, 201, o, err)
}

func (a *Admin) getOrganisation(c *fiber.Ctx) error {
	o, err := a.cfg.Access.Organisation(c.Params("org"))
	return reply(c, 200, o, err)
}

func (a *Admin) signAgreement(c *fiber.Ctx) error {
	var in access.Agreement
	if err := decode(c, &in); err != nil {
		return err
	}
	o, err := a.cfg.Access.SignAgreement(c.UserContext(), actor(c), c.Params("org"), in)
	return reply(c, 200, o, err)
}

func (a *Admin) listApplications(c *fiber.Ctx) error {
	return reply(c, 200, fiber.Map{"applications": a.cfg.Access.Applications(c.Query("organisation"))}, nil)
}

func (a *Admin) addApplication(c *fiber.Ctx) error {
	var in struct {
		Organisation string `json:"organisation"`
		Name         string `json:"name"`
	}
	if err := decode(c, &in); err != nil {
		return err
	}
	app, err := a.cfg.Access.AddApplication(c.UserContext(), actor(c), in.Organisation, in.Name)
	return reply(c, 201, app, err)
}

func (a *Admin) getApplication(c *fiber.Ctx) error {
	app, err := a.cfg.Access.Application(c.Params("app"))
	return reply(c, 200, app, err)
}

func (a *Admin) setAllowlist(c *fiber.Ctx) error {
	var in struct {
		Allowlist []string `json:"allowlist"`
	}
	if err := decode(c, &in); err != nil {
		return err
	}
	prefixes, err := access.ParseAllowlist(strings.Join(in.Allowlist, ","))
	if err != nil {
		return problem.BadRequest(err.Error(), problem.NewIssue(problem.InvalidInput, "body", "allowlist", nil, err.Error()))
	}
	if prefixes == nil {
		prefixes = []netip.Prefix{}
	}
	app, err := a.cfg.Access.SetAllowlist(c.UserContext(), actor(c), c.Params("app"), prefixes)
	return reply(c, 200, app, err)
}

func (a *Admin) registerCertificate(c *fiber.Ctx) error {
	var in struct {
		Certificate string `json:"certificate"` // PEM, leaf first
	}
	if err := decode(c, &in); err != nil {
		return err
	}
	cred, err := a.cfg.Access.RegisterCertificate(c.UserContext(), actor(c), c.Params("app"), []byte(in.Certificate))
	return reply(c, 201, cred, err)
}

func (a *Admin) createOAuthClient(c *fiber.Ctx) error {
	cred, secret, err := a.cfg.Access.CreateOAuthClient(c.UserContext(), actor(c), c.Params("app"))
	return reply(c, 201, fiber.Map{"credential": cred, "clientId": cred.ID, "clientSecret": secret}, err)
}

func (a *Admin) listCredentials(c *fiber.Ctx) error {
	return reply(c, 200, fiber.Map{"credentials": a.cfg.Access.Credentials(c.Query("application"))}, nil)
}

func (a *Admin) listGrants(c *fiber.Ctx) error {
	return reply(c, 200, fiber.Map{"grants": a.cfg.Access.Grants(c.Query("application"))}, nil)
}

// grantRequest is a legal basis submission. Durations are Go durations
// ("1m", "24h") rather than the nanoseconds access.Quota marshals to.
type grantRequest struct {
	Application string             `json:"application"`
	Service     access.Service     `json:"service"`
	LegalBasis  access.LegalBasis  `json:"legalBasis"`
	Purposes    []string           `json:"purposes"`
	NotBefore   time.Time          `json:"notBefore,omitzero"`
	NotAfter    time.Time          `json:"notAfter,omitzero"`
	Environment access.Environment `json:"environment"`
	Quota       *quotaJSON         `json:"quota,omitempty"`
	Fields      []string           `json:"fields,omitempty"`
}

type quotaJSON struct {
	Requests int    `json:"requests"`
	Period   string `json:"period"`
}

func (q *quotaJSON) quota() (access.Quota, error) {
	if q == nil {
		return access.Quota{}, nil
	}
	d, err := time.ParseDuration(q.Period)
	if err != nil {
		return access.Quota{}, problem.BadRequest("quota.period is not a duration", problem.NewIssue(problem.InvalidInput, "body", "quota.period", q.Period, "a duration such as 1m or 24h"))
	}
	return access.Quota{Requests: q.Requests, Period: d}, nil
}

func (a *Admin) submitLegalBasis(c *fiber.Ctx) error {
	var in grantRequest
	if err := decode(c, &in); err != nil {
		return err
	}
	q, err := in.Quota.quota()
	if err != nil {
		return err
	}
	if services := *a.services.Load(); services != nil && !slices.Contains(services, in.Service) {
		names := make([]string, len(services))
		for i, s := range services {
			names[i] = fmt.Sprintf("%s/v%d", s.Name, s.Major)
		}
		slices.Sort(names)
		return problem.BadRequest(fmt.Sprintf("no service %s/v%d is served here; the services are %s", in.Service.Name, in.Service.Major, strings.Join(names, ", ")),
			problem.NewIssue(problem.InvalidInput, "body", "service", in.Service.String(), "a service this gateway serves"))
	}
	g, err := a.cfg.Access.SubmitLegalBasis(c.UserContext(), actor(c), in.Application, access.GrantTerms{
		Service: in.Service, LegalBasis: in.LegalBasis, Purposes: in.Purposes,
		NotBefore: in.NotBefore, NotAfter: in.NotAfter, Environment: in.Environment, Quota: q, Fields: in.Fields,
	})
	return reply(c, 201, g, err)
}

func (a *Admin) getGrant(c *fiber.Ctx) error {
	g, err := a.cfg.Access.Grant(c.Params("grant"))
	return reply(c, 200, g, err)
}

func (a *Admin) approve(c *fiber.Ctx) error {
	g, err := a.cfg.Access.Approve(c.UserContext(), actor(c), c.Params("grant"))
	return reply(c, 200, g, err)
}

type reasonJSON struct {
	Reason string `json:"reason"`
}

func (a *Admin) reject(c *fiber.Ctx) error {
	var in reasonJSON
	if err := decode(c, &in); err != nil {
		return err
	}
	g, err := a.cfg.Access.Reject(c.UserContext(), actor(c), c.Params("grant"), in.Reason)
	return reply(c, 200, g, err)
}

func (a *Admin) amend(c *fiber.Ctx) error {
	var in struct {
		Quota     *quotaJSON       `json:"quota,omitempty"`
		Fields    *json.RawMessage `json:"fields,omitempty"` // null releases the whole answer again
		NotBefore *time.Time       `json:"notBefore,omitempty"`
		NotAfter  *time.Time       `json:"notAfter,omitempty"`
	}
	if err := decode(c, &in); err != nil {
		return err
	}
	am := access.Amendment{NotBefore: in.NotBefore, NotAfter: in.NotAfter}
	if in.Quota != nil {
		q, err := in.Quota.quota()
		if err != nil {
			return err
		}
		am.Quota = &q
	}
	if in.Fields != nil {
		var f []string
		if err := json.Unmarshal(*in.Fields, &f); err != nil {
			return problem.BadRequest("fields is a list of paths or null")
		}
		am.Fields = &f
	}
	g, err := a.cfg.Access.AmendGrant(c.UserContext(), actor(c), c.Params("grant"), am)
	return reply(c, 200, g, err)
}

func (a *Admin) recordTest(c *fiber.Ctx) error {
	var in access.ConnectionTest
	if err := decode(c, &in); err != nil {
		return err
	}
	if in.At.IsZero() {
		in.At = time.Now()
	}
	g, err := a.cfg.Access.RecordConnectionTest(c.UserContext(), actor(c), c.Params("grant"), in)
	return reply(c, 200, g, err)
}

// hold suspends, resumes or revokes any record by id (organisation,
// application, credential or grant).
func (a *Admin) hold(c *fiber.Ctx) error {
	var in reasonJSON
	if err := decode(c, &in); err != nil {
		return err
	}
	var f func(context.Context, string, string, string) error
	switch c.Params("action") {
	case "suspend":
		f = a.cfg.Access.Suspend
	case "resume":
		f = a.cfg.Access.Resume
	case "revoke":
		f = a.cfg.Access.Revoke
	default:
		return problem.NotFound("the actions are suspend, resume and revoke")
	}
	id := c.Params("id")
	if err := f(c.UserContext(), actor(c), id, in.Reason); err != nil {
		return registryError(err)
	}
	return reply(c, 200, fiber.Map{"id": id, "action": c.Params("action")}, nil)
}

func (a *Admin) adminLog(c *fiber.Ctx) error {
	q := access.LogQuery{Subject: c.Query("subject")}
	if s := c.Query("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return problem.BadRequest("after is a sequence number")
		}
		q.After = n
	}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return problem.BadRequest("limit is a positive integer")
		}
		q.Limit = n
	}
	entries, err := a.cfg.Access.Log(c.UserContext(), q)
	return reply(c, 200, fiber.Map{"entries": entries}, err)
}

// Audit routes.

func (a *Admin) auditError(err error) error {
	g := Gateway{log: a.log}
	return g.auditError(err)
}

func (a *Admin) queryRecords(c *fiber.Ctx) error {
	q, prob := parseAuditQuery(c, true)
	if prob != nil {
		return prob
	}
	a.logRead(c, "records", q)
	page, err := a.cfg.Audit.Query(c.UserContext(), q)
	if err != nil {
		return a.auditError(err)
	}
	return reply(c, 200, page, nil)
}

// logRead logs a read of the audit trail: who, which kind of query and its
// filters. The data subject's identifier is never logged, only that one
// was given.
func (a *Admin) logRead(c *fiber.Ctx, kind string, q audit.Query) {
	attrs := []any{"actor", actor(c), "query", kind, "subject", q.Subject != ""}
	for _, f := range []struct{ k, v string }{{"traceId", q.TraceID}, {"organisation", q.Organisation}, {"service", q.Service}} {
		if f.v != "" {
			attrs = append(attrs, f.k, f.v)
		}
	}
	if len(q.Kinds) > 0 {
		attrs = append(attrs, "kinds", q.Kinds)
	}
	if !q.From.IsZero() {
		attrs = append(attrs, "from", q.From)
	}
	if !q.To.IsZero() {
		attrs = append(attrs, "to", q.To)
	}
	if q.Cursor != "" {
		attrs = append(attrs, "page", "next")
	}
	a.log.Info("audit trail read", attrs...)
}

// searchJSON is a records query in a body: the only way to pass a data
// subject (never in a URL).
type searchJSON struct {
	TraceID      string       `json:"traceId,omitempty"`
	Organisation string       `json:"organisation,omitempty"`
	Service      string       `json:"service,omitempty"`
	Subject      string       `json:"subject,omitempty"`
	Kinds        []audit.Kind `json:"kinds,omitempty"`
	From         time.Time    `json:"from,omitzero"`
	To           time.Time    `json:"to,omitzero"`
	Desc         bool         `json:"desc,omitempty"`
	Limit        int          `json:"limit,omitempty"`
	Cursor       string       `json:"cursor,omitempty"`
}

func (s searchJSON) query() audit.Query {
	return audit.Query{TraceID: s.TraceID, Organisation: s.Organisation, Service: s.Service, Subject: s.Subject,
		Kinds: s.Kinds, From: s.From, To: s.To, Desc: s.Desc, Limit: s.Limit, Cursor: s.Cursor}
}

func (a *Admin) searchRecords(c *fiber.Ctx) error {
	var in searchJSON
	if err := decode(c, &in); err != nil {
		return err
	}
	a.logRead(c, "records", in.query())
	page, err := a.cfg.Audit.Query(c.UserContext(), in.query())
	if err != nil {
		return a.auditError(err)
	}
	return reply(c, 200, page, nil)
}

// consultations is the citizen view: who consulted data about a subject,
// when, through which service and why.
func (a *Admin) consultations(c *fiber.Ctx) error {
	var in searchJSON
	if err := decode(c, &in); err != nil {
		return err
	}
	if in.Subject == "" {
		return problem.BadRequest("subject is required", problem.NewIssue(problem.RequiredInput, "body", "subject", nil, "the data subject's identifier"))
	}
	a.logRead(c, "consultations", in.query())
	page, err := a.cfg.Audit.Consultations(c.UserContext(), in.Subject, in.query())
	if err != nil {
		return a.auditError(err)
	}
	return reply(c, 200, page, nil)
}

func seqParam(c *fiber.Ctx) (uint64, error) {
	seq, err := strconv.ParseUint(c.Params("seq"), 10, 64)
	if err != nil || seq == 0 {
		return 0, problem.NotFound("no such record")
	}
	return seq, nil
}

func (a *Admin) getRecord(c *fiber.Ctx) error {
	seq, err := seqParam(c)
	if err != nil {
		return err
	}
	e, err := a.cfg.Audit.Get(c.UserContext(), seq)
	if err != nil {
		return a.auditError(err)
	}
	return reply(c, 200, e, nil)
}

func (a *Admin) proof(c *fiber.Ctx) error {
	seq, err := seqParam(c)
	if err != nil {
		return err
	}
	p, err := a.cfg.Audit.Proof(c.UserContext(), seq)
	if err != nil {
		return a.auditError(err)
	}
	return reply(c, 200, p, nil)
}

func (a *Admin) head(c *fiber.Ctx) error {
	out := fiber.Map{"head": a.cfg.Audit.Head()}
	if cp, ok := a.cfg.Audit.LastCheckpoint(); ok {
		out["checkpoint"] = cp
	}
	if pub := a.cfg.Audit.PublicKey(); pub != nil {
		out["publicKey"] = fmt.Sprintf("%x", []byte(pub))
	}
	return reply(c, 200, out, nil)
}

func (a *Admin) verify(c *fiber.Ctx) error {
	pub := a.cfg.Audit.PublicKey()
	if pub == nil {
		return problem.Unavailable("the store has no signing key to verify against")
	}
	// A body, if any, holds checkpoints a witness kept (audit.ReadWitnessed):
	// the chain must still hold each of them.
	var witnessed []audit.Checkpoint
	var err error
	if body := c.Body(); len(bytes.TrimSpace(body)) > 0 {
		witnessed, err = audit.ReadWitnessed(bytes.NewReader(body))
	}
	var rep audit.Report
	if err == nil {
		rep, err = audit.VerifyWitnessed(c.UserContext(), a.cfg.Audit, pub, witnessed)
	}
	if err == nil && c.QueryBool("index") {
		audit.AddIndex(c.UserContext(), a.cfg.Audit, &rep)
	}
	if errors.Is(err, audit.ErrWitness) {
		return problem.BadRequest(err.Error(), problem.NewIssue(problem.InvalidInput, "body", "", nil, err.Error()))
	}
	if err != nil {
		return a.auditError(err)
	}
	return reply(c, 200, rep, nil)
}

// prune applies every service's retention as of now (audit.Store.Prune:
// it runs beside the writer and refuses a damaged chain).
func (a *Admin) prune(c *fiber.Ctx) error {
	rep, err := a.cfg.Audit.Prune(c.UserContext(), time.Now())
	if err != nil {
		return a.auditError(err)
	}
	a.log.Info("audit trail pruned", "actor", actor(c), "deleted", rep.Deleted, "redacted", rep.Redacted)
	return reply(c, 200, rep, nil)
}

// backup streams a backup of the running store (audit.Store.Backup): what
// was durable when it started. It is streamed, not buffered, so a failure
// after the first byte ends the answer early; `fsb audit restore` refuses
// a truncated backup. Restoring needs a stopped store and an empty
// directory, so it is offline only (`fsb audit restore`).
func (a *Admin) backup(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "application/octet-stream")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="openfsb-audit.backup"`)
	c.Set(fiber.HeaderCacheControl, "no-store")
	ctx, store, log, who := context.WithoutCancel(c.UserContext()), a.cfg.Audit, a.log, actor(c)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		if err := store.Backup(ctx, w); err != nil {
			log.Error("audit backup failed; the answer was cut short", "actor", who, "err", err)
			return
		}
		if err := w.Flush(); err != nil {
			log.Warn("audit backup not fully sent", "actor", who, "err", err)
			return
		}
		log.Info("audit trail backed up", "actor", who)
	})
	return nil
}

// export streams the chain as JSON Lines with its proofs (audit.Export).
// The export is buffered: it is written before the first byte is sent, so
// a failure is a problem document, not a truncated file.
func (a *Admin) export(c *fiber.Ctx) error {
	var o audit.ExportOptions
	for _, k := range []string{"from", "to"} {
		if s := c.Query(k); s != "" {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return problem.BadRequest(k + " is a record sequence number")
			}
			if k == "from" {
				o.From = n
			} else {
				o.To = n
			}
		}
	}
	a.log.Info("audit trail read", "actor", actor(c), "query", "export", "from", o.From, "to", o.To)
	var buf bytes.Buffer
	if _, err := a.cfg.Audit.Export(c.UserContext(), &buf, o); err != nil {
		if errors.Is(err, audit.ErrEmptyExport) {
			return problem.NotFound(strings.TrimPrefix(err.Error(), "audit: "))
		}
		return a.auditError(err)
	}
	c.Set(fiber.HeaderContentType, "application/jsonl")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(buf.Bytes())
}
