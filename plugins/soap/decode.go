package soap

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/openfsb/fsb/sdk/jsonx"
)

// ErrNotXML is returned (wrapped) by decode for input that does not start
// like an XML document.
var ErrNotXML = errors.New("the response is not XML")

// decode turns a SOAP response into {"body": ...} or {"fault": ...}.
func (s *schema) decode(in []byte) ([]byte, error) {
	out, err := s.decodeEnvelope(in)
	if err != nil {
		return nil, fmt.Errorf("soap: decode: %w", err)
	}
	return out, nil
}

func (s *schema) decodeEnvelope(in []byte) ([]byte, error) {
	if len(in) > s.maxInput {
		return nil, fmt.Errorf("the response is %d bytes, above maxInput %d", len(in), s.maxInput)
	}
	in = bytes.TrimPrefix(in, []byte("\uFEFF")) // a byte order mark, which encoding/xml takes for text
	rest := bytes.TrimLeft(in, " \t\r\n")
	if len(rest) == 0 || rest[0] != '<' {
		return nil, ErrNotXML
	}
	d := &decoder{s: s, x: xml.NewDecoder(bytes.NewReader(in))}
	d.x.CharsetReader = charsetReader
	root, err := d.nextStart()
	if err != nil {
		return nil, err
	}
	env := root.Name.Space
	if root.Name.Local != "Envelope" || env != NS11 && env != NS12 {
		return nil, fmt.Errorf("the root element is %s, not a SOAP 1.1 or 1.2 Envelope", showName(root.Name))
	}
	out := make([]byte, 0, len(in)/2+32)
	found := false
	for {
		tok, err := d.next()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != env || t.Name.Local != "Body" || found {
				if err := d.skip(); err != nil {
					return nil, err
				}
				continue
			}
			found = true
			if out, err = d.body(out, env); err != nil {
				return nil, err
			}
		case xml.EndElement:
			if !found {
				return nil, errors.New("the envelope has no Body")
			}
			return out, d.end()
		}
	}
}

// end checks that nothing but white space, comments and processing
// instructions follows the root element.
func (d *decoder) end() error {
	for {
		tok, err := d.x.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("the response is not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return errors.New("text after the envelope")
			}
		case xml.StartElement:
			return errors.New("a second element after the envelope")
		case xml.Directive:
			return errDTD
		}
	}
}

var errDTD = errors.New("the response holds a DTD or another <! directive, which SOAP forbids")

// decoder reads one response.
type decoder struct {
	s        *schema
	x        *xml.Decoder
	depth    int
	elements int
	scope    []nsDecl // namespace declarations in scope, to resolve QName text
	text     []byte   // scratch for element text
}

type nsDecl struct {
	prefix, uri string
	depth       int
}

// next returns the next token, enforcing the limits and tracking
// namespace declarations.
func (d *decoder) next() (xml.Token, error) {
	tok, err := d.x.Token()
	if err == io.EOF {
		return nil, errors.New("the response ends inside the envelope")
	}
	if err != nil {
		return nil, fmt.Errorf("the response is not well-formed XML: %w", err)
	}
	switch t := tok.(type) {
	case xml.StartElement:
		d.depth++
		d.elements++
		if d.depth > d.s.maxDepth {
			return nil, fmt.Errorf("elements nested deeper than maxDepth %d", d.s.maxDepth)
		}
		if d.elements > d.s.maxElements {
			return nil, fmt.Errorf("more than maxElements %d elements", d.s.maxElements)
		}
		for _, a := range t.Attr {
			switch {
			case a.Name.Space == "xmlns":
				d.scope = append(d.scope, nsDecl{a.Name.Local, a.Value, d.depth})
			case a.Name.Space == "" && a.Name.Local == "xmlns":
				d.scope = append(d.scope, nsDecl{"", a.Value, d.depth})
			}
		}
	case xml.EndElement:
		for len(d.scope) > 0 && d.scope[len(d.scope)-1].depth == d.depth {
			d.scope = d.scope[:len(d.scope)-1]
		}
		d.depth--
	case xml.Directive:
		return nil, errDTD
	}
	return tok, nil
}

// nextStart returns the first element, skipping the prolog.
func (d *decoder) nextStart() (xml.StartElement, error) {
	for {
		tok, err := d.next()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return xml.StartElement{}, ErrNotXML
			}
		}
	}
}

// skip consumes the rest of the current element.
func (d *decoder) skip() error {
	for level := d.depth; ; {
		tok, err := d.next()
		if err != nil {
			return err
		}
		if _, ok := tok.(xml.EndElement); ok && d.depth < level {
			return nil
		}
	}
}

