package soap

import (
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Namespaces of WSDL 1.1, its SOAP bindings and XML Schema.
const (
	nsWSDL     = "http://schemas.xmlsoap.org/wsdl/"
	nsWSDL20   = "http://www.w3.org/ns/wsdl"
	nsSOAPBind = "http://schemas.xmlsoap.org/wsdl/soap/"
	nsSOAP12   = "http://schemas.xmlsoap.org/wsdl/soap12/"
	nsXSD      = "http://www.w3.org/2001/XMLSchema"
	nsSOAPEnc  = "http://schemas.xmlsoap.org/soap/encoding/"
	httpTrans  = "http://schemas.xmlsoap.org/soap/http"
)

// WSDL is a read WSDL 1.1 document: its SOAP ports and their operations.
type WSDL struct {
	File  string
	Ports []*Port // SOAP 1.1 and 1.2 ports, in document order
	// skipped holds the SOAP ports that cannot be used, and why.
	skipped map[string]error
}

// Port returns the port called name. With name "" it returns the only
// port, and an error naming the ports when there are several.
func (w *WSDL) Port(name string) (*Port, error) {
	if name == "" {
		if len(w.Ports) == 1 {
			return w.Ports[0], nil
		}
		return nil, fmt.Errorf("%s: %d SOAP ports (%s): name the one to use", w.File, len(w.Ports), w.portNames())
	}
	for _, p := range w.Ports {
		if p.Name == name {
			return p, nil
		}
	}
	if err, ok := w.skipped[name]; ok {
		return nil, err
	}
	return nil, fmt.Errorf("%s: no SOAP port %q (it has %s)", w.File, name, w.portNames())
}

func (w *WSDL) portNames() string {
	s := make([]string, len(w.Ports))
	for i, p := range w.Ports {
		s[i] = fmt.Sprintf("%s (SOAP %s)", p.Name, p.Version)
	}
	return strings.Join(s, ", ")
}

// Load reads the WSDL file at path, with the schemas and WSDL documents it
// imports (xsd:import, xsd:include, wsdl:import) from relative locations,
// resolved against the importing file's folder. Remote locations (http:)
// are refused: save them next to the WSDL.
func Load(path string) (*WSDL, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wsdl: %w", err)
	}
	return read(path, data, readLocal)
}

// Parse reads a WSDL document held in data; file names it in errors. A
// document that imports other files by location cannot be parsed this way:
// use Load.
func Parse(file string, data []byte) (*WSDL, error) {
	return read(file, data, nil)
}

func readLocal(from, location string) (string, []byte, error) {
	if strings.Contains(location, "://") || strings.HasPrefix(location, "urn:") {
		return "", nil, fmt.Errorf("location %q is remote: only files relative to the WSDL are read (save it beside the WSDL)", location)
	}
	if filepath.IsAbs(location) {
		return "", nil, fmt.Errorf("location %q is absolute: use a path relative to the importing file", location)
	}
	p := filepath.Join(filepath.Dir(from), filepath.FromSlash(location))
	data, err := os.ReadFile(p)
	if err != nil {
		return "", nil, fmt.Errorf("location %q: %w", location, errors.Unwrap(err))
	}
	return p, data, nil
}

// reader gathers the definitions of a WSDL and what it imports.
type reader struct {
	open      func(from, location string) (string, []byte, error) // nil: no imports by location
	files     map[string]bool
	messages  map[xml.Name]*xnode
	portTypes map[xml.Name]*xnode
	bindings  map[xml.Name]*xnode
	services  []*xnode
	idx       *xsdIndex
}

func read(file string, data []byte, open func(from, location string) (string, []byte, error)) (*WSDL, error) {
	r := &reader{
		open:      open,
		files:     map[string]bool{file: true},
		messages:  make(map[xml.Name]*xnode),
		portTypes: make(map[xml.Name]*xnode),
		bindings:  make(map[xml.Name]*xnode),
		idx:       newXSDIndex(),
	}
	root, err := parseTree(file, data)
	if err != nil {
		return nil, err
	}
	if err := r.definitions(root); err != nil {
		return nil, err
	}
	w := &WSDL{File: file, skipped: make(map[string]error)}
	var firstErr error
	for _, svc := range r.services {
		for _, pn := range svc.kids {
			if pn.name != (xml.Name{Space: nsWSDL, Local: "port"}) {
				continue
			}
			p, err := r.port(svc, pn)
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				w.skipped[pn.attr("name")] = err
				continue
			}
			if p != nil {
				w.Ports = append(w.Ports, p)
			}
		}
	}
	if len(w.Ports) == 0 {
		if firstErr != nil {
			return nil, firstErr
		}
		return nil, root.errorf("no SOAP 1.1 or 1.2 port (a wsdl:port with soap:address or soap12:address) in any wsdl:service")
	}
	return w, nil
}

