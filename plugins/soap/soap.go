// Package soap is the logic of the soap codec plugin: it turns a JSON request
// into a SOAP envelope (encode) and a SOAP response into JSON (decode),
// driven by an operation's schema, which the host derives from the WSDL
// (github.com/openfsb/fsb/engine/connector/soap) and passes as the step's
// configuration. It only reshapes bytes: the HTTP exchange is the host's.
//
// The configuration is one operation:
//
//	{
//	  "operation": "checkVat",
//	  "soap": "1.1",                       // or "1.2": the envelope namespace
//	  "request":  <element>,               // the Body's child sent by encode
//	  "response": <element>,               // the Body's child read by decode (absent: one-way)
//	  "types": {"Address": {"children": [<element>, ...]}},  // named complex types
//	  "limits": {"maxInput": 4194304, "maxDepth": 64, "maxElements": 100000, "maxReason": 256}
//	}
//
// and an element is
//
//	{"name": "countryCode", "ns": "urn:...", "type": "string", "xsd": "string",
//	 "min": 1, "max": 1, "nillable": false, "children": [...], "ref": "Address"}
//
// where type is string (the default), boolean, integer, number or object;
// an object's children are listed inline (an anonymous complex type) or in
// the types table under ref (a named one, which may be recursive); min and
// max default to 1, max -1 is unbounded; ns "" is an unqualified element,
// and an element without "ns" has its parent's (for the children of a named
// type, the type's "ns"); xsd defaults to the type's name.
//
// encode: the input is a JSON object whose keys are the request element's
// children (local names). Elements are written in schema order whatever the
// key order; a key the schema does not have, a missing required element, a
// value of the wrong type, or too many or too few repetitions is an error.
// null writes xsi:nil for a nillable element and is treated as absent
// otherwise. An element with max ≠ 1 takes an array (a single value counts
// as one). Text is XML-escaped.
//
// decode: the output is {"body": <value>} or, for a SOAP Fault (1.1 or
// 1.2), {"fault": {"code": ..., "subcodes": [...], "reason": ...}} with a
// sanitised reason capped at maxReason bytes. An element with max ≠ 1 is
// always an array ([] when none occurs); xsi:nil and empty non-string
// values are absent (null inside an array); booleans and numbers are typed
// from the schema; elements the schema does not know are skipped. Input
// that is not XML, holds a DTD, or exceeds a limit is an error.
package soap

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/openfsb/fsb/sdk/guest"
	"github.com/openfsb/fsb/sdk/jsonx"
	"github.com/valyala/fastjson"
)

// Envelope namespaces.
const (
	NS11 = "http://schemas.xmlsoap.org/soap/envelope/"
	NS12 = "http://www.w3.org/2003/05/soap-envelope"
	// NSXSI is the XML Schema instance namespace (xsi:nil).
	NSXSI = "http://www.w3.org/2001/XMLSchema-instance"
)

// Default limits, used when the configuration gives none.
const (
	DefaultMaxInput    = 4 << 20
	DefaultMaxDepth    = 64
	DefaultMaxElements = 100_000
	DefaultMaxReason   = 256
)

// Encode is the plugin's encode handler: JSON request → SOAP envelope.
func Encode(in []byte, cfg guest.Config) ([]byte, error) {
	s, err := schemaFrom(cfg)
	if err != nil {
		return nil, err
	}
	return s.encode(in)
}

// Decode is the plugin's decode handler: SOAP response → {"body": ...} or
// {"fault": ...}.
func Decode(in []byte, cfg guest.Config) ([]byte, error) {
	s, err := schemaFrom(cfg)
	if err != nil {
		return nil, err
	}
	return s.decode(in)
}

// Native runs the codec in the host's process. Its methods match the
// engine's soap.Codec interface; the context is not used (the codec does not
// block).
type Native struct{}

// Encode encodes in with the operation configuration cfg.
func (Native) Encode(_ context.Context, in, cfg []byte) ([]byte, error) {
	s, err := cachedSchema(cfg)
	if err != nil {
		return nil, err
	}
	return s.encode(in)
}

// Decode decodes in with the operation configuration cfg.
func (Native) Decode(_ context.Context, in, cfg []byte) ([]byte, error) {
	s, err := cachedSchema(cfg)
	if err != nil {
		return nil, err
	}
	return s.decode(in)
}

