package flow

import (
	"context"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/connector"
)

// A 1 KiB-ish source document, like the demo registers answer.
var doc1k = `{"enterpriseNumber":"0912345673","name":"Zonnebloem Bakkerijen","legalForm":"NV","status":"active","startDate":"1998-04-01",` +
	`"address":{"street":"Kortrijksesteenweg","houseNumber":"412","postalCode":"9000","municipality":"Gent","country":"BE"},` +
	`"activities":[{"naceCode":"10711","description":"Industrial bakery"},{"naceCode":"47240","description":"Retail of bread"}],` +
	`"directors":["68031401742","71110212426","85122431261"],"notes":"` + strings.Repeat("x", 480) + `"}`

func benchRun(b *testing.B, steps, output string) {
	p := compileFlow(b, flowDoc(steps, output))
	src := &fakeSource{answer: ok(doc1k)}
	conns := map[string]connector.Connector{"a": src, "b": src}
	rt := &Runtime{Conns: conns}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			out := p.Run(context.Background(), rt, &Invocation{TraceID: "t"})
			if out.Status != 200 {
				b.Fatalf("status %d: %+v", out.Status, out.Problem)
			}
		}
	})
}

// BenchmarkRunPassthrough: one call, output copied as raw bytes.
func BenchmarkRunPassthrough(b *testing.B) {
	benchRun(b, "  - id: x\n    call: a.get\n    with: {path: {id: \"'1'\"}}\n", "steps.x.body")
}

// BenchmarkRunThreeParallel: three calls in parallel, merged by raw splicing.
func BenchmarkRunThreeParallel(b *testing.B) {
	benchRun(b, `  - id: all
    parallel:
      - {id: x, call: a.get, with: {path: {id: "'1'"}}}
      - {id: y, call: b.get, with: {path: {id: "'2'"}}}
      - {id: z, call: a.get, with: {path: {id: "'3'"}}}
`, "{x: steps.x.body, y: steps.y.body, z: steps.z.body}")
}

// BenchmarkRunDecodeAndMap: the body is read by expressions, so it is
// decoded and the output is built field by field.
func BenchmarkRunDecodeAndMap(b *testing.B) {
	benchRun(b, "  - id: x\n    call: a.get\n    with: {path: {id: \"'1'\"}}\n",
		"{name: upper(steps.x.body.name), city: steps.x.body.address.municipality, n: len(steps.x.body.directors), active: steps.x.body.status == 'active'}")
}

// BenchmarkValidateInput: schema validation of a small body.
func BenchmarkValidateInput(b *testing.B) {
	p := compileFlow(b, strings.Replace(flowDoc("  - id: s\n    set: {v: '1'}\n", "steps.s.body"),
		"body: {type: object, additionalProperties: true}",
		"body: {type: object, required: [enterpriseNumber], properties: {enterpriseNumber: {type: string, pattern: '^[01][0-9]{9}$'}, withDirectors: {type: boolean, default: true}}}", 1))
	req := &Request{Body: []byte(`{"enterpriseNumber":"0912345673"}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, prob := p.Validate(req); prob != nil {
			b.Fatal(prob.Detail)
		}
	}
}
