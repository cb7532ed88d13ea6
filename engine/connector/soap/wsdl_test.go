package soap_test

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/connector/soap"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// golden compares got with testdata/golden/name, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file:\ngot  %s\nwant %s", name, got, want)
	}
}

func load(t testing.TB, file, port string) *soap.Port {
	t.Helper()
	w, err := soap.Load(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	p, err := w.Port(port)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func operation(t testing.TB, p *soap.Port, name string) *soap.Operation {
	t.Helper()
	op, err := p.Operation(name)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func TestLoadVIES(t *testing.T) {
	p := load(t, "checkVatService.wsdl", "")
	if p.Name != "checkVatPort" || p.Service != "checkVatService" || p.Version != soap.SOAP11 ||
		p.Address != "http://ec.europa.eu/taxation_customs/vies/services/checkVatService" {
		t.Errorf("port %+v", p)
	}
	if got := p.Operations(); !slices.Equal(got, []string{"checkVat", "checkVatApprox"}) {
		t.Errorf("operations %v", got)
	}
	op := operation(t, p, "checkVat")
	if op.Action != "" || op.Request.Name != "checkVat" || op.Response.Name != "checkVatResponse" || len(op.Warnings) != 0 {
		t.Errorf("checkVat: %+v", op)
	}
	valid, err := op.ResponseField("valid")
	if err != nil || valid.Type != soap.TypeBoolean {
		t.Errorf("valid: %+v %v", valid, err)
	}
	name, err := op.ResponseField("name")
	if err != nil || !name.Nillable || name.Min != 0 {
		t.Errorf("name: %+v %v", name, err)
	}
	for _, name := range []string{"checkVat", "checkVatApprox"} {
		cfg, err := operation(t, p, name).CodecConfig(soap.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name+".config.json", cfg)
	}
	if _, err := p.Operation("checkVies"); err == nil || !strings.Contains(err.Error(), `no operation "checkVies" (it has checkVat, checkVatApprox)`) {
		t.Errorf("unknown operation: %v", err)
	}
}

func TestLoadOrders(t *testing.T) {
	w, err := soap.Load("testdata/orders.wsdl")
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Ports) != 1 { // the HTTP binding's port is not SOAP
		t.Fatalf("ports %d", len(w.Ports))
	}
	p := w.Ports[0]
	if p.Version != soap.SOAP12 || p.Name != "OrdersSoap12Port" {
		t.Errorf("port %+v", p)
	}
	op := operation(t, p, "getOrder")
	if op.Action != "urn:example:orders/getOrder" {
		t.Errorf("action %q", op.Action)
	}
	if want := []string{"attributes of Address are not mapped (neither sent nor decoded)"}; !slices.Equal(op.Warnings, want) {
		t.Errorf("warnings %q", op.Warnings)
	}
	for _, name := range []string{"getOrder", "listOrders"} {
		cfg, err := operation(t, p, name).CodecConfig(soap.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name+".config.json", cfg)
	}
	// The named type Address is shared by both of its uses.
	if op.Types["Address"] == nil || len(op.Types["Address"].Children) != 4 {
		t.Errorf("Address: %+v", op.Types["Address"])
	}
}

func TestFields(t *testing.T) {
	p := load(t, "orders.wsdl", "OrdersSoap12Port")
	get, list := operation(t, p, "getOrder"), operation(t, p, "listOrders")
	for _, tc := range []struct {
		op      *soap.Operation
		resp    bool
		path    string
		typ     string
		wantErr string
	}{
		{op: get, path: "orderId", typ: soap.TypeInteger},
		{op: get, path: "statusFilter", typ: soap.TypeString},
		{op: list, path: "customer.name", typ: soap.TypeString},
		{op: list, path: "deliverTo.postcode", typ: soap.TypeString},
		{op: get, resp: true, path: "order.lines.line.quantity", typ: soap.TypeInteger},
		{op: get, resp: true, path: "order.category.category.category.label", typ: soap.TypeString},
		{op: get, resp: true, path: "order.customer.customerNo", typ: soap.TypeInteger},
		{op: get, path: "orderID", wantErr: `operation "getOrder" request has no field "orderID" (it has orderId, includeLines, statusFilter, trace)`},
		{op: list, path: "customer.nam", wantErr: `operation "listOrders" request has no field "nam" in customer (it has name, vatNumber)`},
		{op: get, path: "orderId.x", wantErr: `"orderId" is a integer, it has no field "x"`},
	} {
		var e *soap.Element
		var err error
		if tc.resp {
			e, err = tc.op.ResponseField(tc.path)
		} else {
			e, err = tc.op.RequestField(tc.path)
		}
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.path, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.path, err)
		case e.Type != tc.typ:
			t.Errorf("%s: type %s, want %s", tc.path, e.Type, tc.typ)
		}
	}
}

