package sources_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/expr"
	"github.com/openfsb/fsb/engine/flow"
)

// benchDocs: the same VIES call as a SOAP operation (through the codec
// module in the sandbox) and as a REST JSON operation, each in a flow
// that reads two fields of the answer.
const benchDocs = soapDocs + `
---
kind: Source
name: viesRest
protocol: rest
rest:
  baseUrl: ${REST}
  operations:
    checkVat: {method: POST, path: /checkVat}
---
kind: Flow
name: vatRest
version: 1.0.0
method: POST
path: /vatRest/v1/check
input:
  body: {type: object, properties: {countryCode: {type: string}, vatNumber: {type: string}}}
steps:
  - id: vat
    call: viesRest.checkVat
    with: {body: {countryCode: input.body.countryCode, vatNumber: input.body.vatNumber}}
output: {valid: steps.vat.body.valid, name: steps.vat.body.name}
---
kind: Flow
name: vatSoap
version: 1.0.0
method: POST
path: /vatSoap/v1/check
input:
  body: {type: object, properties: {countryCode: {type: string}, vatNumber: {type: string}}}
steps:
  - id: vat
    call: vies.checkVat
    with: {body: {countryCode: input.body.countryCode, vatNumber: input.body.vatNumber}}
output: {valid: steps.vat.body.valid, name: steps.vat.body.name}
`

// benchSetup starts both mock servers and returns one run of the REST and
// of the SOAP flow, warmed up; a run fails b unless it answers 200.
func benchSetup(b *testing.B) (rest, soap func(testing.TB)) {
	b.Helper()
	xml, err := os.ReadFile(filepath.Join(soapFixtures, "messages", "checkVat.response.xml"))
	if err != nil {
		b.Fatal(err)
	}
	soapSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		_, _ = w.Write(xml)
	}))
	b.Cleanup(soapSrv.Close)
	// the JSON the codec makes of xml: the same answer, as a REST source sends it
	json := []byte(`{"countryCode":"BE","vatNumber":"0417497106","requestDate":"2024-05-14+02:00","valid":true,"name":"NV ANHEUSER-BUSCH IN BEV","address":"GROTE MARKT 1\n1000 BRUSSEL"}`)
	restSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(json)
	}))
	b.Cleanup(restSrv.Close)
	vars := soapVars(b, soapSrv.URL)
	vars["REST"] = restSrv.URL
	st := openSOAPStack(b, expand(benchDocs, vars))
	rt := &flow.Runtime{Conns: st.conns}
	inv := &flow.Invocation{Input: expr.Input{Body: map[string]any{"countryCode": "BE", "vatNumber": "0417497106"}}, TraceID: "t"}
	call := func(name string) func(testing.TB) {
		p := st.plans[name]
		return func(tb testing.TB) {
			out := p.Run(context.Background(), rt, inv)
			if out.Status != 200 {
				tb.Fatalf("%s: status %d: %v", name, out.Status, out.Problem)
			}
			out.Release()
		}
	}
	rest, soap = call("vatRest"), call("vatSoap")
	for range 10 { // warm: connections, sandbox instances
		rest(b)
		soap(b)
	}
	return rest, soap
}

// BenchmarkSOAPCall: one flow step calling checkVat, as REST JSON and as
// SOAP through the adapter (codec in the sandbox), both against loopback
// mock servers.
func BenchmarkSOAPCall(b *testing.B) {
	rest, soap := benchSetup(b)
	for _, c := range []struct {
		name string
		call func(testing.TB)
	}{{"rest", rest}, {"soap", soap}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.call(b)
			}
		})
	}
}

// BenchmarkSOAPvsREST runs the REST and the SOAP call alternately and
// reports the time of a SOAP call over the time of the same call as REST
// JSON (soap/rest): alternating spreads the noise of a shared machine over
// both, so the ratio of one run is what to compare. ns/op is one of each.
func BenchmarkSOAPvsREST(b *testing.B) {
	rest, soap := benchSetup(b)
	var restD, soapD time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		rest(b)
		t1 := time.Now()
		soap(b)
		restD, soapD = restD+t1.Sub(t0), soapD+time.Since(t1)
	}
	b.ReportMetric(float64(soapD)/float64(restD), "soap/rest")
	b.ReportMetric(float64(restD.Nanoseconds())/float64(b.N), "rest-ns/call")
	b.ReportMetric(float64(soapD.Nanoseconds())/float64(b.N), "soap-ns/call")
}
