package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// catalogFlows: two flows of one API, one calling an upstream whose address
// must never show in the catalogue.
const catalogFlows = `kind: Source
name: reg
title: The register
protocol: rest
rest:
  baseUrl: ${UP}
  operations:
    get: {method: GET, path: "/items/{id}"}
---
kind: Flow
name: item
version: 1.2.0
method: GET
path: /items/v1/items/{id}
catalog:
  code: ITEM
  title: Item
  description: One item.
  owner: Team
  status: active
  protocols: [rest]
  contacts: [{name: Desk, email: desk@example.org}]
legal:
  dataCategories: [things]
  sensitivity: public
  legalBases: [law]
  purposes: [{code: lookup, description: Looking items up}]
input:
  path:
    properties:
      id: {type: string}
steps:
  - id: x
    call: reg.get
    with: {path: {id: input.path.id}}
output: steps.x.body
---
kind: Flow
name: doc
version: 1.0.0
method: POST
path: /items/v1/search
catalog: {title: Draft search}
output: '{"found": false}'
`

// TestCatalogMounted: the catalogue is served on the consumer listener,
// publicly, with trace ids, at exactly its own paths; it leaves the flows'
// routes, 404s and 405s alone and shows no upstream address.
func TestCatalogMounted(t *testing.T) {
	up := upstream(t, jsonHandler(200, `{"id":"7"}`))
	h := start(t, catalogFlows, map[string]string{"UP": up.URL})

	r := h.get("/catalog/api/v1/services")
	if r.status != 200 || r.header.Get("Content-Type") != contentJSON {
		t.Fatalf("JSON catalogue: %v", r)
	}
	checkTraceID(t, r)
	var page struct {
		Total int
		Items []struct{ Code, Status string }
	}
	if err := json.Unmarshal(r.body, &page); err != nil || page.Total != 2 || page.Items[0].Code != "ITEM" || page.Items[1].Status != "draft" {
		t.Fatalf("catalogue: %v %s", err, r.body)
	}
	for _, p := range []string{"/catalog", "/catalog/services/ITEM/v1", "/items/v1/doc/openapi.json", "/items/v1/doc/openapi.yaml", "/catalog/static/catalog.css"} {
		r := h.get(p)
		if r.status != 200 {
			t.Errorf("GET %s: %v", p, r)
		}
		if strings.Contains(string(r.body), strings.TrimPrefix(up.URL, "http://")) {
			t.Errorf("GET %s shows the upstream address", p)
		}
	}
	if r := h.get("/items/v1/doc/openapi.json"); !strings.Contains(string(r.body), `"/items/{id}"`) || !strings.Contains(string(r.body), `"/search"`) {
		t.Errorf("one document for both services of the API: %s", r.body)
	}
	if r := h.get("/items/v1/doc"); r.status != 200 || !strings.Contains(string(r.body), "Draft search") {
		t.Errorf("/doc of an API with two services leads to their list: %v", r)
	}
	// The flows are untouched around it.
	if r := h.get("/items/v1/items/7"); r.status != 200 || string(r.body) != `{"id":"7"}` {
		t.Errorf("flow: %v", r)
	}
	h.problem(h.get("/catalog/nothing"), 404, typeNotFound)
	h.problem(h.get("/catalog/services/NOPE/v1"), 404, typeNotFound)
	h.problem(h.get("/items/v1/nothing"), 404, typeNotFound)
	if r := h.do(http.MethodDelete, "/items/v1/items/7", nil); r.status != 405 {
		t.Errorf("DELETE on a flow: %v", r)
	}
}