// wsdl wraps types, messages, portType, binding and service parts into a
// WSDL document; the ones not given get working defaults.
func wsdl(types, binding string) string {
	if types == "" {
		types = `<xs:schema targetNamespace="urn:t" elementFormDefault="qualified">
    <xs:element name="ping"><xs:complexType><xs:sequence><xs:element name="n" type="xs:int"/></xs:sequence></xs:complexType></xs:element>
    <xs:element name="pong" type="xs:string"/>
  </xs:schema>`
	}
	if binding == "" {
		binding = `<soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="ping"><soap:operation soapAction="urn:ping"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input><wsdl:output><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>`
	}
	return `<?xml version="1.0"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:t" xmlns:tns="urn:w" targetNamespace="urn:w">
  <wsdl:types>
  ` + types + `
  </wsdl:types>
  <wsdl:message name="in"><wsdl:part name="p" element="t:ping"/></wsdl:message>
  <wsdl:message name="out"><wsdl:part name="p" element="t:pong"/></wsdl:message>
  <wsdl:portType name="PT"><wsdl:operation name="ping"><wsdl:input message="tns:in"/><wsdl:output message="tns:out"/></wsdl:operation></wsdl:portType>
  <wsdl:binding name="B" type="tns:PT">
    ` + binding + `
  </wsdl:binding>
  <wsdl:service name="S"><wsdl:port name="P" binding="tns:B"><soap:address location="http://127.0.0.1/ping"/></wsdl:port></wsdl:service>
</wsdl:definitions>`
}

var position = regexp.MustCompile(`^bad\.wsdl:\d+:\d+: `)

