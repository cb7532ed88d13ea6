package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/problem"
	"github.com/openfsb/fsb/engine/spec"
)

// obj is a JSON object that keeps its keys in the order written, so the
// OpenAPI document reads top-down (openapi, info, servers, paths …).
type obj []kv

type kv struct {
	k string
	v any
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(f.v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.k, err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// set appends a key, or replaces its value.
func (o *obj) set(k string, v any) {
	for i := range *o {
		if (*o)[i].k == k {
			(*o)[i].v = v
			return
		}
	}
	*o = append(*o, kv{k, v})
}

// encodeDocument renders a document as indented JSON and as YAML.
func encodeDocument(doc obj) (jsonDoc, yamlDoc []byte) {
	j, err := json.MarshalIndent(doc, "", "  ")
	if err != nil { // only unencodable schema values could do this; they came from YAML
		j = []byte(`{"openapi":"3.1.0"}`)
	}
	y, err := jsonToYAML(j)
	if err != nil {
		y = nil
	}
	return append(j, '\n'), y
}

// The OpenFSB request headers (engine/access) and Belgif's trace headers.
const (
	headerPurpose = "OpenFSB-Purpose"
	headerEndUser = "OpenFSB-End-User"
	headerTrace   = "BelGov-Trace-Id"
	headerRelated = "BelGov-Related-Trace-Id"
	tokenPath     = "/oauth2/token"
)

// openAPI builds the OpenAPI 3.1 document of one API (all its services).
func openAPI(a *API) obj {
	first := a.Entries[0]
	info := obj{{"title", apiTitle(a)}, {"version", maxVersion(a.Entries)}}
	if d := apiDescription(a); d != "" {
		info.set("description", d)
	}
	if c := firstContact(a.Entries); c != nil {
		info.set("contact", c)
	}
	info.set("x-openfsb-status", first.Status)
	doc := obj{
		{"openapi", "3.1.0"},
		{"info", info},
		{"servers", []any{obj{{"url", a.Base}, {"description", "this gateway"}}}},
	}
	paths := map[string]obj{}
	for _, e := range a.Entries {
		rel := strings.TrimPrefix(e.Path, a.Base)
		if rel == "" {
			rel = "/"
		}
		item := paths[rel]
		item.set(strings.ToLower(e.Method), operation(e))
		paths[rel] = item
	}
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	po := obj{}
	for _, k := range keys {
		po.set(k, paths[k])
	}
	doc.set("paths", po)
	doc.set("components", components())
	doc.set("security", securityRequirements())
	return doc
}

func apiTitle(a *API) string {
	if len(a.Entries) == 1 {
		return a.Entries[0].Title
	}
	return strings.TrimPrefix(a.Base, "/")
}

func apiDescription(a *API) string {
	var parts []string
	for _, e := range a.Entries {
		if e.Description != "" {
			parts = append(parts, e.Description)
		}
	}
	return strings.Join(parts, "\n\n")
}

func maxVersion(es []*Entry) string {
	best := es[0].Version
	for _, e := range es[1:] {
		if versionLess(best, e.Version) {
			best = e.Version
		}
	}
	return best
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range min(len(pa), len(pb)) {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}

func firstContact(es []*Entry) obj {
	for _, e := range es {
		for _, c := range e.Contacts {
			o := obj{{"name", c.Name}}
			if c.Email != "" {
				o.set("email", c.Email)
			}
			if c.URL != "" {
				o.set("url", c.URL)
			}
			return o
		}
	}
	return nil
}

// operation describes one service.
func operation(e *Entry) obj {
	fl := e.plan.Spec
	op := obj{{"operationId", e.Name}, {"summary", e.Title}}
	if e.Description != "" {
		op.set("description", e.Description)
	}
	op.set("tags", []string{e.Code})
	if e.Status == spec.StatusDeprecated {
		op.set("deprecated", true)
	}
	params := []any{}
	for _, name := range spec.PathParams(e.Path) {
		p := parameter(name, "path", true, propSchema(fl.Input, "path", name))
		if e.example != nil && e.example.Params[name] != "" {
			p.set("example", e.example.Params[name])
		}
		params = append(params, p)
	}
	if fl.Input != nil && fl.Input.Query != nil {
		q, _ := fl.Input.Query.V.(map[string]any)
		props, _ := q["properties"].(map[string]any)
		req := stringSet(q["required"])
		for _, name := range sortedKeys(props) {
			p := parameter(name, "query", req[name], props[name])
			if e.example != nil && e.example.Query[name] != "" {
				p.set("example", queryExample(props[name], e.example.Query[name]))
			}
			params = append(params, p)
		}
	}
	purposes := make([]any, 0, len(e.Legal.Purposes))
	for _, p := range e.Legal.Purposes {
		purposes = append(purposes, p.Code)
	}
	purposeSchema := obj{{"type", "string"}, {"pattern", `^[A-Za-z0-9._:/-]{1,100}$`}}
	if len(purposes) > 0 {
		purposeSchema = obj{{"type", "string"}, {"enum", purposes}}
	}
	params = append(params,
		obj{{"name", headerPurpose}, {"in", "header"}, {"required", true},
			{"description", "The purpose of this call: one of the purposes of your grant for this service."}, {"schema", purposeSchema}},
		obj{{"name", headerEndUser}, {"in", "header"}, {"required", true},
			{"description", "An opaque reference to the official or process that caused the call (never a national register number)."},
			{"schema", obj{{"type", "string"}, {"minLength", 1}, {"maxLength", 128}}}},
		obj{{"$ref", "#/components/parameters/traceId"}},
	)
	op.set("parameters", params)
	if fl.Input != nil && fl.Input.Body != nil {
		content := obj{{"schema", fl.Input.Body.V}}
		if e.example != nil && e.example.Body != nil {
			content.set("example", e.example.Body)
		}
		op.set("requestBody", obj{{"required", true}, {"content", obj{{"application/json", content}}}})
	}
	op.set("responses", responses(e))
	op.set("x-openfsb", xOpenFSB(e))
	return op
}

func parameter(name, in string, required bool, schema any) obj {
	p := obj{{"name", name}, {"in", in}}
	if required {
		p.set("required", true)
	}
	if m, ok := schema.(map[string]any); ok {
		if d, ok := m["description"].(string); ok {
			p.set("description", d)
		}
	}
	if schema == nil {
		schema = map[string]any{"type": "string"}
	}
	p.set("schema", schema)
	return p
}

// propSchema returns input.<where>.properties.<name>, or nil.
func propSchema(in *spec.Input, where, name string) any {
	if in == nil {
		return nil
	}
	var v *spec.Value
	switch where {
	case "path":
		v = in.Path
	case "query":
		v = in.Query
	}
	if v == nil {
		return nil
	}
	m, _ := v.V.(map[string]any)
	props, _ := m["properties"].(map[string]any)
	return props[name]
}

func stringSet(v any) map[string]bool {
	out := map[string]bool{}
	if l, ok := v.([]any); ok {
		for _, x := range l {
			if s, ok := x.(string); ok {
				out[s] = true
			}
		}
	}
	return out
}

func sortedKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// xOpenFSB carries the catalogue metadata tools may want with the API.
func xOpenFSB(e *Entry) obj {
	x := obj{{"serviceCode", e.Code}, {"version", e.Version}, {"status", e.Status}}
	if e.Sunset != "" {
		x.set("sunset", e.Sunset)
	}
	if e.ReplacedBy != "" {
		x.set("replacedBy", e.ReplacedBy)
	}
	if e.Owner != "" {
		x.set("owner", e.Owner)
	}
	srcs := make([]string, 0, len(e.Sources))
	for _, s := range e.Sources {
		srcs = append(srcs, s.Name)
	}
	x.set("sources", srcs)
	legal := obj{}
	if len(e.Legal.DataCategories) > 0 {
		legal.set("dataCategories", e.Legal.DataCategories)
	}
	if e.Legal.Sensitivity != "" {
		legal.set("sensitivity", e.Legal.Sensitivity)
	}
	if len(e.Legal.LegalBases) > 0 {
		legal.set("legalBases", e.Legal.LegalBases)
	}
	if len(e.Legal.Purposes) > 0 {
		ps := make([]any, 0, len(e.Legal.Purposes))
		for _, p := range e.Legal.Purposes {
			ps = append(ps, obj{{"code", p.Code}, {"description", p.Description}})
		}
		legal.set("purposes", ps)
	}
	x.set("legal", legal)
	return x
}

// problemInfo is one problem type a service may answer.
type problemInfo struct {
	typ, title string
	when       string
}

// responses lists the success answer and every problem the gateway, the
// access check and the flow itself can answer, by status.
func responses(e *Entry) obj {
	fl := e.plan.Spec
	status := e.plan.Status
	success := obj{{"description", "The answer of the service."}}
	headers := obj{{headerTrace, obj{{"$ref", "#/components/headers/traceId"}}}, {headerRelated, obj{{"$ref", "#/components/headers/relatedTraceId"}}}}
	for _, h := range sortedKeys(fl.Headers) {
		headers.set(h, obj{{"description", "Set by the service."}, {"schema", obj{{"type", "string"}}}})
	}
	success.set("headers", headers)
	schema := outputSchema(fl, e)
	content := obj{{"schema", schema}}
	if e.example != nil {
		content.set("example", e.example.Response)
	}
	success.set("content", obj{{"application/json", content}})

	byStatus := map[int][]problemInfo{}
	add := func(st int, name, when string) {
		typ := name
		if !strings.HasPrefix(name, "urn:") && !strings.HasPrefix(name, "about:") {
			typ = problem.New(name, st, "").Type
		}
		for _, p := range byStatus[st] {
			if p.typ == typ {
				return
			}
		}
		byStatus[st] = append(byStatus[st], problemInfo{typ: typ, title: problem.New(name, st, "").Title, when: when})
	}
	add(400, "badRequest", "the input does not match its schema (issues[] says where), or a required header is missing or malformed")
	add(401, "noAccessToken", "no client certificate and no access token were presented")
	add(401, "invalidAccessToken", "the certificate or token is not valid, not registered or revoked")
	add(401, "expiredAccessToken", "the access token has expired")
	add(403, "missingPermission", "no grant for this service, purpose or address")
	if fl.Input != nil && fl.Input.Body != nil {
		add(413, "payloadTooLarge", "the request body exceeds the service's limit")
		add(415, "unsupportedMediaType", "the request body is not application/json")
	}
	add(429, "tooManyRequests", "the grant's quota is used up (see Retry-After)")
	add(429, "tooManyFailedRequests", "too many refused calls (see Retry-After)")
	add(500, "internalServerError", "the service failed unexpectedly")
	if len(e.Sources) > 0 || len(e.plan.Plugins) > 0 {
		add(502, "badGateway", "an authentic source is unreachable or answered wrongly (step says which)")
		add(503, "serviceUnavailable", "an authentic source is unavailable, or the audit trail cannot record the call")
	} else {
		add(503, "serviceUnavailable", "the audit trail cannot record the call")
	}
	add(504, problem.OpenFSBPrefix+"gatewayTimeout", "a step or the whole service ran out of time")
	walkFails(e.outline, func(typ string, st int) {
		add(st, typ, "the service says so (a fail step)")
	})
	statuses := make([]int, 0, len(byStatus))
	for st := range byStatus {
		statuses = append(statuses, st)
	}
	slices.Sort(statuses)
	out := obj{{strconv.Itoa(status), success}}
	for _, st := range statuses {
		out.set(strconv.Itoa(st), problemResponse(st, byStatus[st]))
	}
	return out
}

func problemResponse(st int, ps []problemInfo) obj {
	var desc []string
	examples := obj{}
	for _, p := range ps {
		desc = append(desc, fmt.Sprintf("`%s`: %s.", p.typ, p.when))
		name := p.typ[strings.LastIndexByte(p.typ, ':')+1:]
		examples.set(name, obj{{"value", obj{{"type", p.typ}, {"title", p.title}, {"status", st}}}})
	}
	headers := obj{{headerTrace, obj{{"$ref", "#/components/headers/traceId"}}}}
	if st == 429 || st == 503 {
		headers.set("Retry-After", obj{{"description", "Seconds to wait before calling again."}, {"schema", obj{{"type", "integer"}}}})
	}
	return obj{
		{"description", strings.Join(desc, " ")},
		{"headers", headers},
		{"content", obj{{problem.ContentType, obj{{"schema", obj{{"$ref", "#/components/schemas/Problem"}}}, {"examples", examples}}}}},
	}
}

// walkFails calls fn for every fail step of an outline.
func walkFails(steps []flow.Outline, fn func(typ string, status int)) {
	for _, s := range steps {
		if s.Kind == "fail" && s.Problem != "" {
			fn(s.Problem, s.ProblemStatus)
		}
		walkFails(s.Children, fn)
		walkFails(s.Default, fn)
		for _, c := range s.Cases {
			walkFails(c.Steps, fn)
		}
	}
}

func components() obj {
	issue := obj{{"type", "object"}, {"properties", obj{
		{"type", obj{{"type", "string"}, {"description", "urn:problem-type:belgif:input-validation:…"}}},
		{"title", obj{{"type", "string"}}},
		{"in", obj{{"type", "string"}, {"enum", []string{"body", "query", "path", "header"}}}},
		{"name", obj{{"type", "string"}}},
		{"value", obj{}},
		{"detail", obj{{"type", "string"}}},
	}}}
	prob := obj{{"type", "object"}, {"description", "RFC 9457 problem details with a Belgif problem type."},
		{"required", []string{"type", "title", "status"}},
		{"properties", obj{
			{"type", obj{{"type", "string"}, {"format", "uri"}}},
			{"title", obj{{"type", "string"}}},
			{"status", obj{{"type", "integer"}}},
			{"detail", obj{{"type", "string"}}},
			{"instance", obj{{"type", "string"}}},
			{"step", obj{{"type", "string"}, {"description", "The flow step that failed."}}},
			{"issues", obj{{"type", "array"}, {"items", obj{{"$ref", "#/components/schemas/InputValidationIssue"}}}}},
		}}}
	traceSchema := obj{{"type", "string"}, {"pattern", `^[A-Za-z0-9._-]{1,36}$`}}
	return obj{
		{"schemas", obj{{"Problem", prob}, {"InputValidationIssue", issue}}},
		{"parameters", obj{{"traceId", obj{{"name", headerTrace}, {"in", "header"},
			{"description", "Your id for this call; echoed as BelGov-Related-Trace-Id."}, {"schema", traceSchema}}}}},
		{"headers", obj{
			{"traceId", obj{{"description", "The gateway's id for this answer."}, {"schema", traceSchema}}},
			{"relatedTraceId", obj{{"description", "Your BelGov-Trace-Id, when you sent one."}, {"schema", traceSchema}}},
		}},
		{"securitySchemes", obj{
			{"mutualTLS", obj{{"type", "mutualTLS"}, {"description", "A client certificate registered for your application, chaining to the integrator's consumer CA."}}},
			{"oauth2", obj{{"type", "oauth2"}, {"description", "OAuth2 client credentials; over mTLS the token is bound to your certificate (RFC 8705)."},
				{"flows", obj{{"clientCredentials", obj{{"tokenUrl", tokenPath}, {"scopes", obj{}}}}}}}},
		}},
	}
}

// securityRequirements: a registered client certificate, or an OAuth2
// access token (bound to the certificate when one is presented).
func securityRequirements() []any {
	return []any{obj{{"mutualTLS", []string{}}}, obj{{"oauth2", []string{}}}}
}

// queryExample types a query parameter's example by its schema, so that
// it validates ("false" is the boolean false on the wire).
func queryExample(schema any, v string) any {
	m, _ := schema.(map[string]any)
	switch m["type"] {
	case "boolean":
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	case "integer", "number":
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return v
}
