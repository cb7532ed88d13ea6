package soap

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits of one WSDL or XSD file; a file beyond them is refused.
const (
	maxFileBytes    = 16 << 20
	maxFileDepth    = 128
	maxFileElements = 500_000
	maxFiles        = 64 // WSDL and schema files, imports included
)

// xnode is an element of a WSDL or XSD file, with its position and the
// namespace declarations in scope (attribute values such as type="tns:T"
// are QNames resolved against them).
type xnode struct {
	name  xml.Name
	attrs []xml.Attr // without xmlns declarations
	kids  []*xnode
	scope *nsScope
	file  string
	line  int
	col   int
}

type nsScope struct {
	parent *nsScope
	decls  map[string]string // prefix ("" for the default) → namespace
}

func (s *nsScope) lookup(prefix string) (string, bool) {
	for ; s != nil; s = s.parent {
		if ns, ok := s.decls[prefix]; ok {
			return ns, true
		}
	}
	if prefix == "xml" {
		return "http://www.w3.org/XML/1998/namespace", true
	}
	return "", prefix == ""
}

// attr returns the value of the unqualified attribute local, or "".
func (n *xnode) attr(local string) string {
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

func (n *xnode) hasAttr(local string) bool {
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return true
		}
	}
	return false
}

// qname resolves the QName in attribute local.
func (n *xnode) qname(local string) (xml.Name, error) {
	v := strings.TrimSpace(n.attr(local))
	if v == "" {
		return xml.Name{}, nil
	}
	prefix, name, ok := strings.Cut(v, ":")
	if !ok {
		prefix, name = "", v
	}
	ns, found := n.scope.lookup(prefix)
	if !found {
		return xml.Name{}, n.errorf("%s=%q: namespace prefix %q is not declared", local, v, prefix)
	}
	return xml.Name{Space: ns, Local: name}, nil
}

// kid returns the first child in namespace ns named local, or nil.
func (n *xnode) kid(ns, local string) *xnode {
	for _, k := range n.kids {
		if k.name.Space == ns && k.name.Local == local {
			return k
		}
	}
	return nil
}

// posError is an error at a place in a file: file:line:col: message.
type posError struct {
	file      string
	line, col int
	msg       string
}

func (e *posError) Error() string {
	if e.line == 0 {
		return e.file + ": " + e.msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.file, e.line, e.col, e.msg)
}

func (n *xnode) errorf(format string, args ...any) error {
	return &posError{file: n.file, line: n.line, col: n.col, msg: fmt.Sprintf(format, args...)}
}

// parseTree reads a whole XML file into a tree of xnodes. Text content is
// dropped: WSDL and XSD carry their meaning in elements and attributes.
func parseTree(file string, data []byte) (*xnode, error) {
	fail := func(line, col int, format string, args ...any) error {
		return &posError{file: file, line: line, col: col, msg: fmt.Sprintf(format, args...)}
	}
	if len(data) > maxFileBytes {
		return nil, fail(0, 0, "%d bytes, above the limit of %d", len(data), maxFileBytes)
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		if strings.EqualFold(label, "us-ascii") {
			return in, nil
		}
		return nil, fmt.Errorf("encoding %q is not supported: save the file as UTF-8", label)
	}
	var root *xnode
	var stack []*xnode
	elements := 0
	for {
		off := d.InputOffset()
		line, col := d.InputPos()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			l, c := d.InputPos()
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, fail(l, c, "not well-formed XML: %s", se.Msg)
			}
			return nil, fail(l, c, "not well-formed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			elements++
			if elements > maxFileElements {
				return nil, fail(line, col, "more than %d elements", maxFileElements)
			}
			if len(stack) >= maxFileDepth {
				return nil, fail(line, col, "elements nested deeper than %d", maxFileDepth)
			}
			if root != nil && len(stack) == 0 {
				return nil, fail(line, col, "a second root element")
			}
			var parent *nsScope
			if len(stack) > 0 {
				parent = stack[len(stack)-1].scope
			}
			n := &xnode{name: t.Name, file: file, scope: parent}
			// The position of the '<': InputPos after the previous token
			// may sit before white space, so skip to the tag's line.
			n.line, n.col = tagPos(data, off, d.InputOffset(), line, col)
			var decls map[string]string
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns":
					if decls == nil {
						decls = make(map[string]string)
					}
					decls[a.Name.Local] = a.Value
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					if decls == nil {
						decls = make(map[string]string)
					}
					decls[""] = a.Value
				default:
					n.attrs = append(n.attrs, a)
				}
			}
			if decls != nil {
				n.scope = &nsScope{parent: parent, decls: decls}
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.Directive:
			if bytes.HasPrefix(bytes.TrimSpace(t), []byte("DOCTYPE")) {
				return nil, fail(line, col, "a DTD (<!DOCTYPE>) is not allowed in a WSDL or schema")
			}
		}
	}
	if root == nil {
		return nil, fail(0, 0, "no root element: not an XML document")
	}
	return root, nil
}

// tagPos returns the line and column of the first '<' in data[start:end],
// where start is at line:col.
func tagPos(data []byte, start, end int64, line, col int) (int, int) {
	if start < 0 || end > int64(len(data)) {
		return line, col
	}
	for i := start; i < end; i++ {
		switch data[i] {
		case '<':
			return line, col
		case '\n':
			line, col = line+1, 1
		default:
			col++
		}
	}
	return line, col
}
