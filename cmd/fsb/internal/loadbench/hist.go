package loadbench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records latencies in log-linear buckets, in the manner of an HDR
// histogram with 8 significant bits: values below 256 ns are exact, larger
// ones fall in buckets whose width is at most 1/128 of their lower bound.
// Quantile answers with the middle of a bucket, so its relative error is
// below 0.4% — well inside the ~1% the benchmark needs at p99.
//
// A Histogram is not safe for concurrent use: give each worker its own and
// Merge them at the end.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	min    uint64
	max    uint64
}

const (
	subBits     = 8
	subCount    = 1 << subBits // 256 exact values, then 128 buckets per power of two
	halfCount   = subCount / 2
	histBuckets = subCount + (64-subBits)*halfCount
)

// bucketOf maps a value to its bucket index.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits // ≥ 1
	m := v >> uint(e)            // in [128, 255]
	return subCount + (e-1)*halfCount + int(m-halfCount)
}

// bucketRange returns the smallest and largest value of a bucket.
func bucketRange(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	j := i - subCount
	e := j/halfCount + 1
	m := uint64(j%halfCount + halfCount)
	lo = m << uint(e)
	hi = lo + (uint64(1) << uint(e)) - 1
	return lo, hi
}

// Record adds one value (nanoseconds; negative values count as 0).
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
}

// Merge adds every value of o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest value recorded (exact).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Quantile returns the q-quantile (0 < q ≤ 1) by nearest rank: the value at
// rank ⌈q·n⌉ of the sorted sample, approximated by its bucket's middle and
// clamped to the exact minimum and maximum. It returns 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			v = min(max(v, h.min), h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
