package soap

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// schemaInfo is what the elements of one xsd:schema inherit.
type schemaInfo struct {
	tns       string
	qualified bool // elementFormDefault="qualified"
}

// xdef is a global definition of a schema.
type xdef struct {
	node   *xnode
	schema *schemaInfo
}

// xsdIndex holds the global definitions of every schema read, by QName.
type xsdIndex struct {
	elements, complexTypes, simpleTypes, groups map[xml.Name]*xdef
}

func newXSDIndex() *xsdIndex {
	return &xsdIndex{
		elements:     make(map[xml.Name]*xdef),
		complexTypes: make(map[xml.Name]*xdef),
		simpleTypes:  make(map[xml.Name]*xdef),
		groups:       make(map[xml.Name]*xdef),
	}
}

func isXSD(n *xnode, local string) bool { return n.name.Space == nsXSD && n.name.Local == local }

// schema indexes an xsd:schema and what it imports or includes. tns is the
// including schema's namespace for a schema without one (a "chameleon"
// include); "" otherwise.
func (r *reader) schema(s *xnode, tns string) error {
	info := &schemaInfo{tns: s.attr("targetNamespace"), qualified: s.attr("elementFormDefault") == "qualified"}
	if info.tns == "" {
		info.tns = tns
	}
	for _, k := range s.kids {
		if k.name.Space != nsXSD {
			continue
		}
		name := xml.Name{Space: info.tns, Local: k.attr("name")}
		var m map[xml.Name]*xdef
		switch k.name.Local {
		case "element":
			m = r.idx.elements
		case "complexType":
			m = r.idx.complexTypes
		case "simpleType":
			m = r.idx.simpleTypes
		case "group":
			m = r.idx.groups
		case "import", "include":
			loc := k.attr("schemaLocation")
			if loc == "" {
				continue // the namespace is expected among the schemas read
			}
			root, err := r.load(k, loc)
			if err != nil {
				return err
			}
			if root == nil {
				continue
			}
			if !isXSD(root, "schema") {
				return root.errorf("%s %q: the root element is <%s>, not xsd:schema", k.name.Local, loc, root.name.Local)
			}
			inherit := ""
			if k.name.Local == "include" {
				inherit = info.tns
			}
			if err := r.schema(root, inherit); err != nil {
				return err
			}
			continue
		case "redefine", "override":
			return k.errorf("xsd:%s is not supported", k.name.Local)
		default:
			continue
		}
		if name.Local == "" {
			return k.errorf("a global xsd:%s without a name", k.name.Local)
		}
		if _, dup := m[name]; !dup {
			m[name] = &xdef{node: k, schema: info}
		}
	}
	return nil
}

// builtins maps the XSD built-in types to JSON types. Types not listed
// (and anyType) map to string.
var builtins = map[string]string{
	"boolean": TypeBoolean,
	"integer": TypeInteger, "int": TypeInteger, "long": TypeInteger, "short": TypeInteger, "byte": TypeInteger,
	"nonNegativeInteger": TypeInteger, "positiveInteger": TypeInteger, "nonPositiveInteger": TypeInteger,
	"negativeInteger": TypeInteger, "unsignedLong": TypeInteger, "unsignedInt": TypeInteger,
	"unsignedShort": TypeInteger, "unsignedByte": TypeInteger,
	"decimal": TypeNumber, "float": TypeNumber, "double": TypeNumber,
}

// maxNesting bounds the conversion's recursion through groups, nested
// particles and type derivations; recursion through named types does not
// count (they are converted once).
const maxNesting = 64

// converter turns XSD declarations into Elements. Named complex types are
// converted once per port and shared through Ref.
type converter struct {
	idx      *xsdIndex
	types    map[string]*ComplexType
	keyOf    map[*xnode]string // complexType node → key in types
	simpleOf map[*xnode]*Element
	busy     map[*xnode]bool   // anonymous complex types being converted
	pending  map[*xnode]string // of those, the ones that refer to themselves
	// converting holds the named types whose children are being converted.
	converting map[string]bool
	warnings   []string
	depth      int
}

func newConverter(idx *xsdIndex) *converter {
	return &converter{
		idx:      idx,
		types:    make(map[string]*ComplexType),
		keyOf:    make(map[*xnode]string),
		simpleOf: make(map[*xnode]*Element),
		busy:     make(map[*xnode]bool),
		pending:  make(map[*xnode]string),

		converting: make(map[string]bool),
	}
}

func (c *converter) warn(msg string) {
	if !slices.Contains(c.warnings, msg) {
		c.warnings = append(c.warnings, msg)
	}
}

func (c *converter) enter(n *xnode) error {
	c.depth++
	if c.depth > maxNesting {
		return n.errorf("schema nested deeper than %d levels (a group that contains itself?)", maxNesting)
	}
	return nil
}

