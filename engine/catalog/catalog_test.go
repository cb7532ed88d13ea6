package catalog_test

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/catalog"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const demoFlows = "../../flows"

// TestDiagramGolden draws the demo's enterpriseProfile flow (a condition,
// a parallel step, an optional step, a foreach) and compares it with
// testdata/enterpriseProfile.svg; go test -update rewrites it.
func TestDiagramGolden(t *testing.T) {
	for _, name := range []string{"enterpriseProfile", "enterprise"} {
		t.Run(name, func(t *testing.T) {
			set, err := spec.LoadDir(demoFlows)
			if err != nil {
				t.Fatal(err)
			}
			plans, err := flow.Compile(set)
			if err != nil {
				t.Fatal(err)
			}
			p := plans[name]
			got := catalog.Diagram(p.Outline(), p.Method, p.Path, p.Status)
			golden := filepath.Join("testdata", name+".svg")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("the diagram of %s differs from %s (go test -update rewrites it after a deliberate change):\n%s", name, golden, got)
			}
		})
	}
}

// TestDiagramShapes checks what each kind of step looks like, from a flow
// that has them all.
func TestDiagramShapes(t *testing.T) {
	steps := []flow.Outline{
		{ID: "a", Kind: "call", Source: "reg", Operation: "get", When: "input.body.x > 1 && <b>"},
		{ID: "sw", Kind: "switch", Cases: []flow.OutlineCase{{When: "steps.a.status == 404", Steps: []flow.Outline{{ID: "nf", Kind: "fail", Problem: "resourceNotFound", ProblemStatus: 404}}}},
			Default: []flow.Outline{{ID: "s", Kind: "set"}}},
		{ID: "g", Kind: "steps", Children: []flow.Outline{{ID: "t", Kind: "transform", Plugin: "mask", PluginOp: "transform"}}},
	}
	svg := catalog.Diagram(steps, "POST", "/x/v1/get", 201)
	for _, want := range []string{
		`role="img"`, `<title id="fd-title">Flow diagram: POST /x/v1/get</title>`,
		"if input.body.x &gt; 1 &amp;&amp; &lt;b&gt;", "switch sw", "when steps.a.status == 404", "otherwise",
		"problem resourceNotFound (404)", "set s", "steps g", "plugin mask.transform (sandboxed)", "answer 201",
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("diagram lacks %q:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, "<b>") {
		t.Error("a condition reached the SVG unescaped")
	}
}

// TestNewFlowAppears adds a flow file to a copy of the demo directory and
// finds it in every view of the catalogue, with no code involved.
func TestNewFlowAppears(t *testing.T) {
	dir := copyFlows(t)
	writeFile(t, filepath.Join(dir, "vat-status.yaml"), `kind: Flow
name: vatStatus
version: 2.3.0
method: GET
path: /vatStatus/v2/enterprises/{enterpriseNumber}
catalog:
  code: VAT-STATUS
  title: VAT status
  description: Whether an enterprise is VAT-liable.
  owner: Team VAT
  status: deprecated
  sunset: 2027-06-30
  protocols: [rest]
  contacts: [{name: Desk, email: desk@example.org}]
legal:
  dataCategories: [taxStatus]
  sensitivity: internal
  legalBases: [law]
  purposes: [{code: supplierCheck, description: Checking a supplier}]
input:
  path:
    properties:
      enterpriseNumber: {type: string}
steps:
  - id: vat
    call: vatRegister.getVat
    with: {path: {enterpriseNumber: input.path.enterpriseNumber}}
output:
  active: steps.vat.body.vatActive
`)
	c := load(t, dir)
	e, ok := c.Entry("VAT-STATUS/v2")
	if !ok {
		t.Fatalf("the new flow is not in the catalogue: %v", keys(c.Entries()))
	}
	if e.Status != "deprecated" || e.Sunset != "2027-06-30" || e.Sources[0].Name != "vatRegister" || e.Sources[0].Title == "" {
		t.Errorf("entry: %+v", e)
	}
	if !strings.Contains(string(mustAPI(t, c, "/vatStatus/v2").JSON), `"deprecated": true`) {
		t.Error("a deprecated service's operation is not marked deprecated")
	}
	h := c.Handler()
	for path, want := range map[string]string{
		"/catalog?category=taxStatus":                  "VAT status",
		"/catalog?status=deprecated":                   "VAT status",
		"/catalog/services/VAT-STATUS/v2":              "This service stops on 2027-06-30",
		"/catalog/api/v1/services?q=vat+liable":        `"code":"VAT-STATUS"`,
		"/vatStatus/v2/doc/openapi.yaml":               `openapi: "3.1.0"`,
		"/catalog/api/v1/services/VAT-STATUS/v2":       `"sunset":"2027-06-30"`,
		"/catalog?source=vatRegister&q=enterprise+vat": "Enterprise profile",
	} {
		code, body := get(t, h, path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, want %q in:\n%.2000s", path, code, want, body)
		}
	}
}

// TestSearchAndFilters: text search over every field a person would try,
// and the three filters.
func TestSearchAndFilters(t *testing.T) {
	c := load(t, demoFlows)
	tests := []struct {
		q    catalog.Query
		want []string
	}{
		{catalog.Query{}, []string{"ENT-ENTERPRISE/v1", "ENT-PROFILE/v1", "PERSON/v1", "PERSON-RESEARCH/v1"}},
		{catalog.Query{Text: "pseudonym"}, []string{"PERSON-RESEARCH/v1"}},
		{catalog.Query{Text: "NATIONAL register"}, []string{"ENT-PROFILE/v1", "PERSON/v1", "PERSON-RESEARCH/v1"}},
		{catalog.Query{Source: "vatRegister"}, []string{"ENT-PROFILE/v1"}},
		{catalog.Query{Category: "address"}, []string{"PERSON/v1"}},
		{catalog.Query{Status: "draft"}, nil},
		{catalog.Query{Status: "active", Category: "enterpriseIdentity", Text: "directors"}, []string{"ENT-PROFILE/v1"}},
		{catalog.Query{Text: "statisticalResearch"}, []string{"PERSON-RESEARCH/v1"}},
	}
	for _, tt := range tests {
		got := keys(c.Find(tt.q))
		// other engineers' demo flows may join; the demo's four must match exactly
		got = slices.DeleteFunc(got, func(k string) bool {
			return !slices.Contains([]string{"ENT-ENTERPRISE/v1", "ENT-PROFILE/v1", "PERSON/v1", "PERSON-RESEARCH/v1"}, k)
		})
		if !slices.Equal(got, tt.want) {
			t.Errorf("%+v: got %v, want %v", tt.q, got, tt.want)
		}
	}
}

// TestPaging walks the JSON catalogue one item per page by its links.
func TestPaging(t *testing.T) {
	c := load(t, demoFlows)
	h := c.Handler()
	total := len(c.Entries())
	next := "/catalog/api/v1/services?pageSize=1"
	var seen []string
	for i := 0; next != ""; i++ {
		code, body := get(t, h, next)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", next, code, body)
		}
		var p struct {
			Self, First, Last, Prev, Next string
			Page, PageSize, Total         int
			TotalItems                    int
			Items                         []struct{ Href, Code string }
		}
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		if p.Page != i+1 || p.PageSize != 1 || p.Total != total || p.TotalItems != total || len(p.Items) != 1 {
			t.Fatalf("page %d: %s", i+1, body)
		}
		if (i == 0) != (p.Prev == "") || !strings.HasPrefix(p.Self, "http://example.com/catalog/api/v1/services?") || !strings.HasPrefix(p.Items[0].Href, "http://example.com/catalog/api/v1/services/") {
			t.Errorf("links of page %d: %s", i+1, body)
		}
		seen = append(seen, p.Items[0].Code)
		next = strings.TrimPrefix(p.Next, "http://example.com")
	}
	if len(seen) != total {
		t.Errorf("walked %d pages, want %d", len(seen), total)
	}
	for _, bad := range []string{"?page=0", "?pageSize=101", "?pageSize=x", "?status=retired", "?sort=title", "?page=1&page=2"} {
		code, body := get(t, h, "/catalog/api/v1/services"+bad)
		if code != 400 || !strings.Contains(body, "urn:problem-type:belgif:badRequest") {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
	if code, body := get(t, h, "/catalog/api/v1/services?page=9"); code != 200 || !strings.Contains(body, `"items":[]`) {
		t.Errorf("a page past the end: %d %s", code, body)
	}
}

// TestNothingSecret: no page, document or JSON answer carries a source
// address, a credential name or a plugin digest.
func TestNothingSecret(t *testing.T) {
	set, err := spec.LoadDir(demoFlows)
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for _, s := range set.Sources {
		if s.REST != nil {
			secrets = append(secrets, s.REST.BaseURL)
		}
	}
	for _, p := range set.Plugins {
		secrets = append(secrets, p.Digest)
		for _, s := range p.Secrets {
			secrets = append(secrets, s.Env)
		}
	}
	c := load(t, demoFlows)
	h := c.Handler()
	paths := []string{"/catalog", "/catalog/api/v1/services?pageSize=100"}
	for _, e := range c.Entries() {
		paths = append(paths, e.Links.Page, e.Links.Self, e.Links.OpenAPI, e.Links.OpenAPIYAML)
	}
	for _, p := range paths {
		code, body := get(t, h, p)
		if code != 200 {
			t.Errorf("GET %s: %d", p, code)
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(body, s) {
				t.Errorf("GET %s shows %q", p, s)
			}
		}
	}
}

// TestPages checks what a person relies on: the language, labelled
// controls, the legal requirements, the diagram with its text, no script
// and no external asset.
func TestPages(t *testing.T) {
	c := load(t, demoFlows)
	h := c.Handler()
	code, index := get(t, h, "/catalog?q=person&status=active")
	if code != 200 {
		t.Fatal(code)
	}
	for _, want := range []string{`<html lang="en">`, `<label for="q">Search</label>`, `<label for="source">Source</label>`,
		`<label for="category">Data category</label>`, `<label for="status">Status</label>`, `value="person"`,
		`<option value="active" selected>`, `name="viewport"`, `href="/catalog/services/PERSON/v1"`} {
		if !strings.Contains(index, want) {
			t.Errorf("index lacks %s", want)
		}
	}
	code, page := get(t, h, "/catalog/services/PERSON/v1")
	if code != 200 {
		t.Fatal(code)
	}
	for _, want := range []string{`<h2 id="legal-h">Legal requirements</h2>`, "a law (reference to the article)", "highlyConfidential",
		"<code>socialAssistance</code>", `<svg xmlns="http://www.w3.org/2000/svg" role="img"`, "switch outcome",
		"National Register (demo)", `href="/persons/v1/doc/openapi.json" download=`, "formatted SSIN is normalised before the call",
		"&#34;name&#34;: &#34;Marc Vandaele&#34;"} {
		if !strings.Contains(page, want) {
			t.Errorf("service page lacks %s", want)
		}
	}
	for _, body := range []string{index, page} {
		for _, bad := range []string{"<script", "http://", "https://"} {
			if strings.Contains(strings.ReplaceAll(body, `xmlns="http://www.w3.org/2000/svg"`, ""), bad) {
				t.Errorf("a page holds %q", bad)
			}
		}
	}
	if code, body := get(t, h, "/catalog/services/NOPE/v1"); code != 404 || !strings.Contains(body, "resourceNotFound") {
		t.Errorf("unknown service: %d %s", code, body)
	}
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func keys(es []*catalog.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Key())
	}
	return out
}

func mustAPI(t *testing.T, c *catalog.Catalog, base string) *catalog.API {
	t.Helper()
	a, ok := c.API(base)
	if !ok {
		t.Fatalf("no API %s in %v", base, c.APIs())
	}
	return a
}

// copyFlows copies the demo flow directory (the plugin modules it points
// at are not copied: only documents are loaded and compiled here).
func copyFlows(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	err := filepath.WalkDir(demoFlows, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") {
			return err
		}
		rel, _ := filepath.Rel(demoFlows, p)
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), []byte(readFile(t, p)), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
