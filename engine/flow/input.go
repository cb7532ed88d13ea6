package flow

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/openfsb/fsb/engine/expr"
	"github.com/openfsb/fsb/engine/problem"
	"github.com/openfsb/fsb/engine/spec"
)

// inputSchema validates a consumer request. Objects that list properties
// refuse any other property unless the schema allows it explicitly
// (additionalProperties): unknown input is an error, as Belgif asks.
type inputSchema struct {
	body, query, path *paramSchema
}

type paramSchema struct {
	schema    *jsonschema.Schema
	props     map[string]string // property → declared JSON type ("" = any)
	itemTypes map[string]string // array property → its items' type
	raw       map[string]any
}

func (c *compiler) inputSchema(fl *spec.Flow) *inputSchema {
	in := &inputSchema{}
	if fl.Input == nil {
		return in
	}
	in.body = c.schema(fl.Input.Body, "body")
	in.query = c.schema(fl.Input.Query, "query")
	in.path = c.schema(fl.Input.Path, "path")
	if fl.Input.Path != nil && in.path != nil {
		declared := map[string]bool{}
		for _, p := range spec.PathParams(fl.Path) {
			declared[p] = true
			if _, ok := in.path.props[p]; !ok {
				c.errorf(fl.Input.Path.Pos, "path parameter {%s} has no schema in input.path.properties", p)
			}
		}
		for p := range in.path.props {
			if !declared[p] {
				c.errorf(fl.Input.Path.Pos, "input.path declares %q but the path %s has no {%s}", p, fl.Path, p)
			}
		}
	}
	return in
}

func (c *compiler) schema(v *spec.Value, where string) *paramSchema {
	if v == nil {
		return nil
	}
	doc, ok := v.V.(map[string]any)
	if !ok {
		c.errorf(v.Pos, "input.%s must be a JSON Schema (a mapping)", where)
		return nil
	}
	doc = closeObjects(deepCopy(doc).(map[string]any))
	if where != "body" {
		if t, _ := doc["type"].(string); t != "" && t != "object" {
			c.errorf(v.Pos, "input.%s must be a schema of type object with properties", where)
			return nil
		}
		doc["type"] = "object"
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	url := "mem://input/" + where + ".json"
	if err := comp.AddResource(url, doc); err != nil {
		c.errorf(v.Pos, "input.%s: %v", where, err)
		return nil
	}
	sch, err := comp.Compile(url)
	if err != nil {
		pos, msg := schemaErr(v, err)
		c.errorf(pos, "input.%s is not a valid JSON Schema: %s", where, msg)
		return nil
	}
	ps := &paramSchema{schema: sch, props: map[string]string{}, itemTypes: map[string]string{}, raw: doc}
	if props, ok := doc["properties"].(map[string]any); ok {
		for name, p := range props {
			t := ""
			if pm, ok := p.(map[string]any); ok {
				t, _ = pm["type"].(string)
				if items, ok := pm["items"].(map[string]any); ok {
					ps.itemTypes[name], _ = items["type"].(string)
				}
			}
			ps.props[name] = t
		}
	}
	return ps
}

var printer = message.NewPrinter(language.English)

// schemaErr finds the innermost reason a schema is invalid and where it is.
func schemaErr(v *spec.Value, err error) (spec.Pos, string) {
	var se *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &se) && errors.As(se.Err, &ve) {
		leaf := leaves(ve)[0]
		ptr := ""
		for _, p := range leaf.InstanceLocation {
			ptr += "/" + strings.ReplaceAll(strings.ReplaceAll(p, "~", "~0"), "/", "~1")
		}
		return v.At(ptr), fmt.Sprintf("at %q: %s", "#"+ptr, leaf.ErrorKind.LocalizedString(printer))
	}
	msg := strings.ReplaceAll(err.Error(), "mem://input/", "")
	if i := strings.IndexByte(msg, '\n'); i > 0 {
		msg = msg[:i]
	}
	return v.Pos, msg
}

// closeObjects adds additionalProperties: false to every object schema that
// lists properties and says nothing about additional ones.
func closeObjects(s map[string]any) map[string]any {
	if props, ok := s["properties"].(map[string]any); ok {
		if _, set := s["additionalProperties"]; !set {
			if _, set := s["patternProperties"]; !set {
				s["additionalProperties"] = false
			}
		}
		for k, p := range props {
			if pm, ok := p.(map[string]any); ok {
				props[k] = closeObjects(pm)
			}
		}
	}
	if items, ok := s["items"].(map[string]any); ok {
		s["items"] = closeObjects(items)
	}
	return s
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = deepCopy(x)
		}
		return out
	}
	return v
}

