package catalog

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/problem"
)

//go:embed web/*.html web/*.css
var webFS embed.FS

// pages holds one template set per page: the layout and the page's own
// "content" (each page file defines it).
var pages = func() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(template.FuncMap{
		"summary": StepSummary,
		"basis":   basisTitle,
	}).ParseFS(webFS, "web/layout.html"))
	out := map[string]*template.Template{}
	for _, name := range []string{"index.html", "service.html"} {
		out[name] = template.Must(template.Must(base.Clone()).ParseFS(webFS, "web/"+name))
	}
	return out
}()

var stylesheet, _ = webFS.ReadFile("web/catalog.css")

// basisTitle names a kind of legal basis for people.
func basisTitle(kind string) string {
	switch kind {
	case "law":
		return "a law (reference to the article)"
	case "protocolAgreement":
		return "a protocol agreement between the source and you"
	case "priorAuthorisation":
		return "an earlier authorisation (e.g. of a sectoral committee)"
	}
	return kind
}

// Paging bounds of the JSON API (Belgif page/pageSize).
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// Paths returns every path the handler serves, with {name} for a path
// segment parameter, so that a router in front of it (the gateway) can
// route exactly these to it and nothing else.
func (c *Catalog) Paths() []string {
	p := []string{
		c.prefix,
		c.prefix + "/static/{name}",
		c.ServicePagePath(),
		c.prefix + "/api/v1/services",
		c.prefix + "/api/v1/services/{code}/{version}",
	}
	for _, base := range c.APIs() {
		p = append(p, base+"/doc", base+"/doc/openapi.json", base+"/doc/openapi.yaml")
	}
	return p
}

// Handler serves the catalogue: the pages, the JSON API and each API's
// OpenAPI document at its Belgif reserved paths. Everything it serves is
// public: it must hold nothing secret.
func (c *Catalog) Handler() http.Handler { return c.handler(nil) }

// HandlerWithAccess is Handler for a gateway that enforces access: each
// service page also shows a visitor that access recognises their own
// access to the service ("Your access"), and everyone else how to obtain
// it ("How to obtain access"). Those pages are never stored by caches.
func (c *Catalog) HandlerWithAccess(access AccessFunc) http.Handler {
	if access == nil {
		access = func(*http.Request, string, int) *Visitor { return nil }
	}
	return c.handler(access)
}

// ServicePagePath is the pattern of a service page among Paths.
func (c *Catalog) ServicePagePath() string { return c.prefix + "/services/{code}/{version}" }

func (c *Catalog) handler(access AccessFunc) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+c.prefix, c.serveIndex)
	mux.HandleFunc("GET "+c.prefix+"/static/catalog.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(stylesheet)
	})
	mux.HandleFunc("GET "+c.ServicePagePath(), func(w http.ResponseWriter, r *http.Request) { c.servePage(w, r, access) })
	mux.HandleFunc("GET "+c.prefix+"/api/v1/services", c.serveList)
	mux.HandleFunc("GET "+c.prefix+"/api/v1/services/{code}/{version}", c.serveEntry)
	for _, base := range c.APIs() {
		a := c.apis[base]
		mux.HandleFunc("GET "+base+"/doc/openapi.json", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(a.JSON)
		})
		mux.HandleFunc("GET "+base+"/doc/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/yaml")
			_, _ = w.Write(a.YAML)
		})
		target := c.prefix + "?" + url.Values{"api": {base}}.Encode()
		if len(a.Entries) == 1 {
			target = a.Entries[0].Links.Page
		}
		mux.Handle("GET "+base+"/doc", http.RedirectHandler(target, http.StatusFound))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, problem.NotFound("no catalogue page at this path"))
	})
	return secureHeaders(mux)
}

// secureHeaders forbids everything the pages do not need: no script at
// all, styles and images from the catalogue only, no framing.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

type pageData struct {
	Title      string
	Prefix     string
	Query      Query
	Filtered   bool
	Entries    []*Entry
	Sources    []Source
	Categories []string
	Statuses   []string
	Entry      *entryView
	Diagram    template.HTML
	// FirstPurpose is shown in the example request.
	FirstPurpose string
	// AccessOn: the gateway enforces access, so the service page says
	// either what Visitor has or how to obtain access.
	AccessOn bool
	Visitor  *Visitor
	Steps    []string
}

// entryView is an entry with what its page shows beyond the JSON.
type entryView struct {
	*Entry
	Example *Example
	Outline []flow.Outline
}

func queryOf(v url.Values) Query {
	return Query{Text: strings.TrimSpace(v.Get("q")), Source: v.Get("source"), Category: v.Get("category"), Status: v.Get("status"), API: v.Get("api")}
}

func (c *Catalog) serveIndex(w http.ResponseWriter, r *http.Request) {
	q := queryOf(r.URL.Query())
	c.render(w, "index.html", &pageData{
		Title: "Services", Prefix: c.prefix, Query: q, Filtered: q != (Query{}),
		Entries: c.Find(q), Sources: c.sources, Categories: c.cats, Statuses: Statuses,
	})
}

