package spec

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/openfsb/fsb/engine/connector/soap"
)

// SOAPSource is the transport configuration of a source of protocol soap:
// a WSDL (read when the documents load), the port to use, and the Plugin
// document whose module builds and reads the envelopes (plugins/soap). Its
// operations are the port's; a flow calls them with a JSON body.
type SOAPSource struct {
	At   map[string]Pos // position of each key's value
	Pos  Pos
	WSDL string `yaml:"wsdl,required"` // file path, relative to this document's directory
	Port string `yaml:"port"`          // needed when the WSDL has several SOAP ports
	// Endpoint overrides the port's soap:address (another environment).
	Endpoint         string            `yaml:"endpoint"`
	Codec            string            `yaml:"codec,required"` // the Plugin document of the SOAP codec
	Timeout          Duration          `yaml:"timeout"`
	MaxResponseBytes ByteSize          `yaml:"maxResponseBytes"`
	TLS              *TLS              `yaml:"tls"`
	Auth             *Auth             `yaml:"auth"`
	Headers          map[string]string `yaml:"headers"`
	// Idempotent lists the operations a step may retry: a SOAP call is a
	// POST, so none is by default.
	Idempotent []string `yaml:"idempotent"`

	port     *soap.Port // read by the checker; nil when the WSDL has errors
	warnings ErrorList
}

// WSDLPath resolves the WSDL's path against its document's directory.
func (s *SOAPSource) WSDLPath() string {
	if filepath.IsAbs(s.WSDL) {
		return s.WSDL
	}
	return filepath.Join(filepath.Dir(s.Pos.File), s.WSDL)
}

// WSDLPort returns the port read from the WSDL when the documents loaded;
// nil when the WSDL or the port had errors (they were reported then).
func (s *SOAPSource) WSDLPort() *soap.Port { return s.port }

// IsIdempotent reports whether the source lists op as safe to repeat.
func (s *SOAPSource) IsIdempotent(op string) bool { return slices.Contains(s.Idempotent, op) }

// Warnings returns what the loaded documents use that will not work in
// full: today, the parts of a SOAP source's WSDL that the codec leaves out
// (attributes, xsd:any, SOAP headers …). They do not stop a load.
func (s *Set) Warnings() ErrorList {
	var out ErrorList
	for _, name := range s.SourceNames() {
		if sp := s.Sources[name].SOAP; sp != nil {
			out = append(out, sp.warnings...)
		}
	}
	return out
}

// soapSource checks a source of protocol soap and reads its WSDL.
func (c *checker) soapSource(src *Source) {
	if src.REST != nil {
		c.errorf(where(src.At, "rest", src.Pos), "source %q of protocol soap takes a \"soap\" block, not \"rest\"", src.Name)
	}
	s := src.SOAP
	if s == nil {
		c.errorf(src.Pos, "source %q of protocol soap needs a \"soap\" block (wsdl, codec …)", src.Name)
		return
	}
	if s.Codec != "" && c.set.Plugins[s.Codec] == nil {
		c.errorf(where(s.At, "codec", s.Pos), "no plugin named %q for the SOAP codec%s (declare the plugins/soap module in a Plugin document)", s.Codec, suggest(s.Codec, sortedKeys(c.set.Plugins)))
	}
	if u, err := url.Parse(s.Endpoint); s.Endpoint != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		c.errorf(where(s.At, "endpoint", s.Pos), "endpoint %q must be an absolute http:// or https:// URL", s.Endpoint)
	}
	if s.TLS != nil && (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		c.errorf(s.TLS.Pos, "certFile and keyFile go together: give both for a client certificate, or neither")
	}
	c.auth(s.Auth)
	c.staticHeaders(s.Headers, where(s.At, "headers", s.Pos))
	for _, k := range sortedKeys(s.Headers) {
		if soapHeaders[strings.ToLower(k)] || transportHeaders[strings.ToLower(k)] {
			c.errorf(where(s.At, "headers", s.Pos), "header %q is set by the SOAP transport, not by a source", k)
		}
	}
	if pl := c.set.Plugins[s.Codec]; pl != nil && pl.Limits != nil && pl.Limits.MaxInput > 0 && s.MaxResponseBytes > pl.Limits.MaxInput {
		c.errorf(where(s.At, "maxResponseBytes", s.Pos), "maxResponseBytes %d is larger than the codec plugin %q's limits.maxInput %d: the codec could not read such an answer; raise its maxInput", s.MaxResponseBytes, s.Codec, pl.Limits.MaxInput)
	}
	if s.WSDL == "" {
		return // reported as missing
	}
	w, err := soap.Load(s.WSDLPath())
	if err != nil {
		c.errorf(where(s.At, "wsdl", s.Pos), "wsdl: %v", err)
		return
	}
	p, err := w.Port(s.Port)
	if err != nil {
		c.errorf(where(s.At, "port", where(s.At, "wsdl", s.Pos)), "wsdl %s: %v", s.WSDL, err)
		return
	}
	s.port = p
	if s.Endpoint == "" {
		if u, err := url.Parse(p.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.errorf(where(s.At, "wsdl", s.Pos), "port %q has address %q, which is not an http:// or https:// URL: give an endpoint", p.Name, p.Address)
		}
	}
	for _, name := range p.Operations() {
		op, _ := p.Operation(name)
		for _, w := range op.Warnings {
			s.warnings = append(s.warnings, c.set.Src.Errorf(where(s.At, "wsdl", s.Pos), "warning: source %q operation %q: %s", src.Name, name, w))
		}
	}
	for _, name := range s.Idempotent {
		if !slices.Contains(p.Operations(), name) {
			c.errorf(where(s.At, "idempotent", s.Pos), "idempotent: the WSDL of source %q has no operation %q%s", src.Name, name, suggest(name, p.Operations()))
		}
	}
}