// definitions reads a wsdl:definitions element.
func (r *reader) definitions(root *xnode) error {
	switch root.name {
	case xml.Name{Space: nsWSDL, Local: "definitions"}:
	case xml.Name{Space: nsWSDL20, Local: "description"}:
		return root.errorf("WSDL 2.0 is not supported: only WSDL 1.1 (wsdl:definitions)")
	default:
		return root.errorf("root element <%s> in %q: not a WSDL 1.1 document (want definitions in %s)", root.name.Local, root.name.Space, nsWSDL)
	}
	tns := root.attr("targetNamespace")
	for _, k := range root.kids {
		if k.name.Space != nsWSDL {
			continue
		}
		switch k.name.Local {
		case "import":
			if err := r.wsdlImport(k); err != nil {
				return err
			}
		case "types":
			for _, s := range k.kids {
				if s.name == (xml.Name{Space: nsXSD, Local: "schema"}) {
					if err := r.schema(s, ""); err != nil {
						return err
					}
				}
			}
		case "message":
			r.messages[xml.Name{Space: tns, Local: k.attr("name")}] = k
		case "portType":
			r.portTypes[xml.Name{Space: tns, Local: k.attr("name")}] = k
		case "binding":
			r.bindings[xml.Name{Space: tns, Local: k.attr("name")}] = k
		case "service":
			r.services = append(r.services, k)
		}
	}
	return nil
}

// load reads an imported file once; it returns nil for one read before.
func (r *reader) load(at *xnode, location string) (*xnode, error) {
	if r.open == nil {
		return nil, at.errorf("imports %q by location: read the WSDL from its file (Load) so that relative locations resolve", location)
	}
	name, data, err := r.open(at.file, location)
	if err != nil {
		return nil, at.errorf("%v", err)
	}
	if r.files[name] {
		return nil, nil
	}
	if len(r.files) >= maxFiles {
		return nil, at.errorf("more than %d files imported", maxFiles)
	}
	r.files[name] = true
	return parseTree(name, data)
}

func (r *reader) wsdlImport(k *xnode) error {
	loc := k.attr("location")
	if loc == "" {
		return nil
	}
	root, err := r.load(k, loc)
	if err != nil || root == nil {
		return err
	}
	if root.name == (xml.Name{Space: nsXSD, Local: "schema"}) {
		return r.schema(root, "")
	}
	return r.definitions(root)
}

// port reads one wsdl:port; it returns nil, nil for a port that is not
// SOAP (an HTTP binding, say).
func (r *reader) port(svc, pn *xnode) (*Port, error) {
	p := &Port{Service: svc.attr("name"), Name: pn.attr("name"), ops: make(map[string]*Operation), bad: make(map[string]error)}
	var bindNS string
	if a := pn.kid(nsSOAPBind, "address"); a != nil {
		p.Version, bindNS, p.Address = SOAP11, nsSOAPBind, a.attr("location")
	} else if a := pn.kid(nsSOAP12, "address"); a != nil {
		p.Version, bindNS, p.Address = SOAP12, nsSOAP12, a.attr("location")
	} else {
		return nil, nil
	}
	bq, err := pn.qname("binding")
	if err != nil {
		return nil, err
	}
	b := r.bindings[bq]
	if b == nil {
		return nil, pn.errorf("port %q: binding %s is not defined", p.Name, showQName(bq))
	}
	sb := b.kid(bindNS, "binding")
	if sb == nil {
		return nil, b.errorf("binding %q has no soap binding element for SOAP %s (the port's address is SOAP %s)", b.attr("name"), p.Version, p.Version)
	}
	if t := sb.attr("transport"); t != "" && t != httpTrans {
		return nil, sb.errorf("binding %q: transport %q is not supported (only HTTP)", b.attr("name"), t)
	}
	style := sb.attr("style")
	ptq, err := b.qname("type")
	if err != nil {
		return nil, err
	}
	pt := r.portTypes[ptq]
	if pt == nil {
		return nil, b.errorf("binding %q: portType %s is not defined", b.attr("name"), showQName(ptq))
	}
	conv := newConverter(r.idx)
	for _, bo := range b.kids {
		if bo.name != (xml.Name{Space: nsWSDL, Local: "operation"}) {
			continue
		}
		name := bo.attr("name")
		op, err := r.operation(p, conv, bindNS, style, bo, pt)
		if err != nil {
			p.bad[name] = err
			continue
		}
		p.ops[name] = op
	}
	return p, nil
}