// textContent returns the current element's text; child elements are
// skipped. The result is valid until the next call.
func (d *decoder) textContent() ([]byte, error) {
	d.text = d.text[:0]
	for level := d.depth; ; {
		tok, err := d.next()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			d.text = append(d.text, t...)
		case xml.StartElement:
			if err := d.skip(); err != nil {
				return nil, err
			}
		case xml.EndElement:
			if d.depth < level {
				return d.text, nil
			}
		}
	}
}

// body decodes the Body's content into out.
func (d *decoder) body(out []byte, env string) ([]byte, error) {
	done := false
	for {
		tok, err := d.next()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if done {
				if err := d.skip(); err != nil {
					return nil, err
				}
				continue
			}
			done = true
			if t.Name.Space == env && t.Name.Local == "Fault" {
				if out, err = d.fault(out, env); err != nil {
					return nil, err
				}
				continue
			}
			r := d.s.response
			if r == nil {
				return nil, fmt.Errorf("the Body holds %s, and the operation has no response", showName(t.Name))
			}
			if t.Name.Local != r.name {
				return nil, fmt.Errorf("the Body holds %s, not %s", showName(t.Name), r.name)
			}
			out = append(out, `{"body":`...)
			n := len(out)
			var ok bool
			if out, ok, err = d.value(out, r, t); err != nil {
				return nil, err
			}
			if !ok {
				out = append(out[:n], "null"...)
			}
			out = append(out, '}')
		case xml.EndElement:
			if !done {
				out = append(out, `{"body":null}`...)
			}
			return out, nil
		}
	}
}

// value appends the JSON value of the element n that start opened, and
// reports whether there was one (false for xsi:nil and an empty
// non-string).
func (d *decoder) value(dst []byte, n *node, start xml.StartElement) ([]byte, bool, error) {
	if isNil(start) {
		return dst, false, d.skip()
	}
	if n.kind != kObject {
		t, err := d.textContent()
		if err != nil {
			return nil, false, err
		}
		return appendTyped(dst, n, t)
	}
	children := n.ct.children
	var small [8][]byte
	var smallCount [8]int
	slots, counts := small[:0], smallCount[:0]
	if len(children) <= len(small) {
		slots, counts = small[:len(children)], smallCount[:len(children)]
	} else {
		slots, counts = make([][]byte, len(children)), make([]int, len(children))
	}
	for level := d.depth; ; {
		tok, err := d.next()
		if err != nil {
			return nil, false, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			i := find(children, t.Name)
			if i < 0 {
				// Unknown elements are skipped: sources add fields.
				if err := d.skip(); err != nil {
					return nil, false, err
				}
				continue
			}
			c := children[i]
			if c.max == 1 && counts[i] > 0 {
				return nil, false, fmt.Errorf("%s occurs more than once, and the schema allows one", c.path)
			}
			buf := slots[i]
			if counts[i] > 0 {
				buf = append(buf, ',')
			}
			mark := len(buf)
			var ok bool
			if buf, ok, err = d.value(buf, c, t); err != nil {
				return nil, false, err
			}
			if !ok {
				buf = buf[:mark]
				if c.max != 1 {
					buf = append(buf, "null"...)
				}
			}
			slots[i] = buf
			counts[i]++
		case xml.EndElement:
			if d.depth >= level {
				continue
			}
			dst = append(dst, '{')
			first := true
			for i, c := range children {
				if c.max == 1 && len(slots[i]) == 0 {
					continue
				}
				if !first {
					dst = append(dst, ',')
				}
				first = false
				dst = jsonx.AppendString(dst, c.name)
				dst = append(dst, ':')
				if c.max != 1 {
					dst = append(dst, '[')
					dst = append(dst, slots[i]...)
					dst = append(dst, ']')
				} else {
					dst = append(dst, slots[i]...)
				}
			}
			return append(dst, '}'), true, nil
		}
	}
}

// find returns the index of the child named name: same namespace and local
// name, else the same local name (some sources qualify elements the schema
// leaves unqualified, or the reverse), else -1.
func find(children []*node, name xml.Name) int {
	loose := -1
	for i, c := range children {
		if c.name == name.Local {
			if c.ns == name.Space {
				return i
			}
			if loose < 0 {
				loose = i
			}
		}
	}
	return loose
}