// soapHeaders are the SOAP transport's own request headers.
var soapHeaders = map[string]bool{"soapaction": true, "accept": true}

// soapCall checks a call step to an operation of a SOAP source: the
// operation is in the WSDL, the request is a body whose fields the
// operation's request element has.
func (c *checker) soapCall(st *Step, src *Source, opName string) {
	s := src.SOAP
	if st.With != nil {
		if len(st.With.Path) > 0 || len(st.With.Query) > 0 {
			c.errorf(st.With.Pos, "call %q: a SOAP operation takes no path or query parameters: map its request under body", st.Call)
		}
		for _, k := range sortedKeys(st.With.Headers) {
			lk := strings.ToLower(k)
			switch {
			case !headerName.MatchString(k):
				c.errorf(st.With.Headers[k].Pos, "%q is not a valid header name", k)
			case secretHeaders[lk]:
				c.errorf(st.With.Headers[k].Pos, "header %q may carry a credential: the source's auth block sets it, a flow may not", k)
			case transportHeaders[lk] || soapHeaders[lk]:
				c.errorf(st.With.Headers[k].Pos, "header %q is set by the SOAP transport, not by a flow", k)
			}
		}
	}
	if st.AcceptStatus != nil {
		c.errorf(where(st.At, "acceptStatus", st.Pos), "call %q: acceptStatus does not apply to SOAP operations: an answer that is not the operation's response (a fault, another status) fails the step", st.Call)
	}
	if st.Retry != nil && !s.IsIdempotent(opName) {
		c.errorf(st.Retry.Pos, "SOAP operation %q is not known to be idempotent: a retry could repeat its effect; if repeating it is safe, list it under the source's soap: idempotent: [%s]", st.Call, opName)
	}
	p := s.port
	if p == nil {
		return // the WSDL's errors are reported on the source
	}
	op, err := p.Operation(opName)
	if err != nil {
		if slices.Contains(p.Operations(), opName) || !strings.Contains(err.Error(), "has no operation") {
			c.errorf(where(st.At, "call", st.Pos), "call %q: %v", st.Call, err)
		} else {
			c.errorf(where(st.At, "call", st.Pos), "call %q: the WSDL of source %q has no operation %q%s", st.Call, src.Name, opName, suggest(opName, p.Operations()))
		}
		return
	}
	var body *Output
	if st.With != nil {
		body = st.With.Body
	}
	switch {
	case op.Request == nil && body != nil:
		c.errorf(body.Pos, "call %q: the operation's request has no body", st.Call)
	case op.Request == nil:
	case body == nil:
		if kids := soapChildren(op, op.Request); slices.ContainsFunc(kids, func(e *soap.Element) bool { return e.Min > 0 }) {
			c.errorf(where(st.At, "call", st.Pos), "call %q needs a request body (with: body: {…}); its fields are %s", st.Call, soapNames(kids))
		}
	default:
		c.soapBody(st.Call, op, op.Request, "", body)
	}
}