func (c *converter) leave() { c.depth-- }

// global converts a global element declaration: the Body's child.
func (c *converter) global(d *xdef) (*Element, error) {
	return c.element(d.node, d.schema, true)
}

// element converts an element declaration (global, local or a ref).
func (c *converter) element(n *xnode, s *schemaInfo, global bool) (*Element, error) {
	if err := c.enter(n); err != nil {
		return nil, err
	}
	defer c.leave()
	lo, hi := 1, 1
	if !global {
		var err error
		if lo, hi, err = occurs(n); err != nil {
			return nil, err
		}
	}
	if n.hasAttr("ref") {
		q, err := n.qname("ref")
		if err != nil {
			return nil, err
		}
		d := c.idx.elements[q]
		if d == nil {
			return nil, n.errorf("element ref %s is not declared", showQName(q))
		}
		e, err := c.element(d.node, d.schema, true)
		if err != nil {
			return nil, err
		}
		e.Min, e.Max = lo, hi
		return e, nil
	}
	e := &Element{Name: n.attr("name"), Min: lo, Max: hi}
	if e.Name == "" {
		return nil, n.errorf("an element without name or ref")
	}
	switch form := n.attr("form"); {
	case global, form == "qualified", form == "" && s.qualified:
		e.Namespace = s.tns
	}
	e.Nillable = n.attr("nillable") == "true" || n.attr("nillable") == "1"
	switch {
	case n.hasAttr("type"):
		q, err := n.qname("type")
		if err != nil {
			return nil, err
		}
		if err := c.typed(e, q, n); err != nil {
			return nil, err
		}
	case n.kid(nsXSD, "complexType") != nil:
		if err := c.anonymous(e, n.kid(nsXSD, "complexType"), s); err != nil {
			return nil, err
		}
	case n.kid(nsXSD, "simpleType") != nil:
		t, x, err := c.simple(n.kid(nsXSD, "simpleType"))
		if err != nil {
			return nil, err
		}
		e.Type, e.XSDType = t, x
	default:
		e.Type, e.XSDType = TypeString, "anyType"
		c.warn(fmt.Sprintf("element %s has no type (anyType): decoded as its text, sent as a string", e.Name))
	}
	return e, nil
}

// occurs reads minOccurs and maxOccurs (max -1: unbounded).
func occurs(n *xnode) (lo, hi int, err error) {
	lo, hi = 1, 1
	if v := n.attr("minOccurs"); v != "" {
		if lo, err = strconv.Atoi(strings.TrimSpace(v)); err != nil || lo < 0 {
			return 0, 0, n.errorf("minOccurs=%q: want a number ≥ 0", v)
		}
	}
	if v := strings.TrimSpace(n.attr("maxOccurs")); v != "" {
		if v == "unbounded" {
			hi = -1
		} else if hi, err = strconv.Atoi(v); err != nil || hi < 0 {
			return 0, 0, n.errorf("maxOccurs=%q: want a number or unbounded", v)
		}
	}
	if hi == 0 {
		return lo, 0, nil // never occurs: the caller drops it
	}
	if hi != -1 && lo > hi {
		return 0, 0, n.errorf("minOccurs %d is above maxOccurs %d", lo, hi)
	}
	return lo, hi, nil
}

// typed gives e the type named q.
func (c *converter) typed(e *Element, q xml.Name, at *xnode) error {
	if q.Space == nsXSD || q.Space == nsSOAPEnc {
		e.Type, e.XSDType = builtin(q.Local)
		if q.Local == "anyType" {
			c.warn(fmt.Sprintf("element %s is xsd:anyType: decoded as its text, sent as a string", e.Name))
		}
		return nil
	}
	if d := c.idx.complexTypes[q]; d != nil {
		return c.named(e, q, d)
	}
	if d := c.idx.simpleTypes[q]; d != nil {
		t, x, err := c.simple(d.node)
		if err != nil {
			return err
		}
		e.Type, e.XSDType = t, x
		return nil
	}
	return at.errorf("type %s of element %q is not defined in the WSDL's schemas", showQName(q), e.Name)
}

func builtin(local string) (typ, xsd string) {
	if t, ok := builtins[local]; ok {
		return t, local
	}
	return TypeString, local
}

