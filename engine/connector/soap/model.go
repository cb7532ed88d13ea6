package soap

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/openfsb/fsb/sdk/jsonx"
)

// Version is a SOAP version.
type Version string

// SOAP versions.
const (
	SOAP11 Version = "1.1"
	SOAP12 Version = "1.2"
)

// JSON types an element maps to (Element.Type).
const (
	TypeString  = "string"
	TypeBoolean = "boolean"
	TypeInteger = "integer"
	TypeNumber  = "number"
	TypeObject  = "object"
)

// Element is an XML element of a message, as the codec sees it. The tree of
// an operation's request and response, with the Types they refer to, is the
// codec's configuration (see plugins/soap).
type Element struct {
	Name      string `json:"name"`
	Namespace string `json:"ns,omitempty"` // "" for an unqualified element
	// Type is the JSON type: string, boolean, integer, number or object.
	Type string `json:"type"`
	// XSDType is the XSD built-in type a simple element's type derives
	// from (date, int, …); empty for objects.
	XSDType  string `json:"xsd,omitempty"`
	Min      int    `json:"min"`
	Max      int    `json:"max"` // -1: unbounded
	Nillable bool   `json:"nillable,omitempty"`
	// Ref names the complex type in Operation.Types an object has (a named
	// complexType, or an anonymous one that refers to itself); Children
	// lists an anonymous complex type's elements inline.
	Ref      string     `json:"ref,omitempty"`
	Children []*Element `json:"children,omitempty"`
}

// Repeated reports whether the element maps to a JSON array.
func (e *Element) Repeated() bool { return e.Max != 1 }

// ComplexType is a complex type shared by several elements (or by itself).
type ComplexType struct {
	Name      string     `json:"name"`
	Namespace string     `json:"ns,omitempty"`
	Children  []*Element `json:"children"`
}

// Operation is one callable operation of a SOAP port.
type Operation struct {
	Name    string
	Service string
	Port    string
	Version Version
	Address string // the port's soap:address location
	Action  string // SOAPAction ("" is valid)
	// Request and Response are the elements the Body holds; Request is nil
	// when the input message has no part, Response for a one-way operation.
	Request  *Element
	Response *Element
	// Types are the named complex types Request and Response refer to.
	Types map[string]*ComplexType
	// Warnings say what of the WSDL the codec leaves out (attributes,
	// xsd:any, SOAP headers, …).
	Warnings []string
}

// Limits bound what the codec reads; zero fields take the codec's defaults
// (4 MiB input, depth 64, 100,000 elements, 256-byte fault reasons).
type Limits struct {
	MaxInput    int `json:"maxInput,omitempty"`
	MaxDepth    int `json:"maxDepth,omitempty"`
	MaxElements int `json:"maxElements,omitempty"`
	MaxReason   int `json:"maxReason,omitempty"`
}

