package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/metrics"
)

// The observer runs on every source call and Request on every consumer
// call: these measure what they add to one call.

func BenchmarkSourceCall(b *testing.B) {
	m := metrics.New(metrics.Options{})
	c := &flow.SourceCall{Flow: "enterpriseProfile", Step: "enterprise", Source: "enterpriseRegister", Operation: "getEnterprise", Status: 200, Attempts: 1, Duration: 3 * time.Millisecond}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.SourceCall(ctx, c)
		}
	})
}

func BenchmarkRequest(b *testing.B) {
	m := metrics.New(metrics.Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Request("enterpriseProfile", "0212345678", 200, 4*time.Millisecond)
		}
	})
}

// BenchmarkNilMetrics is the cost when metrics are off.
func BenchmarkNilMetrics(b *testing.B) {
	var m *metrics.Metrics
	c := &flow.SourceCall{Source: "enterpriseRegister", Operation: "getEnterprise", Status: 200}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		m.SourceCall(ctx, c)
		m.Request("enterpriseProfile", "0212345678", 200, 0)
	}
}

func BenchmarkGather(b *testing.B) {
	m := metrics.New(metrics.Options{})
	for i := range 50 {
		m.Request("svc", string(rune('a'+i)), 200, time.Millisecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Gather()
	}
}
