package spec

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

var englishPrinter = message.NewPrinter(language.English)

// Catalog is what the service catalogue shows about a flow
// (engine/catalog). A flow whose status is active or deprecated is
// published: its catalogue and legal metadata must then be complete, and
// `fsb validate` refuses it otherwise (checkCatalog).
type Catalog struct {
	At          map[string]Pos // position of each key's value
	Pos         Pos
	Code        string     `yaml:"code"` // stable service code, unique per major version
	Title       string     `yaml:"title,required"`
	Description string     `yaml:"description"`
	Owner       string     `yaml:"owner"`
	Tags        []string   `yaml:"tags"`
	Status      string     `yaml:"status"`     // draft (default) | active | deprecated
	Sunset      string     `yaml:"sunset"`     // YYYY-MM-DD: when a deprecated service stops
	ReplacedBy  string     `yaml:"replacedBy"` // the code of the service that replaces a deprecated one
	Protocols   []string   `yaml:"protocols"`  // rest
	Contacts    []*Contact `yaml:"contacts"`
}

// Contact is whom consumers ask about a service.
type Contact struct {
	At    map[string]Pos
	Pos   Pos
	Name  string `yaml:"name,required"`
	Role  string `yaml:"role"` // e.g. support, business, privacy
	Email string `yaml:"email"`
	URL   string `yaml:"url"`
}

// Legal is the privacy metadata of a flow: what it returns, how sensitive
// that is, and what a consumer needs to be granted it.
type Legal struct {
	At             map[string]Pos // position of each key's value
	Pos            Pos
	DataCategories []string   `yaml:"dataCategories"`
	Sensitivity    string     `yaml:"sensitivity"` // public | internal | confidential | highlyConfidential
	LegalBases     []string   `yaml:"legalBases"`  // accepted kinds: law | protocolAgreement | priorAuthorisation
	Purposes       []*Purpose `yaml:"purposes"`
	Subject        *Expr      `yaml:"subject"`
}

// Purpose is one purpose a consumer may state (OpenFSB-Purpose) when it
// calls the service.
type Purpose struct {
	At          map[string]Pos
	Pos         Pos
	Code        string `yaml:"code,required"`
	Description string `yaml:"description"`
}

// Lifecycle statuses of a service.
const (
	StatusDraft      = "draft"
	StatusActive     = "active"
	StatusDeprecated = "deprecated"
)

// Sensitivities are the sensitivity classes, least sensitive first. Belgif
// asks mTLS (at least IP filtering) for the two highest.
var Sensitivities = []string{"public", "internal", "confidential", "highlyConfidential"}

// LegalBasisKinds are the kinds of legal basis a grant may rest on; they
// are the kinds engine/access records on a grant.
var LegalBasisKinds = []string{"law", "protocolAgreement", "priorAuthorisation"}

// Protocols are the protocols the gateway offers a service over.
var Protocols = []string{"rest"}

