package spec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/spec"
)

const catalogSource = `kind: Source
name: reg
protocol: rest
rest:
  baseUrl: http://127.0.0.1:1
  operations:
    get: {method: GET, path: /x}
`

// catalogFlow is a flow whose catalog and legal blocks are replaced by the test.
const catalogFlow = `kind: Flow
name: svc
version: 1.0.0
method: GET
path: /svc/v1/things
%META%
steps:
  - id: x
    call: reg.get
output: steps.x.body
`

const completeMeta = `catalog:
  code: SVC
  title: Service
  description: What it does.
  owner: Team
  status: active
  protocols: [rest]
  contacts: [{name: Desk, email: desk@example.org}]
legal:
  dataCategories: [personIdentity]
  sensitivity: confidential
  legalBases: [law]
  purposes: [{code: kyc, description: Know your customer}]`

func loadCatalog(t *testing.T, meta string, extra ...string) []string {
	t.Helper()
	files := map[string][]byte{
		"src.yaml":  []byte(catalogSource),
		"flow.yaml": []byte(strings.Replace(catalogFlow, "%META%", meta, 1)),
	}
	for i, e := range extra {
		files["extra"+string(rune('a'+i))+".yaml"] = []byte(e)
	}
	_, err := spec.Load(files)
	if err == nil {
		return nil
	}
	var errs spec.ErrorList
	if !errors.As(err, &errs) {
		t.Fatalf("load: %v", err)
	}
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func TestCatalogueMetadata(t *testing.T) {
	tests := []struct {
		name string
		meta string
		want []string // substrings, one per expected error, in order
	}{
		{"complete and active", completeMeta, nil},
		{"draft needs only a title", "catalog: {title: Draft}", nil},
		{"no catalog is a draft", "", nil},
		{"published, nothing but a title", "catalog:\n  title: T\n  status: active", []string{
			"flow.yaml:7:3: flow \"svc\" is published (status active) but has no catalog.code",
			"flow.yaml:7:3: flow \"svc\" is published (status active) but has no catalog.description",
			"has no catalog.owner", "has no catalog.protocols", "has no catalog.contacts", "has no legal block",
		}},
		{"published, empty legal", strings.Replace(completeMeta, "legal:\n  dataCategories: [personIdentity]\n  sensitivity: confidential\n  legalBases: [law]\n  purposes: [{code: kyc, description: Know your customer}]",
			"legal:\n  subject: '\"x\"'", 1), []string{
			"flow.yaml:15:3: flow \"svc\" is published (status active) but has no legal.dataCategories",
			"has no legal.sensitivity", "has no legal.legalBases", "has no legal.purposes",
		}},
		{"deprecated needs a sunset", strings.Replace(completeMeta, "status: active", "status: deprecated", 1), []string{
			"flow.yaml:11:11: flow \"svc\" is published (status deprecated) but has no catalog.sunset",
		}},
		{"deprecated with a sunset", strings.Replace(completeMeta, "status: active", "status: deprecated\n  sunset: 2027-06-30\n  replacedBy: SVC2", 1), nil},
		{"bad values", strings.NewReplacer(
			"status: active", "status: retired\n  sunset: 30/06/2027",
			"protocols: [rest]", "protocols: [rest, smtp]",
			"sensitivity: confidential", "sensitivity: secret",
			"legalBases: [law]", "legalBases: [law, contract]",
			"code: kyc", "code: know your customer",
			"code: SVC", "code: 9SVC",
			"email: desk@example.org", "email: desk",
			"dataCategories: [personIdentity]", "dataCategories: [Person-Identity]",
		).Replace(completeMeta), []string{
			"flow.yaml:7:9: service code \"9SVC\"",
			"flow.yaml:11:11: status \"retired\" is unknown",
			"flow.yaml:12:11: sunset \"30/06/2027\" must be a date",
			"flow.yaml:13:14: protocol \"smtp\" is unknown",
			"flow.yaml:14:34: \"desk\" is not an e-mail address",
			"flow.yaml:16:19: data category \"Person-Identity\"",
			"flow.yaml:17:16: sensitivity \"secret\" is unknown",
			"flow.yaml:18:15: legal basis kind \"contract\" is unknown",
			"flow.yaml:19:21: purpose code \"know your customer\"",
		}},
		{"sunset without deprecation", strings.Replace(completeMeta, "status: active", "status: active\n  sunset: 2027-06-30", 1), []string{
			"sunset belongs to a deprecated service",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := loadCatalog(t, tt.meta)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("error %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestCatalogueCodeUniquePerMajor(t *testing.T) {
	other := strings.NewReplacer("name: svc", "name: other", "/svc/v1/things", "/other/v1/things").Replace(strings.Replace(catalogFlow, "%META%", completeMeta, 1))
	got := loadCatalog(t, completeMeta, other)
	if len(got) != 1 || !strings.Contains(got[0], "has the service code SVC v1 of flow") {
		t.Fatalf("got %q", got)
	}
	v2 := strings.NewReplacer("name: svc", "name: svc2", "/svc/v1/things", "/svc/v2/things", "version: 1.0.0", "version: 2.0.0").Replace(strings.Replace(catalogFlow, "%META%", completeMeta, 1))
	if got := loadCatalog(t, completeMeta, v2); got != nil {
		t.Fatalf("a new major version keeps its code: %q", got)
	}
}

func TestOutputSchemaCheckedAgainstTests(t *testing.T) {
	meta := completeMeta + `
outputSchema:
  type: object
  properties:
    name: {type: string}
    count: {type: integer}`
	test := `kind: Test
name: answers
flow: svc
request: {path: /svc/v1/things}
mocks: [{call: reg.get, body: {name: a, count: "3"}}]
expect:
  status: 200
  body: {name: a, count: "3"}
`
	got := loadCatalog(t, meta, test)
	if len(got) != 1 || !strings.Contains(got[0], `extraa.yaml:8:26: test "answers" expects a body that does not match the outputSchema of flow "svc": "#/count"`) {
		t.Fatalf("got %q", got)
	}
	if got := loadCatalog(t, meta, strings.ReplaceAll(test, `"3"`, "3")); got != nil {
		t.Fatalf("a matching body: %q", got)
	}
	if got := loadCatalog(t, completeMeta+"\noutputSchema: {type: objekt}"); len(got) != 1 || !strings.Contains(got[0], "outputSchema is not a valid JSON Schema") {
		t.Fatalf("got %q", got)
	}
}

// The demo's services are published, so their metadata is complete
// (loading the directory without an error says so).
func TestDemoFlowsPublished(t *testing.T) {
	set, err := spec.LoadDir("../../flows")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"enterpriseProfile", "enterprise", "person", "personResearch"} {
		if fl := set.Flows[name]; fl == nil || !fl.Published() {
			t.Errorf("demo flow %s is not published", name)
		}
	}
}