// MaxIssues caps the issues a badRequest lists, so that a body of a million
// unknown properties cannot make a problem document of a million issues.
const MaxIssues = 50

// empty is the shared value of an absent input part; expressions only read it.
var empty = map[string]any{}

// params types and checks parameters into out (made when nil).
func (ps *paramSchema) params(in string, raw []Param, out map[string]any, issues *[]problem.Issue) map[string]any {
	if len(raw) == 0 && ps == nil {
		return empty
	}
	if len(raw) > 1 {
		raw = slices.Clone(raw)
		slices.SortStableFunc(raw, func(a, b Param) int { return strings.Compare(a.Name, b.Name) })
	}
	if out == nil {
		out = make(map[string]any, len(raw))
	}
	for i, p := range raw {
		k, v := p.Name, p.Value
		t, known := "", false
		if ps != nil {
			t, known = ps.props[k]
		}
		repeated := i > 0 && raw[i-1].Name == k
		if !known && (ps == nil || ps.raw["additionalProperties"] == false) {
			if !repeated {
				detail := "unknown " + in + " parameter " + strconv.Quote(k)
				if ps == nil {
					detail = "this service takes no " + in + " parameter " + strconv.Quote(k)
				}
				*issues = append(*issues, problem.NewIssue(problem.UnknownInput, in, k, v, detail))
			}
			continue
		}
		switch {
		case t == "array":
			items, _ := out[k].([]any)
			out[k] = append(items, coerce(ps.itemTypes[k], v))
		case repeated:
			if i < 2 || raw[i-2].Name != k { // one issue per name
				*issues = append(*issues, problem.NewIssue(problem.InvalidInput, in, k, nil, strconv.Quote(k)+" is given more than once"))
			}
			delete(out, k)
		default:
			out[k] = coerce(t, v)
		}
	}
	if ps != nil {
		ps.validate(in, out, issues)
	}
	return out
}

func coerce(t, v string) any {
	switch t {
	case "integer", "number":
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	case "boolean":
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return v
}

// validate checks v against the schema and turns failures into Belgif issues.
func (ps *paramSchema) validate(in string, v any, issues *[]problem.Issue) {
	err := ps.schema.Validate(v)
	if err == nil {
		return
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		*issues = append(*issues, problem.NewIssue(problem.SchemaViolation, in, "", nil, "invalid input"))
		return
	}
	for _, leaf := range leaves(ve) {
		*issues = append(*issues, toIssue(in, leaf, v)...)
	}
}

func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return []*jsonschema.ValidationError{ve}
	}
	var out []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

func toIssue(in string, ve *jsonschema.ValidationError, root any) []problem.Issue {
	base := ve.InstanceLocation
	name := func(extra ...string) string {
		parts := append(append([]string{}, base...), extra...)
		if in == "body" {
			return "/" + strings.Join(parts, "/") // JSON pointer into the body
		}
		return strings.Join(parts, ".")
	}
	switch k := ve.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		var out []problem.Issue
		for _, p := range k.Properties {
			out = append(out, problem.NewIssue(problem.UnknownInput, in, name(p), nil, fmt.Sprintf("unknown property %q", p)))
		}
		return out
	case *kind.Required:
		var out []problem.Issue
		for _, p := range k.Missing {
			out = append(out, problem.NewIssue(problem.RequiredInput, in, name(p), nil, fmt.Sprintf("%q is required", p)))
		}
		return out
	}
	return []problem.Issue{problem.NewIssue(problem.SchemaViolation, in, name(), valueAt(root, base), ve.ErrorKind.LocalizedString(printer))}
}

func valueAt(v any, path []string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	switch x := v.(type) {
	case map[string]any, []any:
		return nil // do not echo whole structures
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return nil
		}
	}
	return v
}

// dropRepeated removes issues from index from on that name an input already
// reported before it (a number out of range need not also fail its schema).
func dropRepeated(issues *[]problem.Issue, from int) {
	seen := map[string]bool{}
	for _, is := range (*issues)[:from] {
		seen[is.In+is.Name] = true
	}
	out := (*issues)[:from]
	for _, is := range (*issues)[from:] {
		if !seen[is.In+is.Name] {
			out = append(out, is)
		}
	}
	*issues = out
}

