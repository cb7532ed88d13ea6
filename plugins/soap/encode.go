package soap

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/openfsb/fsb/sdk/jsonx"
	"github.com/valyala/fastjson"
)

var parsers fastjson.ParserPool

// encode builds the envelope for the JSON request in.
func (s *schema) encode(in []byte) ([]byte, error) {
	if len(in) > s.maxInput {
		return nil, fmt.Errorf("soap: encode: the request is %d bytes, above maxInput %d", len(in), s.maxInput)
	}
	p := parsers.Get()
	defer parsers.Put(p)
	if len(strings.TrimSpace(string(in))) == 0 {
		in = []byte("{}") // no input: no fields
	}
	if err := jsonx.Validate(in); err != nil {
		return nil, fmt.Errorf("soap: encode: the request is not JSON: %w", err)
	}
	v, err := p.ParseBytes(in)
	if err != nil {
		return nil, fmt.Errorf("soap: encode: the request is not JSON: %w", err)
	}
	if v.Type() == fastjson.TypeNull {
		v, _ = p.Parse("{}") // null: no fields
	}

	out := make([]byte, 0, 256+len(in)*2)
	out = append(out, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<soap:Envelope xmlns:soap="`...)
	out = append(out, s.envNS...)
	out = append(out, `"`...)
	if s.needXSI {
		out = append(out, ` xmlns:xsi="`+NSXSI+`"`...)
	}
	out = append(out, `><soap:Body>`...)
	e := encoder{s: s, out: out}
	if s.request == nil {
		// An input message without parts: an empty Body.
		if o, err := v.Object(); err != nil || o.Len() > 0 {
			return nil, fmt.Errorf("soap: encode: operation %s takes no request fields", s.operation)
		}
	} else if err := e.element(s.request, v, true); err != nil {
		return nil, fmt.Errorf("soap: encode: %w", err)
	}
	e.out = append(e.out, "</soap:Body></soap:Envelope>\n"...)
	return e.out, nil
}

type encoder struct {
	s   *schema
	out []byte
}

func (e *encoder) open(n *node, root bool) {
	e.out = append(e.out, '<')
	e.qname(n)
	if root {
		for _, p := range e.s.prefixes {
			e.out = append(e.out, " xmlns:"...)
			e.out = append(e.out, p.prefix...)
			e.out = append(e.out, `="`...)
			e.out = appendEscaped(e.out, p.ns, true)
			e.out = append(e.out, '"')
		}
	}
}

func (e *encoder) qname(n *node) {
	if n.ns != "" {
		e.out = append(e.out, e.s.prefix(n.ns)...)
		e.out = append(e.out, ':')
	}
	e.out = append(e.out, n.name...)
}

func (e *encoder) close(n *node) {
	e.out = append(e.out, "</"...)
	e.qname(n)
	e.out = append(e.out, '>')
}

// element writes one occurrence of n with the value v (not null).
func (e *encoder) element(n *node, v *fastjson.Value, root bool) error {
	e.open(n, root)
	if n.kind != kObject {
		e.out = append(e.out, '>')
		var err error
		if e.out, err = appendScalar(e.out, n, v); err != nil {
			return err
		}
		e.close(n)
		return nil
	}
	obj, err := v.Object()
	if err != nil {
		return fmt.Errorf("%s: want an object, got %s", n.path, v.Type())
	}
	var unknown string
	obj.Visit(func(k []byte, _ *fastjson.Value) {
		if unknown == "" && !hasChild(n.ct, k) {
			unknown = string(k)
		}
	})
	if unknown != "" {
		return fmt.Errorf("%s: field %q is not in the schema (it has %s)", n.path, unknown, childNames(n.ct))
	}
	e.out = append(e.out, '>')
	for _, c := range n.ct.children {
		if err := e.child(c, obj.Get(c.name)); err != nil {
			return err
		}
	}
	e.close(n)
	return nil
}

// child writes the occurrences of c given by v (nil when the key is absent).
func (e *encoder) child(c *node, v *fastjson.Value) error {
	if v == nil || v.Type() == fastjson.TypeNull {
		if v != nil && c.nillable {
			e.nilElement(c)
			return nil
		}
		if c.min > 0 {
			return fmt.Errorf("%s is required", c.path)
		}
		return nil
	}
	if c.max == 1 {
		if v.Type() == fastjson.TypeArray {
			return fmt.Errorf("%s occurs at most once: want a single value, not an array", c.path)
		}
		return e.element(c, v, false)
	}
	items := []*fastjson.Value{v}
	if v.Type() == fastjson.TypeArray {
		items, _ = v.Array()
	}
	if len(items) < c.min {
		return fmt.Errorf("%s occurs at least %d times, got %d", c.path, c.min, len(items))
	}
	if c.max > 0 && len(items) > c.max {
		return fmt.Errorf("%s occurs at most %d times, got %d", c.path, c.max, len(items))
	}
	for _, it := range items {
		if it.Type() == fastjson.TypeNull {
			if !c.nillable {
				return fmt.Errorf("%s: null in an array, and the element is not nillable", c.path)
			}
			e.nilElement(c)
			continue
		}
		if err := e.element(c, it, false); err != nil {
			return err
		}
	}
	return nil
}

func (e *encoder) nilElement(n *node) {
	e.out = append(e.out, '<')
	e.qname(n)
	e.out = append(e.out, ` xsi:nil="true"/>`...)
}

func hasChild(ct *ctype, k []byte) bool {
	for _, c := range ct.children {
		if c.name == string(k) {
			return true
		}
	}
	return false
}

func childNames(ct *ctype) string {
	if len(ct.children) == 0 {
		return "no fields"
	}
	names := make([]string, len(ct.children))
	for i, c := range ct.children {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// appendScalar writes v as the text of a simple element n.
func appendScalar(dst []byte, n *node, v *fastjson.Value) ([]byte, error) {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		switch n.kind {
		case kBool:
			switch strings.TrimSpace(string(b)) {
			case "true", "1":
				return append(dst, "true"...), nil
			case "false", "0":
				return append(dst, "false"...), nil
			}
			return dst, fmt.Errorf("%s: %q is not a boolean", n.path, b)
		case kInt:
			if !isInteger(string(b)) {
				return dst, fmt.Errorf("%s: %q is not an integer", n.path, b)
			}
		case kNum:
			if !isDecimal(string(b)) {
				return dst, fmt.Errorf("%s: %q is not a number", n.path, b)
			}
		}
		return appendEscaped(dst, string(b), false), nil
	case fastjson.TypeNumber:
		var scratch [32]byte
		t := v.MarshalTo(scratch[:0])
		switch n.kind {
		case kBool:
			return dst, fmt.Errorf("%s: %s is not a boolean", n.path, t)
		case kInt:
			if !isInteger(string(t)) {
				return dst, fmt.Errorf("%s: %s is not an integer", n.path, t)
			}
		case kNum:
			if n.xsd == "decimal" && strings.ContainsAny(string(t), "eE") {
				// xsd:decimal has no exponent
				f, err := strconv.ParseFloat(string(t), 64)
				if err != nil {
					return dst, fmt.Errorf("%s: %s is not a decimal", n.path, t)
				}
				return strconv.AppendFloat(dst, f, 'f', -1, 64), nil
			}
		}
		return append(dst, t...), nil
	case fastjson.TypeTrue, fastjson.TypeFalse:
		if n.kind != kBool && n.kind != kString {
			return dst, fmt.Errorf("%s: a boolean is not a %s", n.path, kindNames[n.kind])
		}
		if v.Type() == fastjson.TypeTrue {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	}
	return dst, fmt.Errorf("%s: want a %s, got %s", n.path, kindNames[n.kind], v.Type())
}

// isInteger reports an xsd:integer lexical form: optional sign, digits.
func isInteger(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isDecimal reports a decimal number, optionally with an exponent (the
// lexical forms xsd:decimal, float and double share, but INF and NaN).
func isDecimal(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	digits, dot, exp := 0, false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot && !exp:
			dot = true
		case (c == 'e' || c == 'E') && !exp && digits > 0:
			exp = true
			if i+1 < len(s) && (s[i+1] == '-' || s[i+1] == '+') {
				i++
			}
			if i+1 >= len(s) {
				return false
			}
		default:
			return false
		}
	}
	return digits > 0
}

// appendEscaped appends s escaped as XML text (attr: as an attribute value
// in double quotes). Characters XML 1.0 cannot carry, and invalid UTF-8,
// become U+FFFD, as encoding/xml does.
func appendEscaped(dst []byte, s string, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		var esc string
		switch {
		case r == '&':
			esc = "&amp;"
		case r == '<':
			esc = "&lt;"
		case r == '>':
			esc = "&gt;"
		case r == '"' && attr:
			esc = "&quot;"
		case r == '\r':
			esc = "&#xD;"
		case r == '\n' && attr:
			esc = "&#xA;"
		case r == '\t' && attr:
			esc = "&#x9;"
		case r == utf8.RuneError && w == 1 || !isXMLChar(r):
			esc = "\uFFFD"
		default:
			i += w
			continue
		}
		dst = append(dst, s[last:i]...)
		dst = append(dst, esc...)
		i += w
		last = i
	}
	return append(dst, s[last:]...)
}

func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}