func (r *reader) operation(p *Port, conv *converter, bindNS, style string, bo, pt *xnode) (*Operation, error) {
	name := bo.attr("name")
	op := &Operation{Name: name, Service: p.Service, Port: p.Name, Version: p.Version, Address: p.Address}
	if so := bo.kid(bindNS, "operation"); so != nil {
		op.Action = so.attr("soapAction")
		if s := so.attr("style"); s != "" {
			style = s
		}
	}
	if style == "rpc" {
		return nil, bo.errorf("operation %q: rpc style is not supported (document/literal only)", name)
	}
	var po *xnode
	for _, k := range pt.kids {
		if k.name == (xml.Name{Space: nsWSDL, Local: "operation"}) && k.attr("name") == name {
			po = k
			break
		}
	}
	if po == nil {
		return nil, bo.errorf("operation %q is not in portType %q", name, pt.attr("name"))
	}
	conv.warnings = nil
	var err error
	if op.Request, err = r.message(conv, bindNS, bo, po, "input"); err != nil {
		return nil, err
	}
	if op.Response, err = r.message(conv, bindNS, bo, po, "output"); err != nil {
		return nil, err
	}
	op.Types = conv.reachable(op.Request, op.Response)
	op.Warnings = conv.warnings
	return op, nil
}

// message returns the Body element of the operation's input or output.
func (r *reader) message(conv *converter, bindNS string, bo, po *xnode, dir string) (*Element, error) {
	name := bo.attr("name")
	pm := po.kid(nsWSDL, dir)
	if pm == nil {
		if dir == "input" {
			return nil, po.errorf("operation %q has no input: notification and solicit-response operations are not supported", name)
		}
		return nil, nil // one-way
	}
	var parts string
	hasParts := false
	if bm := bo.kid(nsWSDL, dir); bm != nil {
		if body := bm.kid(bindNS, "body"); body != nil {
			if u := body.attr("use"); u == "encoded" {
				return nil, body.errorf("operation %q %s: use=\"encoded\" (SOAP encoding) is not supported (literal only)", name, dir)
			}
			parts, hasParts = body.attr("parts"), body.hasAttr("parts")
		}
		for _, h := range bm.kids {
			if h.name.Space == bindNS && h.name.Local == "header" {
				conv.warn(fmt.Sprintf("operation %s %s: SOAP header %q is declared and not sent or read", name, dir, h.attr("part")))
			}
		}
	}
	mq, err := pm.qname("message")
	if err != nil {
		return nil, err
	}
	msg := r.messages[mq]
	if msg == nil {
		return nil, pm.errorf("operation %q %s: message %s is not defined", name, dir, showQName(mq))
	}
	var chosen []*xnode
	for _, part := range msg.kids {
		if part.name != (xml.Name{Space: nsWSDL, Local: "part"}) {
			continue
		}
		if hasParts && !containsField(parts, part.attr("name")) {
			continue
		}
		chosen = append(chosen, part)
	}
	switch len(chosen) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, msg.errorf("operation %q %s: message %q has %d body parts: document/literal with one part (wrapped) is supported", name, dir, msg.attr("name"), len(chosen))
	}
	part := chosen[0]
	if part.attr("element") == "" {
		return nil, part.errorf("operation %q %s: part %q has type= and no element=: that is rpc style, only document/literal (element=) is supported", name, dir, part.attr("name"))
	}
	eq, err := part.qname("element")
	if err != nil {
		return nil, err
	}
	def := r.idx.elements[eq]
	if def == nil {
		return nil, part.errorf("operation %q %s: element %s is not declared in the WSDL's schemas", name, dir, showQName(eq))
	}
	return conv.global(def)
}

func containsField(list, name string) bool {
	for f := range strings.FieldsSeq(list) {
		if f == name {
			return true
		}
	}
	return false
}

func showQName(n xml.Name) string {
	if n.Space == "" {
		return fmt.Sprintf("%q", n.Local)
	}
	return fmt.Sprintf("%q (namespace %s)", n.Local, n.Space)
}
