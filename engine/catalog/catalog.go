// Package catalog is the service catalogue: what each published flow
// offers, who owns it, which authentic sources it calls, what a consumer
// needs to be granted it, and its OpenAPI document, built from the flow
// documents and the compiled plans so that it cannot drift from what the
// gateway serves. It renders the catalogue for people (server-side HTML
// pages with an SVG diagram of each flow) and for tools (a JSON API with
// Belgif paging, OpenAPI 3.1 at the Belgif reserved paths), as a plain
// net/http handler.
//
// It must not know how flows run or how the gateway serves them, and it
// must never publish anything secret: no source addresses, credentials,
// plugin configuration or mock data other than the flows' test examples.
package catalog

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/spec"
)

// Entry is one service of the catalogue: one flow, one major version.
type Entry struct {
	Code        string    `json:"code"`
	Name        string    `json:"name"` // the flow's name
	Title       string    `json:"title"`
	Description string    `json:"description,omitempty"`
	Owner       string    `json:"owner,omitempty"`
	Tags        []string  `json:"tags,omitempty"`
	Version     string    `json:"version"`
	Major       int       `json:"major"`
	Status      string    `json:"status"`
	Sunset      string    `json:"sunset,omitempty"`
	ReplacedBy  string    `json:"replacedBy,omitempty"`
	Method      string    `json:"method"`
	Path        string    `json:"path"`
	API         string    `json:"api"` // the API's base path, /{apiName}/v{major}
	Protocols   []string  `json:"protocols,omitempty"`
	Contacts    []Contact `json:"contacts,omitempty"`
	Sources     []Source  `json:"sources"`
	Legal       Legal     `json:"legal"`
	Links       Links     `json:"links"`

	plan    *flow.Plan
	example *Example
	bodies  []any  // the success bodies the flow's tests expect
	diagram string // SVG
	outline []flow.Outline
}

// Contact is whom to ask about a service.
type Contact struct {
	Name  string `json:"name"`
	Role  string `json:"role,omitempty"`
	Email string `json:"email,omitempty"`
	URL   string `json:"url,omitempty"`
}

// Source is an authentic source a service calls: what a consumer may know
// of it (never its address or credentials).
type Source struct {
	Name  string `json:"name"`
	Title string `json:"title,omitempty"`
	Owner string `json:"owner,omitempty"`
}

// Legal is what a consumer needs to be granted the service.
type Legal struct {
	DataCategories []string  `json:"dataCategories,omitempty"`
	Sensitivity    string    `json:"sensitivity,omitempty"`
	LegalBases     []string  `json:"legalBases,omitempty"`
	Purposes       []Purpose `json:"purposes,omitempty"`
	// PersonalData is true when the flow names a data subject
	// (legal.subject): calls are then recorded against that subject.
	PersonalData bool `json:"personalData"`
}

// Purpose is one purpose a consumer may state when it calls.
type Purpose struct {
	Code        string `json:"code"`
	Description string `json:"description,omitempty"`
}

// Links are where to find an entry, relative to the server.
type Links struct {
	Self        string `json:"self"`    // the JSON entry
	Page        string `json:"page"`    // the HTML page
	OpenAPI     string `json:"openapi"` // the API's OpenAPI document (JSON)
	OpenAPIYAML string `json:"openapiYaml"`
}

// Key identifies an entry in URLs: code and major version.
func (e *Entry) Key() string { return fmt.Sprintf("%s/v%d", e.Code, e.Major) }

// Catalog is every service of one configuration, built once; it is
// immutable and safe for concurrent use.
type Catalog struct {
	entries []*Entry
	byKey   map[string]*Entry
	apis    map[string]*API
	sources []Source // every source some entry calls, by name
	cats    []string // every data category, sorted
	prefix  string
}

// API is one Belgif API, /{apiName}/v{major}: the services under that base
// path and their OpenAPI document.
type API struct {
	Base     string
	Entries  []*Entry
	JSON     []byte
	YAML     []byte
	document obj
}

// Prefix is where the catalogue's pages and JSON API are served.
const Prefix = "/catalog"

// New builds the catalogue of a loaded and compiled configuration. Every
// plan becomes an entry; set supplies what plans do not carry: the sources'
// titles and owners and the flows' tests (for examples).
func New(set *spec.Set, plans map[string]*flow.Plan) *Catalog {
	c := &Catalog{byKey: map[string]*Entry{}, apis: map[string]*API{}, prefix: Prefix}
	srcSeen := map[string]bool{}
	catSeen := map[string]bool{}
	for _, p := range plans {
		e := newEntry(set, p)
		c.entries = append(c.entries, e)
		for _, s := range e.Sources {
			if !srcSeen[s.Name] {
				srcSeen[s.Name] = true
				c.sources = append(c.sources, s)
			}
		}
		for _, dc := range e.Legal.DataCategories {
			if !catSeen[dc] {
				catSeen[dc] = true
				c.cats = append(c.cats, dc)
			}
		}
	}
	slices.SortFunc(c.entries, func(a, b *Entry) int {
		return cmp.Or(cmp.Compare(a.Code, b.Code), cmp.Compare(a.Major, b.Major), cmp.Compare(a.Name, b.Name))
	})
	slices.SortFunc(c.sources, func(a, b Source) int { return cmp.Compare(a.Name, b.Name) })
	slices.Sort(c.cats)
	for _, e := range c.entries {
		if _, dup := c.byKey[e.Key()]; !dup { // spec refuses duplicates; a draft keyed by name may still clash
			c.byKey[e.Key()] = e
		}
		e.Links = Links{
			Self:        c.prefix + "/api/v1/services/" + e.Key(),
			Page:        c.prefix + "/services/" + e.Key(),
			OpenAPI:     e.API + "/doc/openapi.json",
			OpenAPIYAML: e.API + "/doc/openapi.yaml",
		}
		a := c.apis[e.API]
		if a == nil {
			a = &API{Base: e.API}
			c.apis[e.API] = a
		}
		a.Entries = append(a.Entries, e)
	}
	for _, a := range c.apis {
		a.document = openAPI(a)
		a.JSON, a.YAML = encodeDocument(a.document)
	}
	return c
}