// CodecConfig returns the configuration of the codec's encode and decode
// operations for op, with the limits l: its schema trees as compact JSON
// (plugins/soap documents the format). To keep it small, an element's "ns"
// is written only where it differs from its parent's (a named type's
// children inherit the type's), and min, max and xsd only when they are
// not 1, 1 and the JSON type's own name.
func (op *Operation) CodecConfig(l Limits) ([]byte, error) {
	b := []byte(`{"operation":`)
	b = jsonx.AppendString(b, op.Name)
	b = append(b, `,"soap":`...)
	b = jsonx.AppendString(b, string(op.Version))
	if op.Request != nil {
		b = append(b, `,"request":`...)
		b = appendElement(b, op.Request, "")
	}
	if op.Response != nil {
		b = append(b, `,"response":`...)
		b = appendElement(b, op.Response, "")
	}
	if len(op.Types) > 0 {
		b = append(b, `,"types":{`...)
		for i, k := range slices.Sorted(maps.Keys(op.Types)) {
			if i > 0 {
				b = append(b, ',')
			}
			t := op.Types[k]
			b = jsonx.AppendString(b, k)
			b = append(b, `:{"ns":`...)
			b = jsonx.AppendString(b, t.Namespace)
			b = append(b, `,"children":`...)
			b = appendChildren(b, t.Children, t.Namespace)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	if l != (Limits{}) {
		lj, err := json.Marshal(l)
		if err != nil {
			return nil, fmt.Errorf("operation %q: codec config: %w", op.Name, err)
		}
		b = append(b, `,"limits":`...)
		b = append(b, lj...)
	}
	return append(b, '}'), nil
}

func appendElement(b []byte, e *Element, parentNS string) []byte {
	b = append(b, `{"name":`...)
	b = jsonx.AppendString(b, e.Name)
	if e.Namespace != parentNS {
		b = append(b, `,"ns":`...)
		b = jsonx.AppendString(b, e.Namespace)
	}
	b = append(b, `,"type":`...)
	b = jsonx.AppendString(b, e.Type)
	if e.XSDType != "" && e.XSDType != e.Type {
		b = append(b, `,"xsd":`...)
		b = jsonx.AppendString(b, e.XSDType)
	}
	if e.Min != 1 {
		b = append(b, `,"min":`...)
		b = strconv.AppendInt(b, int64(e.Min), 10)
	}
	if e.Max != 1 {
		b = append(b, `,"max":`...)
		b = strconv.AppendInt(b, int64(e.Max), 10)
	}
	if e.Nillable {
		b = append(b, `,"nillable":true`...)
	}
	if e.Ref != "" {
		b = append(b, `,"ref":`...)
		b = jsonx.AppendString(b, e.Ref)
	} else if len(e.Children) > 0 {
		b = append(b, `,"children":`...)
		b = appendChildren(b, e.Children, e.Namespace)
	}
	return append(b, '}')
}

func appendChildren(b []byte, kids []*Element, ns string) []byte {
	b = append(b, '[')
	for i, k := range kids {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendElement(b, k, ns)
	}
	return append(b, ']')
}

// RequestField returns the element a JSON field path of the request names:
// keys separated by dots ("order.lines.quantity"); a repeated element's
// items are reached through it without an index. The error says which key
// is missing and what the object has.
func (op *Operation) RequestField(path string) (*Element, error) {
	return op.field("request", op.Request, path)
}

// ResponseField is RequestField for the decoded response.
func (op *Operation) ResponseField(path string) (*Element, error) {
	return op.field("response", op.Response, path)
}

func (op *Operation) field(what string, root *Element, path string) (*Element, error) {
	if root == nil {
		return nil, fmt.Errorf("operation %q has no %s", op.Name, what)
	}
	e := root
	if path == "" {
		return e, nil
	}
	done := ""
	for key := range strings.SplitSeq(path, ".") {
		kids := op.children(e)
		if e.Type != TypeObject {
			return nil, fmt.Errorf("operation %q %s: %q is a %s, it has no field %q", op.Name, what, done, e.Type, key)
		}
		i := slices.IndexFunc(kids, func(c *Element) bool { return c.Name == key })
		if i < 0 {
			at := ""
			if done != "" {
				at = " in " + done
			}
			return nil, fmt.Errorf("operation %q %s has no field %q%s (it has %s)", op.Name, what, key, at, names(kids))
		}
		e = kids[i]
		if done != "" {
			done += "."
		}
		done += key
	}
	return e, nil
}

// children returns an object element's child elements.
func (op *Operation) children(e *Element) []*Element {
	if e.Ref != "" {
		if t := op.Types[e.Ref]; t != nil {
			return t.Children
		}
		return nil
	}
	return e.Children
}

func names(kids []*Element) string {
	if len(kids) == 0 {
		return "no fields"
	}
	s := make([]string, len(kids))
	for i, k := range kids {
		s[i] = k.Name
	}
	return strings.Join(s, ", ")
}

// Port is a SOAP endpoint of a service: one binding at one address.
type Port struct {
	Service string
	Name    string
	Version Version
	Address string
	ops     map[string]*Operation
	bad     map[string]error // operations the codec cannot handle, and why
}

// Operations lists the names of the port's usable operations, sorted.
func (p *Port) Operations() []string {
	out := make([]string, 0, len(p.ops))
	for n := range p.ops {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Operation returns the operation called name, or an error saying why it
// cannot be used (unknown, or relying on a feature that is not supported).
func (p *Port) Operation(name string) (*Operation, error) {
	if op, ok := p.ops[name]; ok {
		return op, nil
	}
	if err, ok := p.bad[name]; ok {
		return nil, err
	}
	return nil, fmt.Errorf("port %q has no operation %q (it has %s)", p.Name, name, strings.Join(p.Operations(), ", "))
}