// named gives e the named complex type d, converting it once.
func (c *converter) named(e *Element, q xml.Name, d *xdef) error {
	if s := c.simpleOf[d.node]; s != nil {
		e.Type, e.XSDType = s.Type, s.XSDType
		return nil
	}
	if key, ok := c.keyOf[d.node]; ok {
		e.Type, e.Ref = TypeObject, key
		return nil
	}
	if sc := d.node.kid(nsXSD, "simpleContent"); sc != nil {
		t, x, err := c.simpleContent(sc)
		if err != nil {
			return err
		}
		c.simpleOf[d.node] = &Element{Type: t, XSDType: x}
		e.Type, e.XSDType = t, x
		return nil
	}
	key := c.newKey(q.Local)
	ct := &ComplexType{Name: q.Local, Namespace: q.Space}
	c.keyOf[d.node], c.types[key] = key, ct // before the children: they may refer to it
	c.converting[key] = true
	kids, err := c.complex(d.node, d.schema, q.Local)
	delete(c.converting, key)
	if err != nil {
		delete(c.keyOf, d.node)
		delete(c.types, key)
		return err
	}
	ct.Children = kids
	if ct.Children == nil {
		ct.Children = []*Element{}
	}
	e.Type, e.Ref = TypeObject, key
	return nil
}

func (c *converter) newKey(name string) string {
	key := name
	for i := 2; c.types[key] != nil; i++ {
		key = name + "_" + strconv.Itoa(i)
	}
	return key
}

// anonymous gives e its inline complex type ct.
func (c *converter) anonymous(e *Element, ct *xnode, s *schemaInfo) error {
	if sc := ct.kid(nsXSD, "simpleContent"); sc != nil {
		t, x, err := c.simpleContent(sc)
		if err != nil {
			return err
		}
		e.Type, e.XSDType = t, x
		return nil
	}
	e.Type = TypeObject
	if c.busy[ct] {
		// The type contains itself (through a ref to its element): share it
		// through the types table like a named type.
		key, ok := c.pending[ct]
		if !ok {
			key = c.newKey(e.Name)
			c.pending[ct] = key
			c.types[key] = &ComplexType{Name: e.Name, Namespace: e.Namespace}
		}
		e.Ref = key
		return nil
	}
	c.busy[ct] = true
	kids, err := c.complex(ct, s, e.Name)
	delete(c.busy, ct)
	if err != nil {
		return err
	}
	if key, ok := c.pending[ct]; ok {
		delete(c.pending, ct)
		c.types[key].Children = kids
		e.Ref = key
		return nil
	}
	e.Children = kids
	if e.Children == nil {
		e.Children = []*Element{}
	}
	return nil
}

// complex returns the child elements of a complexType (without
// simpleContent).
func (c *converter) complex(ct *xnode, s *schemaInfo, owner string) ([]*Element, error) {
	if err := c.enter(ct); err != nil {
		return nil, err
	}
	defer c.leave()
	if ct.attr("mixed") == "true" {
		c.warn(fmt.Sprintf("type of %s has mixed content: its text is ignored", owner))
	}
	var out []*Element
	for _, k := range ct.kids {
		if k.name.Space != nsXSD {
			continue
		}
		switch k.name.Local {
		case "sequence", "all", "choice", "group":
			kids, err := c.particle(k, s, owner)
			if err != nil {
				return nil, err
			}
			out = append(out, kids...)
		case "complexContent":
			kids, err := c.complexContent(k, s, owner)
			if err != nil {
				return nil, err
			}
			out = append(out, kids...)
		case "attribute", "attributeGroup", "anyAttribute":
			c.warn(fmt.Sprintf("attributes of %s are not mapped (neither sent nor decoded)", owner))
		}
	}
	return out, nil
}

// complexContent returns the elements of a derived complex type: the base
// type's followed by the extension's, or the restriction's own.
func (c *converter) complexContent(cc *xnode, s *schemaInfo, owner string) ([]*Element, error) {
	der := cc.kid(nsXSD, "extension")
	ext := der != nil
	if !ext {
		der = cc.kid(nsXSD, "restriction")
	}
	if der == nil {
		return nil, cc.errorf("complexContent of %s has neither extension nor restriction", owner)
	}
	var out []*Element
	if ext {
		q, err := der.qname("base")
		if err != nil {
			return nil, err
		}
		if q.Space != nsXSD || q.Local != "anyType" {
			d := c.idx.complexTypes[q]
			if d == nil {
				return nil, der.errorf("base type %s of %s is not a complex type of the WSDL's schemas", showQName(q), owner)
			}
			var base Element
			if err := c.named(&base, q, d); err != nil {
				return nil, err
			}
			if base.Ref != "" {
				if c.converting[base.Ref] {
					return nil, der.errorf("%s extends %s, which contains it: recursive derivation is not supported", owner, showQName(q))
				}
				out = append(out, c.types[base.Ref].Children...)
			}
		}
	}
	kids, err := c.complex(der, s, owner)
	if err != nil {
		return nil, err
	}
	return append(out, kids...), nil
}