// applyDefaults fills in missing properties that declare a default.
func applyDefaults(schema map[string]any, v map[string]any) {
	props, _ := schema["properties"].(map[string]any)
	for name, p := range props {
		pm, ok := p.(map[string]any)
		if !ok {
			continue
		}
		cur, present := v[name]
		if !present {
			if d, has := pm["default"]; has {
				v[name] = deepCopy(d)
			}
			continue
		}
		if obj, ok := cur.(map[string]any); ok {
			applyDefaults(pm, obj)
		}
	}
}

// Request is a consumer request as the gateway read it off the wire.
type Request struct {
	Path    []Param           // path parameters, by the route's {names}
	Query   []Param           // in wire order; a parameter given twice appears twice
	Headers map[string]string // only filled when the flow reads input.headers
	Body    []byte
}

// Param is one path or query parameter.
type Param struct{ Name, Value string }

// Validate checks a request against the flow's input schemas and returns the
// expression input, or a badRequest problem listing every issue found.
func (p *Plan) Validate(req *Request) (expr.Input, *problem.Problem) {
	return p.validate(req, nil)
}

// validate is Validate filling the maps of a pooled run when r is not nil.
func (p *Plan) validate(req *Request, r *run) (expr.Input, *problem.Problem) {
	var pathMap, queryMap map[string]any
	if r != nil {
		if r.inPath == nil {
			r.inPath, r.inQuery = map[string]any{}, map[string]any{}
		}
		pathMap, queryMap = r.inPath, r.inQuery
	}
	var issues []problem.Issue
	in := expr.Input{Headers: empty}
	if req.Headers != nil {
		in.Headers = make(map[string]any, len(req.Headers))
		for k, v := range req.Headers {
			in.Headers[k] = v
		}
	}
	in.Query = p.input.query.params("query", req.Query, queryMap, &issues)
	if p.input.path != nil {
		in.Path = p.input.path.params("path", req.Path, pathMap, &issues)
	} else if len(req.Path) > 0 {
		in.Path = pathMap
		if in.Path == nil {
			in.Path = make(map[string]any, len(req.Path))
		}
		for _, x := range req.Path {
			in.Path[x.Name] = x.Value
		}
	} else {
		in.Path = empty
	}
	in.Body = p.input.body.decodeBody(req.Body, &issues)
	if n := len(issues); n > MaxIssues {
		return in, problem.BadRequest(fmt.Sprintf("the request has %d input issues; the first %d are listed", n, MaxIssues), issues[:MaxIssues]...)
	} else if n > 0 {
		return in, problem.BadRequest(fmt.Sprintf("the request has %d input issue(s)", n), issues...)
	}
	return in, nil
}

func (ps *paramSchema) decodeBody(b []byte, issues *[]problem.Issue) map[string]any {
	blank := len(bytes.TrimSpace(b)) == 0
	if ps == nil {
		if !blank {
			*issues = append(*issues, problem.NewIssue(problem.UnknownInput, "body", "", nil, "this service takes no request body"))
		}
		return empty
	}
	body := map[string]any{}
	if !blank {
		v, bad, err := decodeStrictJSON(b)
		if err != nil {
			*issues = append(*issues, problem.NewIssue(problem.SchemaViolation, "body", "", nil, "the body is not valid JSON"))
			return body
		}
		for _, e := range bad {
			*issues = append(*issues, problem.NewIssue(problem.InvalidInput, "body", e.pointer, nil, e.detail))
		}
		obj, ok := v.(map[string]any)
		if !ok {
			*issues = append(*issues, problem.NewIssue(problem.SchemaViolation, "body", "", nil, "the body must be a JSON object"))
			return body
		}
		body = obj
	}
	if ps.raw["additionalProperties"] == false {
		// Many unknown properties: report them without running the schema
		// validator, whose error tree would grow with each one.
		var unknown []string
		for k := range body {
			if _, ok := ps.props[k]; !ok {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > MaxIssues {
			slices.Sort(unknown)
			for _, k := range unknown {
				*issues = append(*issues, problem.NewIssue(problem.UnknownInput, "body", "/"+k, nil, "unknown property "+strconv.Quote(k)))
			}
			return body
		}
	}
	before := len(*issues)
	ps.validate("body", body, issues)
	dropRepeated(issues, before)
	applyDefaults(ps.raw, body)
	return body
}
