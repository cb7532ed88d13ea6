package soap_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	engine "github.com/openfsb/fsb/engine/connector/soap"
	"github.com/openfsb/fsb/plugins/soap"
	"github.com/openfsb/fsb/sdk/guest"
)

func init() {
	guest.Encode(soap.Encode)
	guest.Decode(soap.Decode)
}

// testCfg exercises every feature of the configuration: a named type in
// another namespace, an unqualified element, repetition, nil, each type.
const testCfg = `{"operation":"t","soap":"1.1",
 "request":{"name":"req","ns":"urn:a","type":"object","children":[
   {"name":"id","type":"integer","xsd":"long"},
   {"name":"flag","type":"boolean","min":0},
   {"name":"amount","type":"number","xsd":"decimal","min":0},
   {"name":"names","min":0,"max":-1,"nillable":true},
   {"name":"item","type":"object","min":0,"max":2,"ref":"Item"},
   {"name":"free","ns":"","min":0},
   {"name":"when","xsd":"date","min":0,"nillable":true}]},
 "response":{"name":"resp","ns":"urn:a","type":"object","children":[
   {"name":"id","type":"integer","xsd":"long"},
   {"name":"ok","type":"boolean","min":0},
   {"name":"amount","type":"number","xsd":"decimal","min":0},
   {"name":"ratio","type":"number","xsd":"double","min":0},
   {"name":"names","min":0,"max":-1,"nillable":true},
   {"name":"item","type":"object","min":0,"max":-1,"ref":"Item"},
   {"name":"note","min":0,"nillable":true},
   {"name":"code","xsd":"token","min":0}]},
 "types":{"Item":{"ns":"urn:b","children":[{"name":"code"},{"name":"qty","type":"integer","min":0,"nillable":true},{"name":"sub","type":"object","min":0,"ref":"Item"}]}}}`

var cfg12 = strings.Replace(testCfg, `"soap":"1.1"`, `"soap":"1.2"`, 1)

const env11 = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"`
const xsi = ` xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"`
const body = `><soap:Body><ns1:req xmlns:ns1="urn:a" xmlns:ns2="urn:b">`
const end = "</ns1:req></soap:Body></soap:Envelope>\n"

func resp(inner string) string {
	return `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><s:Body><a:resp xmlns:a="urn:a" xmlns:b="urn:b">` + inner + `</a:resp></s:Body></s:Envelope>`
}

type testCase struct{ name, op, in, cfg, want string }