func isNil(start xml.StartElement) bool {
	for _, a := range start.Attr {
		if a.Name.Local == "nil" && a.Name.Space == NSXSI {
			v := strings.TrimSpace(a.Value)
			return v == "true" || v == "1"
		}
	}
	return false
}

// appendTyped appends the text t of a simple element n as JSON.
func appendTyped(dst []byte, n *node, t []byte) ([]byte, bool, error) {
	if n.kind == kString {
		if n.xsd != "" && n.xsd != "string" && n.xsd != "normalizedString" {
			t = bytes.TrimSpace(t) // whitespace collapses in the other XSD string types
		}
		return jsonx.AppendString(dst, string(t)), true, nil
	}
	s := strings.TrimSpace(string(t))
	if s == "" {
		return dst, false, nil
	}
	switch n.kind {
	case kBool:
		switch s {
		case "true", "1":
			return append(dst, "true"...), true, nil
		case "false", "0":
			return append(dst, "false"...), true, nil
		}
		return nil, false, fmt.Errorf("%s: %q is not an xsd:boolean", n.path, truncate(s))
	case kInt:
		if !isInteger(s) {
			return nil, false, fmt.Errorf("%s: %q is not an integer", n.path, truncate(s))
		}
		return appendNumber(dst, s), true, nil
	default: // kNum
		switch s {
		case "INF", "+INF", "-INF", "NaN":
			// JSON has no such numbers: keep the XSD spelling as a string.
			return jsonx.AppendString(dst, s), true, nil
		}
		if !isDecimal(s) {
			return nil, false, fmt.Errorf("%s: %q is not a number", n.path, truncate(s))
		}
		return appendNumber(dst, s), true, nil
	}
}

// appendNumber appends an XSD number (isDecimal holds) as a JSON number:
// no '+', no leading zeros, a digit on each side of the point.
func appendNumber(dst []byte, s string) []byte {
	if s[0] == '+' {
		s = s[1:]
	} else if s[0] == '-' {
		dst = append(dst, '-')
		s = s[1:]
	}
	mant, exp := s, ""
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, exp = s[:i], s[i+1:]
	}
	intPart, frac := mant, ""
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		intPart, frac = mant[:i], mant[i+1:]
	}
	intPart = strings.TrimLeft(intPart, "0")
	if intPart == "" {
		intPart = "0"
	}
	dst = append(dst, intPart...)
	if frac != "" {
		dst = append(dst, '.')
		dst = append(dst, frac...)
	}
	if exp != "" {
		dst = append(dst, 'e')
		dst = append(dst, exp...)
	}
	return dst
}

func truncate(s string) string {
	if len(s) > 40 {
		return sanitize(s, 40)
	}
	return s
}

// fault decodes a Fault (SOAP 1.1 or 1.2) into {"fault": ...}.
func (d *decoder) fault(dst []byte, env string) ([]byte, error) {
	var code, reason string
	var subcodes []string
	for level := d.depth; ; {
		tok, err := d.next()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case env == NS11 && t.Name.Local == "faultcode":
				txt, err := d.textContent()
				if err != nil {
					return nil, err
				}
				code = d.faultCode(string(txt), env)
			case env == NS11 && t.Name.Local == "faultstring":
				txt, err := d.textContent()
				if err != nil {
					return nil, err
				}
				reason = string(txt)
			case env == NS12 && t.Name.Local == "Code":
				if code, subcodes, err = d.code12(env); err != nil {
					return nil, err
				}
			case env == NS12 && t.Name.Local == "Reason":
				if reason, err = d.reason12(); err != nil {
					return nil, err
				}
			default: // faultactor, detail, Node, Role, Detail: not passed on
				if err := d.skip(); err != nil {
					return nil, err
				}
			}
		case xml.EndElement:
			if d.depth >= level {
				continue
			}
			if code == "" {
				code = "unknown"
			}
			dst = append(dst, `{"fault":{"code":`...)
			dst = jsonx.AppendString(dst, code)
			if len(subcodes) > 0 {
				dst = append(dst, `,"subcodes":[`...)
				for i, sc := range subcodes {
					if i > 0 {
						dst = append(dst, ',')
					}
					dst = jsonx.AppendString(dst, sc)
				}
				dst = append(dst, ']')
			}
			dst = append(dst, `,"reason":`...)
			dst = jsonx.AppendString(dst, sanitize(reason, d.s.maxReason))
			return append(dst, "}}"...), nil
		}
	}
}

// maxSubcodes bounds the SOAP 1.2 subcodes kept.
const maxSubcodes = 8

