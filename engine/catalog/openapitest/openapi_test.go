// Package openapitest validates the catalogue's OpenAPI documents with
// kin-openapi, an independent implementation of the OpenAPI 3.1 rules. It
// is a package of its own so that the catalogue's other tests do not
// depend on that module.
package openapitest_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/openfsb/fsb/engine/catalog"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/spec"
)

const demoFlows = "../../../flows"

func load(t *testing.T, dir string) *catalog.Catalog {
	t.Helper()
	set, err := spec.LoadDir(dir)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	plans, err := flow.Compile(set)
	if err != nil {
		t.Fatalf("compile %s: %v", dir, err)
	}
	return catalog.New(set, plans)
}

// TestOpenAPIValid validates every demo API's document, JSON and YAML,
// with kin-openapi, and checks what it must say.
func TestOpenAPIValid(t *testing.T) {
	c := load(t, demoFlows)
	if len(c.APIs()) < 4 {
		t.Fatalf("APIs: %v", c.APIs())
	}
	for _, base := range c.APIs() {
		a, _ := c.API(base)
		for _, doc := range [][]byte{a.JSON, a.YAML} {
			d := validOpenAPI(t, base, doc)
			if d.OpenAPI != "3.1.0" || d.Servers[0].URL != base {
				t.Errorf("%s: openapi %s, servers %v", base, d.OpenAPI, d.Servers)
			}
			for _, s := range []string{"mutualTLS", "oauth2"} {
				if d.Components.SecuritySchemes[s] == nil {
					t.Errorf("%s: no %s security scheme", base, s)
				}
			}
			for _, e := range a.Entries {
				op := d.Paths.Find(strings.TrimPrefix(e.Path, base)).GetOperation(e.Method)
				if op == nil {
					t.Fatalf("%s: no operation %s %s", base, e.Method, e.Path)
				}
				for _, st := range []string{"200", "400", "401", "403", "429", "500", "502", "503", "504"} {
					r := op.Responses.Value(st)
					if r == nil {
						t.Errorf("%s: no %s response", e.Name, st)
						continue
					}
					ct := "application/problem+json"
					if st == "200" {
						ct = "application/json"
					}
					if r.Value.Content.Get(ct) == nil {
						t.Errorf("%s: response %s is not %s", e.Name, st, ct)
					}
				}
				if op.Parameters.GetByInAndName("header", "OpenFSB-Purpose") == nil {
					t.Errorf("%s: no OpenFSB-Purpose header", e.Name)
				}
			}
		}
	}
	// A flow's own fail steps appear with their problem type.
	a, _ := c.API("/enterpriseProfile/v1")
	for _, want := range []string{"urn:problem-type:belgif:resourceNotFound", "urn:problem-type:openfsb:gatewayTimeout", "urn:problem-type:belgif:payloadTooLarge"} {
		if !strings.Contains(string(a.JSON), want) {
			t.Errorf("enterpriseProfile's document lacks %s", want)
		}
	}
}

func validOpenAPI(t *testing.T, name string, doc []byte) *openapi3.T {
	t.Helper()
	l := openapi3.NewLoader()
	d, err := l.LoadFromData(doc)
	if err != nil {
		t.Fatalf("%s: load: %v", name, err)
	}
	if err := d.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("%s: not valid OpenAPI: %v", name, err)
	}
	return d
}

// TestOutputSchema: a declared outputSchema is published as is; without
// one, the schema is derived from the output mapping and the tests.
func TestOutputSchema(t *testing.T) {
	c := load(t, demoFlows)
	a, _ := c.API("/enterpriseProfile/v1")
	d := validOpenAPI(t, "enterpriseProfile", a.JSON)
	s := d.Paths.Find("/get").Post.Responses.Value("200").Value.Content.Get("application/json").Schema.Value
	if !strings.HasPrefix(s.Description, "Derived from the flow's output mapping") {
		t.Errorf("description %q", s.Description)
	}
	vat := s.Properties["vat"].Value
	if !vat.Type.Is("object") || !vat.Properties["available"].Value.Type.Is("boolean") || !vat.Properties["employees"].Value.Type.Is("integer") {
		t.Errorf("vat: %+v", vat)
	}
	if dirs := s.Properties["directors"].Value; !dirs.Type.Is("array") || !dirs.Items.Value.Properties["found"].Value.Type.Is("boolean") {
		t.Errorf("directors: %+v", dirs)
	}

	dir := copyFlows(t)
	writeFile(t, filepath.Join(dir, "enterprise.yaml"), strings.Replace(readFile(t, filepath.Join(demoFlows, "enterprise.yaml")),
		"output: steps.enterprise.body", "output: steps.enterprise.body\noutputSchema:\n  type: object\n  required: [enterpriseNumber]\n  properties:\n    enterpriseNumber: {type: string, pattern: '^[01][0-9]{9}$'}\n    name: {type: string}\n    status: {type: string}", 1))
	c = load(t, dir)
	a, _ = c.API("/enterprises/v1")
	d = validOpenAPI(t, "enterprise", a.JSON)
	s = d.Paths.Find("/enterprises/{enterpriseNumber}").Get.Responses.Value("200").Value.Content.Get("application/json").Schema.Value
	if s.Description != "" || !slices.Equal(s.Required, []string{"enterpriseNumber"}) {
		t.Errorf("declared schema not published as is: %+v", s)
	}
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