func (c *Catalog) lookup(w http.ResponseWriter, r *http.Request) *Entry {
	e, ok := c.byKey[r.PathValue("code")+"/"+r.PathValue("version")]
	if !ok {
		writeProblem(w, problem.NotFound("no service with this code and version in the catalogue"))
		return nil
	}
	return e
}

func (c *Catalog) servePage(w http.ResponseWriter, r *http.Request, access AccessFunc) {
	e := c.lookup(w, r)
	if e == nil {
		return
	}
	d := &pageData{Title: e.Title, Prefix: c.prefix, Entry: &entryView{Entry: e, Example: e.example, Outline: e.outline},
		Diagram: template.HTML(e.diagram), FirstPurpose: "yourPurpose"} // #nosec G203 -- built by Diagram, every text escaped
	if len(e.Legal.Purposes) > 0 {
		d.FirstPurpose = e.Legal.Purposes[0].Code
	}
	if access != nil {
		// The page depends on who asks: no shared cache may keep it.
		w.Header().Set("Cache-Control", "private, no-store")
		d.AccessOn, d.Visitor, d.Steps = true, access(r, e.Name, e.Major), OnboardingSteps
	}
	c.render(w, "service.html", d)
}

func (c *Catalog) render(w http.ResponseWriter, name string, d *pageData) {
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", d); err != nil {
		writeProblem(w, problem.Internal("the page could not be rendered"))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// ServicePage is one page of the JSON catalogue (Belgif paging).
type ServicePage struct {
	Self       string    `json:"self"`
	Items      []apiItem `json:"items"`
	Page       int       `json:"page"`
	PageSize   int       `json:"pageSize"`
	Total      int       `json:"total"`
	TotalItems int       `json:"totalItems"` // Belgif's name for total
	First      string    `json:"first"`
	Last       string    `json:"last"`
	Prev       string    `json:"prev,omitempty"`
	Next       string    `json:"next,omitempty"`
}

type apiItem struct {
	Href string `json:"href"`
	*Entry
}

var listParams = map[string]bool{"page": true, "pageSize": true, "q": true, "source": true, "category": true, "status": true, "api": true}

func (c *Catalog) serveList(w http.ResponseWriter, r *http.Request) {
	vals := r.URL.Query()
	var issues []problem.Issue
	for _, k := range sortedKeys(vals) {
		switch {
		case !listParams[k]:
			issues = append(issues, problem.NewIssue(problem.UnknownInput, "query", k, nil, "unknown query parameter"))
		case len(vals[k]) > 1:
			issues = append(issues, problem.NewIssue(problem.InvalidInput, "query", k, nil, "given more than once"))
		}
	}
	intParam := func(name string, def, lo, hi int) int {
		s := vals.Get(name)
		if s == "" {
			return def
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			issues = append(issues, problem.NewIssue(problem.SchemaViolation, "query", name, s, "must be an integer from "+strconv.Itoa(lo)+" to "+strconv.Itoa(hi)))
			return def
		}
		return n
	}
	page := intParam("page", 1, 1, 1<<20)
	size := intParam("pageSize", DefaultPageSize, 1, MaxPageSize)
	if st := vals.Get("status"); st != "" && !slices.Contains(Statuses, st) {
		issues = append(issues, problem.NewIssue(problem.SchemaViolation, "query", "status", st, "must be draft, active or deprecated"))
	}
	if len(issues) > 0 {
		writeProblem(w, problem.BadRequest("the query is not valid", issues...))
		return
	}
	found := c.Find(queryOf(vals))
	base := origin(r)
	link := func(p int) string {
		v := url.Values{}
		for k := range vals {
			if k != "page" && k != "pageSize" {
				v.Set(k, vals.Get(k))
			}
		}
		v.Set("page", strconv.Itoa(p))
		v.Set("pageSize", strconv.Itoa(size))
		return base + c.prefix + "/api/v1/services?" + v.Encode()
	}
	last := max(1, (len(found)+size-1)/size)
	out := ServicePage{Self: link(page), Page: page, PageSize: size, Total: len(found), TotalItems: len(found),
		First: link(1), Last: link(last), Items: []apiItem{}}
	if page > 1 {
		out.Prev = link(min(page-1, last))
	}
	if page < last {
		out.Next = link(page + 1)
	}
	for i := (page - 1) * size; i < len(found) && i < page*size; i++ {
		out.Items = append(out.Items, apiItem{Href: base + found[i].Links.Self, Entry: found[i]})
	}
	writeJSON(w, out)
}

func (c *Catalog) serveEntry(w http.ResponseWriter, r *http.Request) {
	e := c.lookup(w, r)
	if e == nil {
		return
	}
	writeJSON(w, struct {
		apiItem
		Example *Example `json:"example,omitempty"`
	}{apiItem{Href: origin(r) + e.Links.Self, Entry: e}, e.example})
}

// origin is the scheme and host the request came to, for absolute links.
func origin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, problem.Internal("the answer could not be encoded"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func writeProblem(w http.ResponseWriter, p *problem.Problem) {
	w.Header().Set("Content-Type", problem.ContentType)
	w.WriteHeader(p.Status)
	_, _ = w.Write(p.JSON())
}
