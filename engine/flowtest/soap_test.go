package flowtest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/flowtest"
	"github.com/openfsb/fsb/engine/modules"
	"github.com/openfsb/fsb/engine/spec"
)

// soapTests are flow tests of a SOAP source, as an integration engineer
// writes them: a mock answers the operation's JSON response or a fault,
// and the request still goes through the real codec.
const soapTests = `
kind: Plugin
name: soapCodec
module: ${MODULE}
digest: sha256:${DIGEST}
limits: {timeout: 2s}
---
kind: Source
name: vies
protocol: soap
soap: {wsdl: ${WSDL}, codec: soapCodec, timeout: 300ms}
---
kind: Flow
name: vatCheck
version: 1.0.0
method: POST
path: /vatCheck/v1/check
input:
  body: {type: object, additionalProperties: true}
steps:
  - id: vat
    call: vies.checkVat
    with: {body: input.body}
output: {valid: steps.vat.body.valid}
---
kind: Test
name: valid number
flow: vatCheck
request: {body: {countryCode: BE, vatNumber: "0417497106"}}
mocks:
  - call: vies.checkVat
    match: {body: {vatNumber: "0417497106"}}
    body: {countryCode: BE, vatNumber: "0417497106", requestDate: "2024-05-14+02:00", valid: true}
expect: {status: 200, body: {valid: true}, calls: {vies.checkVat: 1}}
---
kind: Test
name: member state unavailable
flow: vatCheck
request: {body: {countryCode: BE, vatNumber: "0417497106"}}
mocks:
  - call: vies.checkVat
    fault: {code: Server, reason: MS_UNAVAILABLE}
expect: {problem: {type: badGateway, step: vat}}
---
kind: Test
name: a field the operation does not have fails before the transport
flow: vatCheck
request: {body: {countryCode: BE, vatNumber: "0417497106", extra: 1}}
mocks:
  - call: vies.checkVat
    body: {valid: true}
expect: {problem: {type: badGateway, step: vat}}
---
kind: Test
name: a timeout mock waits for the source's timeout
flow: vatCheck
request: {body: {countryCode: BE, vatNumber: "0417497106"}}
mocks:
  - call: vies.checkVat
    error: timeout
expect: {problem: {type: gatewayTimeout, step: vat}, calls: {vies.checkVat: 1}}
`

func TestSOAPMocks(t *testing.T) {
	mod, _ := filepath.Abs(filepath.Join("..", "..", "plugins", "soap", "soap.wasm"))
	wsdl, _ := filepath.Abs(filepath.Join("..", "connector", "soap", "testdata", "checkVatService.wsdl"))
	b, err := os.ReadFile(mod)
	if err != nil {
		t.Fatalf("the codec module is committed: %v", err)
	}
	sum := sha256.Sum256(b)
	docs := strings.NewReplacer("${MODULE}", mod, "${DIGEST}", hex.EncodeToString(sum[:]), "${WSDL}", wsdl).Replace(soapTests)
	set, err := spec.Load(map[string][]byte{"soap_test.yaml": []byte(docs)})
	if err != nil {
		t.Fatal(err)
	}
	plans, err := flow.Compile(set)
	if err != nil {
		t.Fatal(err)
	}
	plugins, closePlugins, err := modules.Open(context.Background(), set, modules.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer closePlugins()
	results := flowtest.Run(set, plans, plugins, nil)
	if len(results) != 4 {
		t.Fatalf("%d results, want 4", len(results))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s: %s", r.Name(), strings.Join(r.Failures, "\n"))
		}
	}
}