// TestWSDLErrors: what cannot be read or used is refused with the place
// and the reason; errors of one operation come from Port.Operation.
func TestWSDLErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		op        bool   // the error is the operation's, not Parse's
		want      string // part of the message
		noPos     bool
	}{
		{name: "works", doc: wsdl("", "")},
		{name: "not xml", doc: `{"a":1}`, want: "not an XML document", noPos: true},
		{name: "broken xml", doc: `<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"><a></b>`, want: "not well-formed XML"},
		{name: "dtd", doc: `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaa">]><x/>`, want: "DTD"},
		{name: "wsdl 2.0", doc: `<description xmlns="http://www.w3.org/ns/wsdl"/>`, want: "WSDL 2.0 is not supported"},
		{name: "not wsdl", doc: `<x/>`, want: "not a WSDL 1.1 document"},
		{name: "rpc", doc: wsdl("", `<soap:binding style="rpc" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="ping"><soap:operation soapAction=""/><wsdl:input><soap:body use="literal"/></wsdl:input><wsdl:output><soap:body use="literal"/></wsdl:output></wsdl:operation>`),
			op: true, want: `operation "ping": rpc style is not supported`},
		{name: "encoded", doc: wsdl("", `<soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="ping"><wsdl:input><soap:body use="encoded"/></wsdl:input><wsdl:output><soap:body use="literal"/></wsdl:output></wsdl:operation>`),
			op: true, want: `use="encoded" (SOAP encoding) is not supported`},
		{name: "unknown type", doc: wsdl(`<xs:schema targetNamespace="urn:t"><xs:element name="ping" type="t:Nope"/><xs:element name="pong" type="xs:string"/></xs:schema>`, ""),
			op: true, want: `type "Nope" (namespace urn:t) of element "ping" is not defined`},
		{name: "undeclared prefix", doc: wsdl(`<xs:schema targetNamespace="urn:t"><xs:element name="ping" type="q:Nope"/><xs:element name="pong" type="xs:string"/></xs:schema>`, ""),
			op: true, want: `type="q:Nope": namespace prefix "q" is not declared`},
		{name: "missing element", doc: wsdl(`<xs:schema targetNamespace="urn:t"><xs:element name="pong" type="xs:string"/></xs:schema>`, ""),
			op: true, want: `element "ping" (namespace urn:t) is not declared`},
		{name: "bad maxOccurs", doc: wsdl(`<xs:schema targetNamespace="urn:t"><xs:element name="ping"><xs:complexType><xs:sequence><xs:element name="n" maxOccurs="many" type="xs:int"/></xs:sequence></xs:complexType></xs:element><xs:element name="pong" type="xs:string"/></xs:schema>`, ""),
			op: true, want: `maxOccurs="many": want a number or unbounded`},
		{name: "recursive group", doc: wsdl(`<xs:schema targetNamespace="urn:t"><xs:group name="g"><xs:sequence><xs:group ref="t:g"/></xs:sequence></xs:group><xs:element name="ping"><xs:complexType><xs:group ref="t:g"/></xs:complexType></xs:element><xs:element name="pong" type="xs:string"/></xs:schema>`, ""),
			op: true, want: "nested deeper than"},
		{name: "import without Load", doc: wsdl(`<xs:schema targetNamespace="urn:t"><xs:include schemaLocation="x.xsd"/></xs:schema>`, ""),
			want: `imports "x.xsd" by location: read the WSDL from its file (Load)`},
		{name: "missing binding", doc: strings.Replace(wsdl("", ""), `binding="tns:B"`, `binding="tns:Nope"`, 1),
			want: `port "P": binding "Nope" (namespace urn:w) is not defined`},
		{name: "jms transport", doc: strings.Replace(wsdl("", ""), `transport="http://schemas.xmlsoap.org/soap/http"`, `transport="http://www.w3.org/2010/soapjms/"`, 1),
			want: `transport "http://www.w3.org/2010/soapjms/" is not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := soap.Parse("bad.wsdl", []byte(tc.doc))
			if err == nil && tc.op {
				var p *soap.Port
				if p, err = w.Port(""); err == nil {
					_, err = p.Operation("ping")
				}
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q", err, tc.want)
			}
			if !tc.noPos && !position.MatchString(err.Error()) {
				t.Errorf("error %q does not start with bad.wsdl:line:col", err)
			}
		})
	}
}

// TestPosition: the line and column are those of the offending element.
func TestPosition(t *testing.T) {
	doc := wsdl(`<xs:schema targetNamespace="urn:t">
    <xs:element name="pong" type="xs:string"/>
      <xs:element name="ping" type="t:Nope"/>
  </xs:schema>`, "")
	w, err := soap.Parse("bad.wsdl", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := w.Port("")
	_, err = p.Operation("ping")
	if err == nil || !strings.HasPrefix(err.Error(), "bad.wsdl:7:7: ") {
		t.Errorf("error %v, want it at bad.wsdl:7:7", err)
	}
}

func TestPortChoice(t *testing.T) {
	doc := strings.Replace(wsdl("", ""), `</wsdl:service>`, `<wsdl:port name="P2" binding="tns:B"><soap:address location="http://127.0.0.1/ping2"/></wsdl:port></wsdl:service>`, 1)
	w, err := soap.Parse("two.wsdl", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Port(""); err == nil || !strings.Contains(err.Error(), "2 SOAP ports (P (SOAP 1.1), P2 (SOAP 1.1)): name the one to use") {
		t.Errorf("no port named: %v", err)
	}
	p, err := w.Port("P2")
	if err != nil || p.Address != "http://127.0.0.1/ping2" {
		t.Errorf("P2: %+v %v", p, err)
	}
	if _, err := w.Port("P3"); err == nil {
		t.Error("P3: no error")
	}
}

// TestRemoteImport: only local files are read.
func TestRemoteImport(t *testing.T) {
	dir := t.TempDir()
	doc := wsdl(`<xs:schema targetNamespace="urn:t"><xs:import namespace="urn:x" schemaLocation="https://example.test/x.xsd"/></xs:schema>`, "")
	path := filepath.Join(dir, "remote.wsdl")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := soap.Load(path)
	if err == nil || !strings.Contains(err.Error(), "is remote: only files relative to the WSDL are read") {
		t.Errorf("error %v", err)
	}
}