// particle flattens a sequence, all, choice or group reference into its
// elements, folding the particle's occurrence into theirs: an optional
// particle makes them optional, a repeated one makes them repeated, and a
// choice makes each branch optional (the codec does not check that only
// one branch is given). all is read as a sequence.
func (c *converter) particle(p *xnode, s *schemaInfo, owner string) ([]*Element, error) {
	if err := c.enter(p); err != nil {
		return nil, err
	}
	defer c.leave()
	lo, hi, err := occurs(p)
	if err != nil {
		return nil, err
	}
	if hi == 0 {
		return nil, nil
	}
	body := p
	if isXSD(p, "group") {
		q, err := p.qname("ref")
		if err != nil {
			return nil, err
		}
		g := c.idx.groups[q]
		if g == nil {
			return nil, p.errorf("group %s is not defined", showQName(q))
		}
		body, s = nil, g.schema
		for _, k := range g.node.kids {
			if isXSD(k, "sequence") || isXSD(k, "choice") || isXSD(k, "all") {
				body = k
			}
		}
		if body == nil {
			return nil, nil
		}
		inner, err := c.particle(body, s, owner)
		return fold(inner, lo, hi, false), err
	}
	var out []*Element
	for _, k := range p.kids {
		if k.name.Space != nsXSD {
			continue
		}
		switch k.name.Local {
		case "element":
			if _, max, err := occurs(k); err != nil {
				return nil, err
			} else if max == 0 {
				continue
			}
			e, err := c.element(k, s, false)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		case "sequence", "choice", "all", "group":
			kids, err := c.particle(k, s, owner)
			if err != nil {
				return nil, err
			}
			out = append(out, kids...)
		case "any":
			c.warn(fmt.Sprintf("xsd:any in %s: the elements it allows are skipped when decoding and cannot be sent", owner))
		}
	}
	return fold(out, lo, hi, isXSD(p, "choice")), nil
}

// fold applies a particle's occurrence to its elements (which are fresh
// copies the caller owns).
func fold(es []*Element, lo, hi int, choice bool) []*Element {
	for _, e := range es {
		if lo == 0 || choice {
			e.Min = 0
		} else {
			e.Min *= lo
		}
		switch {
		case hi == 1:
		case hi == -1 || e.Max == -1:
			e.Max = -1
		default:
			e.Max *= hi
		}
	}
	return es
}

// simple returns the JSON and XSD types a simpleType derives from.
func (c *converter) simple(st *xnode) (typ, xsd string, err error) {
	if err := c.enter(st); err != nil {
		return "", "", err
	}
	defer c.leave()
	if st.kid(nsXSD, "list") != nil || st.kid(nsXSD, "union") != nil {
		return TypeString, "string", nil
	}
	r := st.kid(nsXSD, "restriction")
	if r == nil {
		return "", "", st.errorf("simpleType without restriction, list or union")
	}
	if !r.hasAttr("base") {
		if inner := r.kid(nsXSD, "simpleType"); inner != nil {
			return c.simple(inner)
		}
		return "", "", r.errorf("restriction without base")
	}
	q, err := r.qname("base")
	if err != nil {
		return "", "", err
	}
	return c.simpleBase(q, r)
}

// simpleBase resolves the simple type named q.
func (c *converter) simpleBase(q xml.Name, at *xnode) (typ, xsd string, err error) {
	if q.Space == nsXSD || q.Space == nsSOAPEnc {
		t, x := builtin(q.Local)
		return t, x, nil
	}
	if d := c.idx.simpleTypes[q]; d != nil {
		return c.simple(d.node)
	}
	if d := c.idx.complexTypes[q]; d != nil {
		if sc := d.node.kid(nsXSD, "simpleContent"); sc != nil {
			if err := c.enter(d.node); err != nil {
				return "", "", err
			}
			defer c.leave()
			return c.simpleContent(sc)
		}
	}
	return "", "", at.errorf("simple type %s is not defined in the WSDL's schemas", showQName(q))
}

// simpleContent returns the type of a complex type with simple content (its
// attributes are not mapped).
func (c *converter) simpleContent(sc *xnode) (typ, xsd string, err error) {
	der := sc.kid(nsXSD, "extension")
	if der == nil {
		der = sc.kid(nsXSD, "restriction")
	}
	if der == nil {
		return "", "", sc.errorf("simpleContent has neither extension nor restriction")
	}
	if len(der.kids) > 0 {
		c.warn("attributes of simple-content types are not mapped")
	}
	q, err := der.qname("base")
	if err != nil {
		return "", "", err
	}
	return c.simpleBase(q, der)
}

// reachable returns the named types the elements refer to.
func (c *converter) reachable(roots ...*Element) map[string]*ComplexType {
	out := make(map[string]*ComplexType)
	var walk func(e *Element)
	walk = func(e *Element) {
		if e == nil {
			return
		}
		if e.Ref != "" {
			if _, seen := out[e.Ref]; seen {
				return
			}
			t := c.types[e.Ref]
			out[e.Ref] = t
			for _, k := range t.Children {
				walk(k)
			}
		}
		for _, k := range e.Children {
			walk(k)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