// soapBody checks an output tree written for the request element e (at the
// JSON field path, "" for the body itself) against the schema. Values that
// are expressions are checked when the call runs, by the codec.
func (c *checker) soapBody(call string, op *soap.Operation, e *soap.Element, path string, o *Output) {
	switch o.Kind {
	case OutputExpr:
		return
	case OutputArray:
		if !e.Repeated() && path != "" {
			c.errorf(o.Pos, "call %q: request field %q occurs once: give one value, not a list", call, path)
			return
		}
		for _, it := range o.Items {
			c.soapBody(call, op, e, path, it)
		}
		return
	case OutputLiteral:
		if e.Type == soap.TypeObject && o.Literal != nil {
			c.errorf(o.Pos, "call %q: request field %s is an object: give a mapping", call, soapShow(path, e))
		}
		return
	}
	if e.Type != soap.TypeObject {
		c.errorf(o.Pos, "call %q: request field %q is a %s, not an object", call, path, e.Type)
		return
	}
	kids := soapChildren(op, e)
	given := map[string]bool{}
	for _, f := range o.Fields {
		given[f.Name] = true
		fp := f.Name
		if path != "" {
			fp = path + "." + f.Name
		}
		k, err := op.RequestField(fp)
		if err != nil {
			names := make([]string, len(kids))
			for i, k := range kids {
				names[i] = k.Name
			}
			hint := suggest(f.Name, names)
			if !strings.HasPrefix(hint, ";") {
				hint = "; it has " + soapNames(kids)
			} else {
				given[Closest(f.Name, names)] = true // a misspelling: not also "required"
			}
			c.errorf(f.Pos, "call %q: operation %q has no request field %q%s", call, op.Name, fp, hint)
			continue
		}
		c.soapBody(call, op, k, fp, f.Value)
	}
	for _, k := range kids {
		if k.Min > 0 && !given[k.Name] {
			c.errorf(o.Pos, "call %q: request field %q is required (operation %q)", call, strings.TrimPrefix(path+"."+k.Name, "."), op.Name)
		}
	}
}

func soapShow(path string, e *soap.Element) string {
	if path == "" {
		return "the body (" + e.Name + ")"
	}
	return fmt.Sprintf("%q", path)
}

// soapChildren returns an object element's children (inline or by type).
func soapChildren(op *soap.Operation, e *soap.Element) []*soap.Element {
	if e.Ref != "" {
		if t := op.Types[e.Ref]; t != nil {
			return t.Children
		}
		return nil
	}
	return e.Children
}

func soapNames(kids []*soap.Element) string {
	if len(kids) == 0 {
		return "no fields"
	}
	names := make([]string, len(kids))
	for i, k := range kids {
		names[i] = k.Name
	}
	return strings.Join(names, ", ")
}

// soapMock checks a test's mock against what SOAP sources allow: fault
// mocks answer SOAP operations only.
func (c *checker) soapMock(m *Mock, src *Source, opName string) {
	if src.SOAP == nil {
		if m.Fault != nil {
			c.errorf(m.Fault.Pos, "mock %q: only operations of SOAP sources answer faults", m.Call)
		}
		return
	}
	if p := src.SOAP.WSDLPort(); p != nil && !slices.Contains(p.Operations(), opName) {
		c.errorf(where(m.At, "call", m.Pos), "mock %q: the WSDL of source %q has no operation %q%s", m.Call, src.Name, opName, suggest(opName, p.Operations()))
	}
	if m.Match != nil && (len(m.Match.Path) > 0 || len(m.Match.Query) > 0) {
		c.errorf(m.Match.Pos, "mock %q: a SOAP call has no path or query parameters: match its body", m.Call)
	}
	if f := m.Fault; f != nil && (m.Error != "" || m.Body != nil || m.RawBody != "" || m.Status != 0) {
		c.errorf(f.Pos, "a mock either answers a fault or fails (error) or answers (status, body), not several")
	}
}

// MockFault is a SOAP Fault a mock answers, as the codec would read it.
type MockFault struct {
	At     map[string]Pos
	Pos    Pos
	Code   string `yaml:"code,required"` // Server, Client, Sender, Receiver, or the source's own QName
	Reason string `yaml:"reason"`
	Status int    `yaml:"status"` // the HTTP status it comes with (default 500)
}
