package soap_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/connector/soap"
	codec "github.com/openfsb/fsb/plugins/soap"
	"github.com/openfsb/fsb/sdk/jsonx"
)

// FuzzWSDL: whatever the document, Parse does not panic, its errors name
// the file, and every usable operation gives a codec configuration that is
// valid JSON the codec accepts. (New inputs are minimised for up to a
// minute by default, with no execs counted meanwhile: pass
// -fuzzminimizetime 2s to keep the counter moving.)
func FuzzWSDL(f *testing.F) {
	for _, name := range []string{"checkVatService.wsdl", "orders.wsdl", "common.xsd"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(wsdl("", "")))
	f.Add([]byte(wsdl(`<xs:schema targetNamespace="urn:t"><xs:element name="ping"><xs:complexType><xs:choice maxOccurs="2"><xs:element name="a" type="xs:int"/><xs:group ref="t:g"/></xs:choice></xs:complexType></xs:element><xs:group name="g"><xs:sequence><xs:element name="b" type="t:T"/></xs:sequence></xs:group><xs:complexType name="T"><xs:simpleContent><xs:extension base="xs:decimal"><xs:attribute name="u"/></xs:extension></xs:simpleContent></xs:complexType><xs:element name="pong" type="xs:string"/></xs:schema>`, "")))
	f.Add([]byte(`<description xmlns="http://www.w3.org/ns/wsdl"/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := soap.Parse("fuzz.wsdl", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.wsdl") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		for _, p := range w.Ports {
			for _, name := range p.Operations() {
				op, err := p.Operation(name)
				if err != nil {
					t.Fatal(err)
				}
				cfg, err := op.CodecConfig(soap.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				if !jsonx.Valid(cfg) {
					t.Fatalf("invalid config %s", cfg)
				}
				// The codec reads it: only the request may be refused.
				if _, err := (codec.Native{}).Decode(t.Context(), []byte("<x/>"), cfg); err != nil && strings.Contains(err.Error(), "config") {
					t.Fatalf("the codec refuses the config: %v\n%s", err, cfg)
				}
			}
		}
	})
}
