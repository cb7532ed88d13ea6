package telemetry_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/telemetry"
)

// What tracing adds to one consumer call with one source call: off (a nil
// Tracer: the connector is not even wrapped) and on (sampled, exported to
// a no-op exporter).
func benchCall(b *testing.B, tr *telemetry.Tracer) {
	conn := tr.Connector("reg", fakeConn{})
	req := &connector.Request{Operation: "get", TraceID: "0123456789abcdef0123456789abcdef"}
	b.ReportAllocs()
	for b.Loop() {
		ctx, span := tr.StartFlow(context.Background(), "flow", "0123456789abcdef0123456789abcdef", "")
		_, _ = conn.Call(ctx, req)
		span.End(200)
	}
}

func BenchmarkTracingOff(b *testing.B) { benchCall(b, nil) }

func BenchmarkTracingOn(b *testing.B) {
	benchCall(b, telemetry.NewWithExporter(telemetry.Config{}, tracetest.NewNoopExporter()))
}

func BenchmarkTracingOnPropagate(b *testing.B) {
	benchCall(b, telemetry.NewWithExporter(telemetry.Config{Propagate: []string{"reg"}}, tracetest.NewNoopExporter()))
}

// BenchmarkNoTracer is the source call alone: the floor.
func BenchmarkNoTracer(b *testing.B) {
	conn := (*telemetry.Tracer)(nil).Connector("reg", fakeConn{}) // not devirtualised, like the others
	req := &connector.Request{Operation: "get"}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = conn.Call(context.Background(), req)
	}
}