var (
	serviceCodeRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]{0,63}$`)
	purposeCodeRe = regexp.MustCompile(`^[A-Za-z0-9._:/-]{1,100}$`) // what access accepts in OpenFSB-Purpose
	categoryRe    = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	emailRe       = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
)

// LifecycleStatus returns the flow's status, draft when it names none.
func (fl *Flow) LifecycleStatus() string {
	if fl.Catalog == nil || fl.Catalog.Status == "" {
		return StatusDraft
	}
	return fl.Catalog.Status
}

// Published reports whether the flow is offered to consumers in the
// catalogue (active or deprecated), so its metadata must be complete.
func (fl *Flow) Published() bool {
	s := fl.LifecycleStatus()
	return s == StatusActive || s == StatusDeprecated
}

// ServiceCode returns the flow's catalogue code, or its name when it has
// none (a draft).
func (fl *Flow) ServiceCode() string {
	if fl.Catalog != nil && fl.Catalog.Code != "" {
		return fl.Catalog.Code
	}
	return fl.Name
}

// SunsetDate parses catalog.sunset; ok is false when there is none.
func (c *Catalog) SunsetDate() (t time.Time, ok bool) {
	if c == nil || c.Sunset == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.DateOnly, c.Sunset)
	return t, err == nil
}

// catalogue checks a flow's catalogue and legal metadata: values always,
// completeness when the flow is published.
func (c *checker) catalogue(fl *Flow) {
	cat, lg := fl.Catalog, fl.Legal
	if cat != nil {
		c.catalogValues(cat)
	}
	if lg != nil {
		c.legalValues(lg)
	}
	if fl.OutputSchema != nil {
		c.outputSchema(fl)
	}
	if parts := strings.Split(fl.Path, "/"); len(parts) > 3 && parts[3] == "doc" {
		c.errorf(where(fl.At, "path", fl.Pos), "path %q: /{api}/v{major}/doc is reserved for the API's documentation (Belgif); the catalogue serves it", fl.Path)
	}
	if !fl.Published() {
		return
	}
	// Published: every key consumers rely on must be there. Each missing
	// key is one error, at the block that should hold it.
	status := fl.LifecycleStatus()
	missing := func(at Pos, key, hint string) {
		c.errorf(at, "flow %q is published (status %s) but has no %s: %s", fl.Name, status, key, hint)
	}
	if cat.Code == "" {
		missing(cat.Pos, "catalog.code", "give a stable service code, e.g. code: ENT-PROFILE")
	}
	if strings.TrimSpace(cat.Description) == "" {
		missing(cat.Pos, "catalog.description", "say what the service returns, for consumers")
	}
	if strings.TrimSpace(cat.Owner) == "" {
		missing(cat.Pos, "catalog.owner", "name the team or organisation responsible for it")
	}
	if len(cat.Protocols) == 0 {
		missing(cat.Pos, "catalog.protocols", "list what it is offered over: protocols: [rest]")
	}
	if len(cat.Contacts) == 0 {
		missing(cat.Pos, "catalog.contacts", "give at least one contact: contacts: [{name: Service desk, email: desk@example.org}]")
	}
	if status == StatusDeprecated && cat.Sunset == "" {
		missing(where(cat.At, "status", cat.Pos), "catalog.sunset", "a deprecated service names the date it stops: sunset: 2027-06-30")
	}
	if lg == nil {
		missing(cat.Pos, "legal block", "give legal: {dataCategories, sensitivity, legalBases, purposes}")
		return
	}
	if len(lg.DataCategories) == 0 {
		missing(lg.Pos, "legal.dataCategories", "list the categories of data it returns, e.g. [personIdentity]")
	}
	if lg.Sensitivity == "" {
		missing(lg.Pos, "legal.sensitivity", "give its sensitivity class: "+strings.Join(Sensitivities, ", "))
	}
	if len(lg.LegalBases) == 0 {
		missing(lg.Pos, "legal.legalBases", "list the kinds of legal basis accepted: "+strings.Join(LegalBasisKinds, ", "))
	}
	if len(lg.Purposes) == 0 {
		missing(lg.Pos, "legal.purposes", "list the purposes a consumer may state: purposes: [{code: kyc, description: …}]")
	}
}

// catalogValues checks the values present in a catalog block.
func (c *checker) catalogValues(cat *Catalog) {
	if cat.Code != "" && !serviceCodeRe.MatchString(cat.Code) {
		c.errorf(where(cat.At, "code", cat.Pos), "service code %q must start with a letter and hold up to 64 letters, digits, '.', '_' or '-'", cat.Code)
	}
	switch cat.Status {
	case "", StatusDraft, StatusActive, StatusDeprecated:
	default:
		c.errorf(where(cat.At, "status", cat.Pos), "status %q is unknown; use draft, active or deprecated", cat.Status)
	}
	if cat.Sunset != "" {
		if _, ok := cat.SunsetDate(); !ok {
			c.errorf(where(cat.At, "sunset", cat.Pos), "sunset %q must be a date written YYYY-MM-DD", cat.Sunset)
		} else if cat.Status != StatusDeprecated {
			c.errorf(where(cat.At, "sunset", cat.Pos), "sunset belongs to a deprecated service: set status: deprecated, or remove it")
		}
	}
	if cat.ReplacedBy != "" {
		if cat.Status != StatusDeprecated {
			c.errorf(where(cat.At, "replacedBy", cat.Pos), "replacedBy belongs to a deprecated service")
		}
		if !serviceCodeRe.MatchString(cat.ReplacedBy) {
			c.errorf(where(cat.At, "replacedBy", cat.Pos), "replacedBy %q is not a service code", cat.ReplacedBy)
		}
	}
	c.oneOf(where(cat.At, "protocols", cat.Pos), "protocol", cat.Protocols, Protocols)
	for _, ct := range cat.Contacts {
		if ct.Email == "" && ct.URL == "" {
			c.errorf(ct.Pos, "contact %q needs an email or a url to reach it", ct.Name)
		}
		if ct.Email != "" && !emailRe.MatchString(ct.Email) {
			c.errorf(where(ct.At, "email", ct.Pos), "%q is not an e-mail address", ct.Email)
		}
		if ct.URL != "" && !strings.HasPrefix(ct.URL, "https://") && !strings.HasPrefix(ct.URL, "http://") {
			c.errorf(where(ct.At, "url", ct.Pos), "contact url %q must be an http(s) URL", ct.URL)
		}
	}
}

// legalValues checks the values present in a legal block.
func (c *checker) legalValues(lg *Legal) {
	for _, dc := range lg.DataCategories {
		if !categoryRe.MatchString(dc) {
			c.errorf(where(lg.At, "dataCategories", lg.Pos), "data category %q must be a lowerCamelCase name, e.g. personIdentity", dc)
		}
	}
	if lg.Sensitivity != "" {
		c.oneOf(where(lg.At, "sensitivity", lg.Pos), "sensitivity", []string{lg.Sensitivity}, Sensitivities)
	}
	c.oneOf(where(lg.At, "legalBases", lg.Pos), "legal basis kind", lg.LegalBases, LegalBasisKinds)
	seen := map[string]bool{}
	for _, p := range lg.Purposes {
		switch {
		case p.Code == "":
		case !purposeCodeRe.MatchString(p.Code):
			c.errorf(where(p.At, "code", p.Pos), "purpose code %q may only hold letters, digits and . _ : / - (it travels in the OpenFSB-Purpose header)", p.Code)
		case seen[p.Code]:
			c.errorf(where(p.At, "code", p.Pos), "duplicate purpose %q", p.Code)
		}
		seen[p.Code] = true
	}
}

// oneOf reports each value that is not a known one, and duplicates.
func (c *checker) oneOf(at Pos, what string, values, known []string) {
	seen := map[string]bool{}
	for _, v := range values {
		ok := false
		for _, k := range known {
			ok = ok || v == k
		}
		switch {
		case !ok:
			if best := Closest(v, known); best != "" {
				c.errorf(at, "%s %q is unknown; did you mean %q?", what, v, best)
			} else {
				c.errorf(at, "%s %q is unknown; use one of %s", what, v, strings.Join(known, ", "))
			}
		case seen[v]:
			c.errorf(at, "%s %q is listed twice", what, v)
		}
		seen[v] = true
	}
}

// outputSchema compiles a flow's output schema and checks the success
// bodies its tests expect against it, so the published schema cannot drift
// from what the flow answers.
func (c *checker) outputSchema(fl *Flow) {
	v := fl.OutputSchema
	doc, ok := v.V.(map[string]any)
	if !ok {
		c.errorf(v.Pos, "outputSchema must be a JSON Schema (a mapping)")
		return
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	url := "mem://flow/" + fl.Name + "/output.json"
	if err := comp.AddResource(url, doc); err != nil {
		c.errorf(v.Pos, "outputSchema: %v", err)
		return
	}
	sch, err := comp.Compile(url)
	if err != nil {
		c.errorf(v.Pos, "outputSchema is not a valid JSON Schema: %s", firstLine(err.Error()))
		return
	}
	for _, t := range c.set.Tests {
		e := t.Expect
		if t.Flow != fl.Name || e.Body == nil || e.Status < 200 || e.Status > 299 {
			continue
		}
		if err := sch.Validate(e.Body.V); err != nil {
			pos, msg := e.Body.Pos, firstLine(err.Error())
			if ve, ok := err.(*jsonschema.ValidationError); ok {
				leaf := ve
				for len(leaf.Causes) > 0 {
					leaf = leaf.Causes[0]
				}
				ptr := ""
				for _, p := range leaf.InstanceLocation {
					ptr += "/" + escapePointer(p)
				}
				pos = e.Body.At(ptr)
				msg = strconv.Quote("#"+ptr) + ": " + leaf.ErrorKind.LocalizedString(englishPrinter)
			}
			c.errorf(pos, "test %q expects a body that does not match the outputSchema of flow %q: %s", t.Name, fl.Name, msg)
		}
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// catalogueCodes refuses two flows with the same service code and major
// version: the code names the service in the catalogue.
func (c *checker) catalogueCodes() {
	seen := map[string]*Flow{}
	for _, name := range c.set.FlowNames() {
		fl := c.set.Flows[name]
		if fl.Catalog == nil || fl.Catalog.Code == "" {
			continue
		}
		key := fmt.Sprintf("%s v%d", fl.Catalog.Code, Major(fl.Version))
		if prev, dup := seen[key]; dup {
			c.errorf(where(fl.Catalog.At, "code", fl.Catalog.Pos), "flow %q has the service code %s of flow %q (%s): a code names one service per major version", fl.Name, key, prev.Name, prev.Pos)
			continue
		}
		seen[key] = fl
	}
}