// okCases are shared with the WebAssembly test.
func okCases() []testCase {
	return []testCase{
		{"encode: schema order, not key order", "encode", `{"flag":true,"id":7}`, testCfg,
			env11 + xsi + body + `<ns1:id>7</ns1:id><ns1:flag>true</ns1:flag>` + end},
		{"encode: repeated, nil, nested named type", "encode",
			`{"id":"007","names":["a",null,"b"],"item":[{"code":"x","qty":null},{"code":"y","sub":{"code":"z"}}],"free":"f","when":null}`, testCfg,
			env11 + xsi + body + `<ns1:id>007</ns1:id><ns1:names>a</ns1:names><ns1:names xsi:nil="true"/><ns1:names>b</ns1:names>` +
				`<ns1:item><ns2:code>x</ns2:code><ns2:qty xsi:nil="true"/></ns1:item><ns1:item><ns2:code>y</ns2:code><ns2:sub><ns2:code>z</ns2:code></ns2:sub></ns1:item>` +
				`<free>f</free><ns1:when xsi:nil="true"/>` + end},
		{"encode: single value for a repeated element", "encode", `{"id":1,"names":"solo"}`, testCfg,
			env11 + xsi + body + `<ns1:id>1</ns1:id><ns1:names>solo</ns1:names>` + end},
		{"encode: escaping", "encode", `{"id":1,"free":"<a href=\"x\">&amp;</a>\r\n\u0001\ud83d\ude00"}`, testCfg,
			env11 + xsi + body + `<ns1:id>1</ns1:id><free>&lt;a href="x"&gt;&amp;amp;&lt;/a&gt;&#xD;` + "\n\uFFFD😀</free>" + end},
		{"encode: typed values", "encode", `{"id":-12,"flag":"0","amount":1e-3}`, testCfg,
			env11 + xsi + body + `<ns1:id>-12</ns1:id><ns1:flag>false</ns1:flag><ns1:amount>0.001</ns1:amount>` + end},
		{"encode: null for an optional non-nillable is absent", "encode", `{"id":1,"flag":null}`, testCfg,
			env11 + xsi + body + `<ns1:id>1</ns1:id>` + end},
		{"encode: SOAP 1.2", "encode", `{"id":1}`, cfg12,
			`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"` + xsi + body + `<ns1:id>1</ns1:id>` + end},

		{"decode: types", "decode", resp(`<a:id> +0042 </a:id><a:ok>1</a:ok><a:amount>-.5</a:amount><a:ratio>INF</a:ratio><a:code>  AB </a:code><a:note>  keep  </a:note>`), testCfg,
			`{"body":{"id":42,"ok":true,"amount":-0.5,"ratio":"INF","names":[],"item":[],"note":"  keep  ","code":"AB"}}`},
		{"decode: one occurrence is an array", "decode", resp(`<a:id>1</a:id><a:names>x</a:names><a:item><b:code>c</b:code></a:item>`), testCfg,
			`{"body":{"id":1,"names":["x"],"item":[{"code":"c"}]}}`},
		{"decode: nil absent, null in arrays", "decode", resp(`<a:id>1</a:id><a:names xsi:nil="true"/><a:names>y</a:names><a:note xsi:nil="1">z</a:note><a:ok/>`), testCfg,
			`{"body":{"id":1,"names":[null,"y"],"item":[]}}`},
		{"decode: schema order, unknown elements skipped", "decode", resp(`<a:item><b:code>2</b:code><b:qty>3</b:qty><b:extra><b:deep/></b:extra></a:item><a:new>n</a:new><a:id>1</a:id><a:item><b:code>1</b:code><b:sub><b:code>s</b:code></b:sub></a:item>`), testCfg,
			`{"body":{"id":1,"names":[],"item":[{"code":"2","qty":3},{"code":"1","sub":{"code":"s"}}]}}`},
		{"decode: unqualified children accepted", "decode", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><resp><id>5</id></resp></s:Body></s:Envelope>`, testCfg,
			`{"body":{"id":5,"names":[],"item":[]}}`},
		{"decode: header, comments, prolog, CDATA", "decode", "\ufeff<?xml version=\"1.0\"?>\n<!-- c --><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Header><h>1</h></s:Header><s:Body><resp xmlns=\"urn:a\"><id>5</id><note><![CDATA[<b>&</b>]]></note></resp></s:Body></s:Envelope>\n", testCfg,
			`{"body":{"id":5,"names":[],"item":[],"note":"<b>&</b>"}}`},
		{"decode: ISO-8859-1", "decode", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><resp><id>1</id><note>Li\xe8ge</note></resp></s:Body></s:Envelope>", testCfg,
			`{"body":{"id":1,"names":[],"item":[],"note":"Liège"}}`},
		{"decode: empty body", "decode", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>`, testCfg,
			`{"body":null}`},
		{"decode: nil response element", "decode", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><s:Body><resp xsi:nil="true"/></s:Body></s:Envelope>`, testCfg,
			`{"body":null}`},
		{"decode: 1.1 fault", "decode", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client.Validation</faultcode><faultstring>  bad
input` + "\u200f" + `</faultstring><detail><x>secret</x></detail></s:Fault></s:Body></s:Envelope>`, testCfg,
			`{"fault":{"code":"Client.Validation","reason":"bad input"}}`},
		{"decode: 1.1 fault with a custom code", "decode", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:e="urn:err"><s:Body><s:Fault><faultcode>e:Busy</faultcode><faultstring>` + strings.Repeat("é", 300) + `</faultstring></s:Fault></s:Body></s:Envelope>`, testCfg,
			`{"fault":{"code":"e:Busy","reason":"` + strings.Repeat("é", 126) + `…"}}`},
		{"decode: 1.2 fault", "decode", `<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><e:Fault><e:Code><e:Value>e:Receiver</e:Value><e:Subcode><e:Value>x:A</e:Value><e:Subcode><e:Value>x:B</e:Value></e:Subcode></e:Subcode></e:Code><e:Reason><e:Text xml:lang="fr">non</e:Text></e:Reason><e:Detail/></e:Fault></e:Body></e:Envelope>`, testCfg,
			`{"fault":{"code":"Receiver","subcodes":["x:A","x:B"],"reason":"non"}}`},
	}
}

// errCases fail natively and in the sandbox.
func errCases() []testCase {
	deep := strings.Repeat("<x>", 70) + strings.Repeat("</x>", 70)
	return []testCase{
		{"encode: unknown field", "encode", `{"id":1,"nope":2}`, testCfg, `req: field "nope" is not in the schema (it has id, flag, amount, names, item, free, when)`},
		{"encode: missing required", "encode", `{"flag":true}`, testCfg, "req.id is required"},
		{"encode: null for a required", "encode", `{"id":null}`, testCfg, "req.id is required"},
		{"encode: not an integer", "encode", `{"id":1.5}`, testCfg, "req.id: 1.5 is not an integer"},
		{"encode: not a boolean", "encode", `{"id":1,"flag":"yes"}`, testCfg, `req.flag: "yes" is not a boolean`},
		{"encode: array for a single", "encode", `{"id":[1]}`, testCfg, "req.id occurs at most once"},
		{"encode: too many", "encode", `{"id":1,"item":[{"code":"a"},{"code":"b"},{"code":"c"}]}`, testCfg, "req.item occurs at most 2 times, got 3"},
		{"encode: object for a string", "encode", `{"id":1,"free":{}}`, testCfg, "req.free: want a string, got object"},
		{"encode: nested unknown", "encode", `{"id":1,"item":{"code":"a","x":1}}`, testCfg, `req.item: field "x" is not in the schema`},
		{"encode: not JSON", "encode", `{id:1}`, testCfg, "the request is not JSON"},
		{"encode: bad config", "encode", `{}`, `{"soap":"1.3"}`, `config soap "1.3"`},
		{"encode: dangling ref", "encode", `{}`, `{"soap":"1.1","request":{"name":"r","type":"object","ref":"X"}}`, `ref "X" is not in types`},

		{"decode: not XML", "decode", `{"id":1}`, testCfg, "the response is not XML"},
		{"decode: empty", "decode", ``, testCfg, "the response is not XML"},
		{"decode: HTML", "decode", `<html><body>502 Bad Gateway</body></html>`, testCfg, "the root element is <html>, not a SOAP 1.1 or 1.2 Envelope"},
		{"decode: truncated", "decode", resp(`<a:id>1</a:id>`)[:60], testCfg, "not well-formed XML"},
		{"decode: DTD", "decode", `<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x "y">]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>`, testCfg, "DTD"},
		{"decode: undefined entity", "decode", resp(`<a:id>&x;</a:id>`), testCfg, "not well-formed XML"},
		{"decode: wrong element", "decode", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><other/></s:Body></s:Envelope>`, testCfg, "the Body holds <other>, not resp"},
		{"decode: no body", "decode", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header/></s:Envelope>`, testCfg, "the envelope has no Body"},
		{"decode: bad boolean", "decode", resp(`<a:id>1</a:id><a:ok>yes</a:ok>`), testCfg, `resp.ok: "yes" is not an xsd:boolean`},
		{"decode: bad integer", "decode", resp(`<a:id>1.0</a:id>`), testCfg, `resp.id: "1.0" is not an integer`},
		{"decode: twice", "decode", resp(`<a:id>1</a:id><a:id>2</a:id>`), testCfg, "resp.id occurs more than once"},
		{"decode: too deep", "decode", resp(`<a:id>1</a:id>` + deep), testCfg, "deeper than maxDepth 64"},
		{"decode: too many elements", "decode", resp(strings.Repeat("<a:x/>", 50)), strings.Replace(testCfg, `"soap":"1.1"`, `"soap":"1.1","limits":{"maxElements":40}`, 1), "more than maxElements 40"},
		{"decode: too large", "decode", resp(strings.Repeat(" ", 100)), strings.Replace(testCfg, `"soap":"1.1"`, `"soap":"1.1","limits":{"maxInput":100}`, 1), "above maxInput 100"},
		{"decode: text after", "decode", resp(`<a:id>1</a:id>`) + "x", testCfg, "text after the envelope"},
		{"decode: other encoding", "decode", `<?xml version="1.0" encoding="EBCDIC"?><a/>`, testCfg, `encoding "EBCDIC" is not supported`},
	}
}

func TestCodec(t *testing.T) {
	for _, c := range okCases() {
		t.Run(c.name, func(t *testing.T) {
			out, err := guest.Run(c.op, []byte(c.in), []byte(c.cfg))
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != c.want {
				t.Errorf("got  %s\nwant %s", out, c.want)
			}
		})
	}
	for _, c := range errCases() {
		t.Run(c.name, func(t *testing.T) {
			out, err := guest.Run(c.op, []byte(c.in), []byte(c.cfg))
			if err == nil {
				t.Fatalf("no error, output %s", out)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want %q", err, c.want)
			}
		})
	}
}

// messageCases are the engine's sample messages with the configurations
// its WSDL reader derives, for the WebAssembly test and the benchmark.
func messageCases(tb testing.TB) []testCase {
	tb.Helper()
	dir := filepath.Join("..", "..", "engine", "connector", "soap", "testdata")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, "messages", name))
		if err != nil {
			tb.Fatal(err)
		}
		return string(b)
	}
	var out []testCase
	for _, w := range []struct {
		file string
		ops  []string
		more []string
	}{
		{"checkVatService.wsdl", []string{"checkVat"}, []string{"checkVat.invalid.xml", "checkVat.fault.xml"}},
		{"orders.wsdl", []string{"getOrder", "listOrders"}, []string{"getOrder.fault.xml"}},
	} {
		wsdl, err := engine.Load(filepath.Join(dir, w.file))
		if err != nil {
			tb.Fatal(err)
		}
		p, err := wsdl.Port("")
		if err != nil {
			tb.Fatal(err)
		}
		for _, name := range w.ops {
			op, err := p.Operation(name)
			if err != nil {
				tb.Fatal(err)
			}
			cfg, err := op.CodecConfig(engine.Limits{})
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out,
				testCase{name: name + " request", op: "encode", in: read(name + ".request.json"), cfg: string(cfg)},
				testCase{name: name + " response", op: "decode", in: read(name + ".response.xml"), cfg: string(cfg)})
			if name == w.ops[0] {
				for _, m := range w.more {
					out = append(out, testCase{name: m, op: "decode", in: read(m), cfg: string(cfg)})
				}
			}
		}
	}
	return out
}

// TestConfigCache: a configuration is parsed once and reused, also by
// concurrent callers.
func TestConfigCache(t *testing.T) {
	done := make(chan error)
	for range 8 {
		go func() {
			var err error
			for range 100 {
				if _, err = (soap.Native{}).Encode(t.Context(), []byte(`{"id":1}`), []byte(testCfg)); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