func newEntry(set *spec.Set, p *flow.Plan) *Entry {
	fl := p.Spec
	e := &Entry{
		Code: fl.ServiceCode(), Name: p.Name, Title: p.Name, Version: p.Version, Major: p.Major,
		Status: fl.LifecycleStatus(), Method: p.Method, Path: p.Path, API: apiBase(p.Path),
		plan: p, outline: p.Outline(),
	}
	if cat := fl.Catalog; cat != nil {
		e.Title, e.Description, e.Owner = cat.Title, cat.Description, cat.Owner
		e.Tags, e.Sunset, e.ReplacedBy = cat.Tags, cat.Sunset, cat.ReplacedBy
		e.Protocols = cat.Protocols
		for _, ct := range cat.Contacts {
			e.Contacts = append(e.Contacts, Contact{Name: ct.Name, Role: ct.Role, Email: ct.Email, URL: ct.URL})
		}
	}
	if len(e.Protocols) == 0 {
		e.Protocols = []string{"rest"}
	}
	if lg := fl.Legal; lg != nil {
		e.Legal = Legal{DataCategories: lg.DataCategories, Sensitivity: lg.Sensitivity, LegalBases: lg.LegalBases, PersonalData: lg.Subject != nil}
		for _, pu := range lg.Purposes {
			e.Legal.Purposes = append(e.Legal.Purposes, Purpose{Code: pu.Code, Description: pu.Description})
		}
	}
	e.Sources = make([]Source, 0, len(p.Sources))
	for _, name := range p.Sources {
		s := Source{Name: name}
		if set != nil {
			if src := set.Sources[name]; src != nil {
				s.Title, s.Owner = src.Title, src.Owner
			}
		}
		e.Sources = append(e.Sources, s)
	}
	if set != nil {
		e.example = example(set, fl)
		e.bodies = successBodies(set, fl)
	}
	e.diagram = Diagram(e.outline, p.Method, p.Path, p.Status)
	return e
}

// apiBase returns /{apiName}/v{major} of a flow path.
func apiBase(path string) string {
	parts := strings.SplitN(path, "/", 4) // "", api, vN, rest
	if len(parts) < 3 {
		return path
	}
	return "/" + parts[1] + "/" + parts[2]
}

// Entries returns every entry, ordered by code and major version.
func (c *Catalog) Entries() []*Entry { return slices.Clone(c.entries) }

// Entry returns the entry of a code and major version ("CODE/v1").
func (c *Catalog) Entry(key string) (*Entry, bool) {
	e, ok := c.byKey[key]
	return e, ok
}

// API returns the API at a base path (/persons/v1).
func (c *Catalog) API(base string) (*API, bool) {
	a, ok := c.apis[base]
	return a, ok
}

// APIs returns every API's base path, sorted.
func (c *Catalog) APIs() []string {
	out := make([]string, 0, len(c.apis))
	for b := range c.apis {
		out = append(out, b)
	}
	slices.Sort(out)
	return out
}

// Query selects entries: every word of Text must occur in the entry's
// code, name, title, description, tags, path, sources or data categories
// (ignoring case); Source, Category and Status, when set, must match
// exactly.
type Query struct {
	Text     string
	Source   string
	Category string
	Status   string
	API      string
}

// Find returns the entries matching q, in catalogue order.
func (c *Catalog) Find(q Query) []*Entry {
	words := strings.Fields(strings.ToLower(q.Text))
	var out []*Entry
	for _, e := range c.entries {
		if q.Status != "" && e.Status != q.Status || q.API != "" && e.API != q.API {
			continue
		}
		if q.Source != "" && !slices.ContainsFunc(e.Sources, func(s Source) bool { return s.Name == q.Source }) {
			continue
		}
		if q.Category != "" && !slices.Contains(e.Legal.DataCategories, q.Category) {
			continue
		}
		if len(words) > 0 {
			text := e.searchText()
			if !allIn(words, text) {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

func allIn(words []string, text string) bool {
	for _, w := range words {
		if !strings.Contains(text, w) {
			return false
		}
	}
	return true
}

func (e *Entry) searchText() string {
	parts := []string{e.Code, e.Name, e.Title, e.Description, e.Owner, e.Path, e.Status}
	parts = append(parts, e.Tags...)
	parts = append(parts, e.Legal.DataCategories...)
	for _, s := range e.Sources {
		parts = append(parts, s.Name, s.Title, s.Owner)
	}
	for _, p := range e.Legal.Purposes {
		parts = append(parts, p.Code, p.Description)
	}
	return strings.ToLower(strings.Join(parts, "\n"))
}

// Sources returns every source some service calls, by name.
func (c *Catalog) Sources() []Source { return slices.Clone(c.sources) }

// DataCategories returns every data category some service returns.
func (c *Catalog) DataCategories() []string { return slices.Clone(c.cats) }

// Statuses are the lifecycle statuses, in lifecycle order.
var Statuses = []string{spec.StatusDraft, spec.StatusActive, spec.StatusDeprecated}
