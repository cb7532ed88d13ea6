package loadbench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the nearest-rank quantile of a sorted sample.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func TestHistogramQuantile(t *testing.T) {
	seq := func(from, to, step time.Duration) []time.Duration {
		var out []time.Duration
		for v := from; v <= to; v += step {
			out = append(out, v)
		}
		return out
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lognormal := make([]time.Duration, 50000)
	for i := range lognormal {
		lognormal[i] = time.Duration(math.Exp(rng.NormFloat64()*0.8 + math.Log(400e3))) // ~400µs median
	}
	tests := []struct {
		name   string
		sample []time.Duration
		q      float64
		want   time.Duration // 0: compare with exactQuantile
		relErr float64
	}{
		{"single value", []time.Duration{1500 * time.Microsecond}, 0.99, 1500 * time.Microsecond, 0},
		{"small values are exact, p50", seq(1, 100, 1), 0.50, 50, 0},
		{"small values are exact, p99", seq(1, 100, 1), 0.99, 99, 0},
		{"small values are exact, p100", seq(1, 100, 1), 1.00, 100, 0},
		{"1..1000µs p50", seq(time.Microsecond, time.Millisecond, time.Microsecond), 0.50, 500 * time.Microsecond, 0.01},
		{"1..1000µs p99", seq(time.Microsecond, time.Millisecond, time.Microsecond), 0.99, 990 * time.Microsecond, 0.01},
		{"1..1000µs p99.9", seq(time.Microsecond, time.Millisecond, time.Microsecond), 0.999, 999 * time.Microsecond, 0.01},
		{"outliers: p99 of 99×1ms + 1×1s", append(slices.Repeat([]time.Duration{time.Millisecond}, 99), time.Second), 0.99, time.Millisecond, 0.01},
		{"outliers: p99 of 98×1ms + 2×1s", append(slices.Repeat([]time.Duration{time.Millisecond}, 98), time.Second, time.Second), 0.99, time.Second, 0},
		{"lognormal p50", lognormal, 0.50, 0, 0.01},
		{"lognormal p99", lognormal, 0.99, 0, 0.01},
		{"lognormal p99.9", lognormal, 0.999, 0, 0.01},
		{"huge values", []time.Duration{time.Hour, 2 * time.Hour, math.MaxInt64}, 0.50, 2 * time.Hour, 0.01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Split the sample over several histograms, as workers do.
			var parts [3]Histogram
			for i, v := range tt.sample {
				parts[i%3].Record(v)
			}
			var h Histogram
			for i := range parts {
				h.Merge(&parts[i])
			}
			if h.Count() != uint64(len(tt.sample)) {
				t.Fatalf("count %d, want %d", h.Count(), len(tt.sample))
			}
			want := tt.want
			if want == 0 {
				sorted := slices.Clone(tt.sample)
				slices.Sort(sorted)
				want = exactQuantile(sorted, tt.q)
			}
			got := h.Quantile(tt.q)
			if rel := math.Abs(float64(got)-float64(want)) / float64(want); rel > tt.relErr {
				t.Errorf("Quantile(%v) = %v, want %v (relative error %.4f > %.4f)", tt.q, got, want, rel, tt.relErr)
			}
		})
	}
}

func TestHistogramEmptyAndMax(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 || h.Max() != 0 {
		t.Fatal("empty histogram should answer 0")
	}
	h.Record(-5)
	h.Record(3 * time.Millisecond)
	if h.Max() != 3*time.Millisecond {
		t.Errorf("max %v", h.Max())
	}
	if h.Quantile(0.5) != 0 {
		t.Errorf("p50 %v, want 0 (negative recorded as 0)", h.Quantile(0.5))
	}
}

// TestBuckets checks that buckets tile the value range without gaps and stay
// within 1/128 relative width.
func TestBuckets(t *testing.T) {
	prevHi := uint64(0)
	for i := 1; i < histBuckets; i++ {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d,%d] maps to %d,%d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if lo >= subCount && float64(hi-lo+1)/float64(lo) > 1.0/128+1e-12 {
			t.Fatalf("bucket %d [%d,%d] is too wide", i, lo, hi)
		}
		prevHi = hi
	}
	if prevHi != math.MaxUint64 {
		t.Fatalf("last bucket ends at %d", prevHi)
	}
}

func TestMedianRound(t *testing.T) {
	rs := []Stats{{RPS: 300}, {RPS: 100}, {RPS: 200}}
	if got := medianRound(rs).RPS; got != 200 {
		t.Errorf("median of 3 = %v", got)
	}
	if got := medianRound(rs[:2]).RPS; got != 100 {
		t.Errorf("median of 2 = %v, want the lower", got)
	}
	if rs[0].RPS != 300 {
		t.Error("medianRound reordered its argument")
	}
}