// kind is a JSON type an element maps to.
type kind uint8

const (
	kString kind = iota
	kBool
	kInt
	kNum
	kObject
)

var kindNames = [...]string{"string", "boolean", "integer", "number", "object"}

// node is one element of the schema.
type node struct {
	name, ns string
	kind     kind
	xsd      string // the XSD built-in type, when it is not the JSON type's name
	min, max int    // max -1: unbounded
	nillable bool
	ct       *ctype // kObject only
	path     string // for messages: checkVat.countryCode
}

// ctype is a complex type: an ordered list of child elements.
type ctype struct {
	children []*node
}

// schema is a parsed configuration.
type schema struct {
	operation   string
	envNS       string
	request     *node
	response    *node
	prefixes    []nsPrefix // of the request tree, in order of first use
	needXSI     bool       // the request tree has a nillable element
	maxInput    int
	maxDepth    int
	maxElements int
	maxReason   int
}

type nsPrefix struct{ ns, prefix string }

// cache holds the schemas of recent configurations: parsing one costs more
// than encoding a small request. Schemas are immutable once built, so they
// are shared freely. The cache is bounded; a full one is emptied.
var cache = struct {
	sync.Mutex
	m map[string]*schema
}{m: make(map[string]*schema)}

const cacheSize = 64

func cachedSchema(raw []byte) (*schema, error) {
	cache.Lock()
	s, ok := cache.m[string(raw)]
	cache.Unlock()
	if ok {
		return s, nil
	}
	s, err := parseSchema(raw)
	if err != nil {
		return nil, err
	}
	cache.Lock()
	if len(cache.m) >= cacheSize {
		clear(cache.m)
	}
	cache.m[string(raw)] = s
	cache.Unlock()
	return s, nil
}

func schemaFrom(cfg guest.Config) (*schema, error) {
	raw := cfg.Raw()
	if raw == nil {
		return nil, fmt.Errorf("soap: %w", cfg.Err())
	}
	return cachedSchema(raw)
}

// parseSchema reads a configuration (see the package comment).
func parseSchema(raw []byte) (*schema, error) {
	if err := jsonx.Validate(raw); err != nil {
		return nil, fmt.Errorf("soap: config: %w", err)
	}
	var p fastjson.Parser
	root, err := p.ParseBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("soap: config: %w", err)
	}
	s := &schema{
		operation:   string(root.GetStringBytes("operation")),
		maxInput:    limit(root, "maxInput", DefaultMaxInput),
		maxDepth:    limit(root, "maxDepth", DefaultMaxDepth),
		maxElements: limit(root, "maxElements", DefaultMaxElements),
		maxReason:   limit(root, "maxReason", DefaultMaxReason),
	}
	switch v := string(root.GetStringBytes("soap")); v {
	case "1.1":
		s.envNS = NS11
	case "1.2":
		s.envNS = NS12
	case "":
		return nil, errors.New(`soap: config soap is missing: "1.1" or "1.2"`)
	default:
		return nil, fmt.Errorf(`soap: config soap %q: want "1.1" or "1.2"`, v)
	}
	b := &builder{types: make(map[string]*ctype)}
	// Named types first (shells), so that refs resolve whatever the order
	// and recursive types point at themselves.
	if tv := root.Get("types"); tv != nil {
		to, err := tv.Object()
		if err != nil {
			return nil, errors.New("soap: config types: want an object")
		}
		to.Visit(func(k []byte, _ *fastjson.Value) { b.types[string(k)] = &ctype{} })
		to.Visit(func(k []byte, v *fastjson.Value) {
			if b.err != nil {
				return
			}
			ct := b.types[string(k)]
			ct.children = b.children(v.Get("children"), string(k), string(v.GetStringBytes("ns")), 1)
		})
	}
	if v := root.Get("request"); v != nil && v.Type() != fastjson.TypeNull {
		s.request = b.element(v, "", "", 1)
	}
	if v := root.Get("response"); v != nil && v.Type() != fastjson.TypeNull {
		s.response = b.element(v, "", "", 1)
	}
	if b.err != nil {
		return nil, fmt.Errorf("soap: config: %w", b.err)
	}
	if s.request != nil {
		s.collectNamespaces()
	}
	return s, nil
}