// code12 reads a SOAP 1.2 Code: its Value and the Values of nested Subcodes.
func (d *decoder) code12(env string) (string, []string, error) {
	var code string
	var subs []string
	for level := d.depth; ; {
		tok, err := d.next()
		if err != nil {
			return "", nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "Value":
				txt, err := d.textContent()
				if err != nil {
					return "", nil, err
				}
				v := d.faultCode(string(txt), env)
				if code == "" {
					code = v
				} else if len(subs) < maxSubcodes {
					subs = append(subs, v)
				}
			case "Subcode":
				// descend: its Value and Subcode are read by this loop
			default:
				if err := d.skip(); err != nil {
					return "", nil, err
				}
			}
		case xml.EndElement:
			if d.depth < level {
				return code, subs, nil
			}
		}
	}
}

// reason12 reads a SOAP 1.2 Reason: the English Text, else the first.
func (d *decoder) reason12() (string, error) {
	var first, en string
	for level := d.depth; ; {
		tok, err := d.next()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local != "Text" {
				if err := d.skip(); err != nil {
					return "", err
				}
				continue
			}
			lang := ""
			for _, a := range t.Attr {
				if a.Name.Local == "lang" {
					lang = a.Value
				}
			}
			txt, err := d.textContent()
			if err != nil {
				return "", err
			}
			if first == "" {
				first = string(txt)
			}
			if en == "" && (lang == "en" || strings.HasPrefix(lang, "en-")) {
				en = string(txt)
			}
		case xml.EndElement:
			if d.depth < level {
				if en != "" {
					return en, nil
				}
				return first, nil
			}
		}
	}
}

// maxCode bounds a fault code's length.
const maxCode = 128

// faultCode turns a QName's text into a code: the local name for the
// envelope's own codes (Server, Client, Sender, Receiver, …), the text as
// written otherwise.
func (d *decoder) faultCode(qname, env string) string {
	qname = strings.TrimSpace(qname)
	prefix, local, ok := strings.Cut(qname, ":")
	if !ok {
		prefix, local = "", qname
	}
	if d.lookup(prefix) == env {
		return sanitize(local, maxCode)
	}
	return sanitize(qname, maxCode)
}

func (d *decoder) lookup(prefix string) string {
	for i := len(d.scope) - 1; i >= 0; i-- {
		if d.scope[i].prefix == prefix {
			return d.scope[i].uri
		}
	}
	return ""
}

// sanitize makes s safe to pass on: invalid UTF-8, control and format
// characters (bidirectional overrides, say) are dropped, white space runs
// become one space, the ends are trimmed, and the result is cut at max bytes
// on a character boundary, ending in "…" when cut.
func sanitize(s string, max int) string {
	var b strings.Builder
	b.Grow(min(len(s), max+8))
	space := false
	for i, r := range s {
		if b.Len() > max {
			break
		}
		if r == utf8.RuneError {
			if _, w := utf8.DecodeRuneInString(s[i:]); w == 1 {
				continue
			}
		}
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || !unicode.IsGraphic(r) {
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	out := b.String()
	if len(out) <= max {
		return out
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(out[cut]) {
		cut--
	}
	if cut < 0 {
		return ""
	}
	return strings.TrimRight(out[:cut], " ") + "…"
}

// charsetReader accepts the encodings a SOAP service may still declare
// besides UTF-8: US-ASCII and ISO-8859-1 (Latin-1).
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "us-ascii", "ascii":
		return in, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1":
		return &latin1Reader{r: in}, nil
	}
	return nil, fmt.Errorf("the response's encoding %q is not supported (UTF-8, US-ASCII and ISO-8859-1 are)", sanitize(label, 40))
}

type latin1Reader struct {
	r   io.Reader
	buf []byte
}

func (l *latin1Reader) Read(p []byte) (int, error) {
	// Each Latin-1 byte becomes at most 2 UTF-8 bytes.
	n := len(p) / 2
	if n == 0 {
		n = 1
		if len(p) < 2 {
			return 0, io.ErrShortBuffer
		}
	}
	if cap(l.buf) < n {
		l.buf = make([]byte, n)
	}
	m, err := l.r.Read(l.buf[:n])
	out := p[:0]
	for _, c := range l.buf[:m] {
		out = utf8.AppendRune(out, rune(c))
	}
	return len(out), err
}

func showName(n xml.Name) string {
	if n.Space == "" {
		return "<" + sanitize(n.Local, 64) + ">"
	}
	return "<" + sanitize(n.Local, 64) + "> in " + sanitize(n.Space, 128)
}
