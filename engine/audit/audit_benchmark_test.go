package audit

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// durableRate writes total request records from writers goroutines, each
// waiting for its record to be durable (Begin), into a store on disk, and
// returns durable events per second. maxBatch 1 is one sync per event.
func durableRate(b *testing.B, maxBatch, writers, total int) float64 {
	b.Helper()
	opt := testOptions(b.TempDir())
	opt.MaxBatch = maxBatch
	opt.CheckpointEvery = 1024
	s := openStore(b, opt)
	defer s.Close()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > total {
					return
				}
				if _, err := s.Begin(ctx, request(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(total) / time.Since(start).Seconds()
}

// BenchmarkDurableEvents: b.N durable events per configuration.
func BenchmarkDurableEvents(b *testing.B) {
	for _, mode := range []struct {
		name     string
		maxBatch int
	}{{"groupCommit", 0}, {"syncPerEvent", 1}} {
		for _, w := range []int{64, 256} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode.name, w), func(b *testing.B) {
				rate := durableRate(b, mode.maxBatch, w, max(b.N, w))
				b.ReportMetric(rate, "events/s")
			})
		}
	}
}

// BenchmarkGroupCommitRatio measures both modes in one run and reports the
// ratio (issue 5: at least 5× at 64 writers). The disk of a shared machine
// is noisy (a sync takes 0.5–5 ms from one second to the next), so the
// modes alternate over several short rounds and the medians are reported.
func BenchmarkGroupCommitRatio(b *testing.B) {
	const rounds = 5
	for _, w := range []int{64, 256} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			var group, single, ratio []float64
			for range b.N {
				for range rounds {
					g := durableRate(b, 0, w, 20*w)
					s := durableRate(b, 1, w, 2*w)
					group, single, ratio = append(group, g), append(single, s), append(ratio, g/s)
				}
			}
			b.ReportMetric(median(group), "group-events/s")
			b.ReportMetric(median(single), "sync-per-event-events/s")
			b.ReportMetric(median(ratio), "ratio")
		})
	}
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// BenchmarkCall is one Begin and Finish (two durable records) per
// operation from 64 goroutines: the gateway's cost per consumer call.
func BenchmarkCall(b *testing.B) {
	opt := testOptions(b.TempDir())
	opt.CheckpointEvery = 1024
	s := openStore(b, opt)
	defer s.Close()
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(32) // 64 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(n.Add(1))
			c, err := s.Begin(ctx, request(i))
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := c.Finish(ctx, outcome(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

func BenchmarkVerify(b *testing.B) {
	s := openStore(b, testOptions(b.TempDir()))
	defer s.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := g; i < 10000; i += 64 {
				s.Begin(ctx, request(i))
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	for range b.N {
		if rep, err := Verify(ctx, s, testPub); err != nil || !rep.OK() {
			b.Fatal(rep, err)
		}
	}
	b.ReportMetric(float64(b.N*10000)/b.Elapsed().Seconds(), "records/s")
}