func limit(root *fastjson.Value, key string, def int) int {
	if n := root.GetInt("limits", key); n > 0 {
		return n
	}
	return def
}

// builder turns configuration JSON into nodes, keeping the first error.
type builder struct {
	types map[string]*ctype
	err   error
}

// maxSchemaDepth bounds the nesting of inline children in a configuration
// (named types are shared, not nested, so recursion does not count).
const maxSchemaDepth = 128

func (b *builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf(format, args...)
	}
}

func (b *builder) children(v *fastjson.Value, path, ns string, depth int) []*node {
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil
	}
	a, err := v.Array()
	if err != nil {
		b.fail("%s: children: want an array", path)
		return nil
	}
	out := make([]*node, 0, len(a))
	for _, c := range a {
		if n := b.element(c, path, ns, depth+1); n != nil {
			out = append(out, n)
		}
	}
	return out
}

// element reads an element; parentNS is the namespace it has when the
// configuration gives no "ns" (its parent's, or its named type's).
func (b *builder) element(v *fastjson.Value, parent, parentNS string, depth int) *node {
	if b.err != nil {
		return nil
	}
	if depth > maxSchemaDepth {
		b.fail("%s: elements nested deeper than %d", parent, maxSchemaDepth)
		return nil
	}
	if v.Type() != fastjson.TypeObject {
		b.fail("%s: an element must be an object", parent)
		return nil
	}
	n := &node{
		name:     string(v.GetStringBytes("name")),
		ns:       parentNS,
		xsd:      string(v.GetStringBytes("xsd")),
		min:      1,
		max:      1,
		nillable: v.GetBool("nillable"),
	}
	if v.Exists("ns") {
		n.ns = string(v.GetStringBytes("ns"))
	}
	n.path = n.name
	if parent != "" {
		n.path = parent + "." + n.name
	}
	if n.name == "" {
		b.fail("%s: an element has no name", parent)
		return nil
	}
	if m := v.Get("min"); m != nil {
		n.min = m.GetInt()
	}
	if m := v.Get("max"); m != nil {
		n.max = m.GetInt()
	}
	if n.min < 0 || n.max < -1 || n.max == 0 || n.max != -1 && n.min > n.max {
		b.fail("%s: min %d, max %d: want 0 ≤ min ≤ max, max ≥ 1 or -1 (unbounded)", n.path, n.min, n.max)
		return nil
	}
	t := string(v.GetStringBytes("type"))
	switch t {
	case "string", "":
		n.kind = kString
	case "boolean":
		n.kind = kBool
	case "integer":
		n.kind = kInt
	case "number":
		n.kind = kNum
	case "object":
		n.kind = kObject
		if ref := string(v.GetStringBytes("ref")); ref != "" {
			ct, ok := b.types[ref]
			if !ok {
				b.fail("%s: ref %q is not in types", n.path, ref)
				return nil
			}
			n.ct = ct
		} else {
			n.ct = &ctype{children: b.children(v.Get("children"), n.path, n.ns, depth)}
		}
	default:
		b.fail("%s: type %q: want string, boolean, integer, number or object", n.path, t)
		return nil
	}
	return n
}

// collectNamespaces assigns prefixes ns1, ns2, … to the request tree's
// namespaces in order of first use, and notes whether xsi is needed.
func (s *schema) collectNamespaces() {
	seen := make(map[*ctype]bool)
	var walk func(n *node)
	walk = func(n *node) {
		if n.ns != "" && s.prefix(n.ns) == "" {
			s.prefixes = append(s.prefixes, nsPrefix{n.ns, fmt.Sprintf("ns%d", len(s.prefixes)+1)})
		}
		if n.nillable {
			s.needXSI = true
		}
		if n.ct != nil && !seen[n.ct] {
			seen[n.ct] = true
			for _, c := range n.ct.children {
				walk(c)
			}
		}
	}
	walk(s.request)
}

func (s *schema) prefix(ns string) string {
	for _, p := range s.prefixes {
		if p.ns == ns {
			return p.prefix
		}
	}
	return ""
}
