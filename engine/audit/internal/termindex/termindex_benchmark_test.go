package termindex

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// settle writes what is in memory and runs merges until none is due, so that a
// benchmark pays for the background work its adds caused.
func settle(b *testing.B, x *Index) {
	if err := x.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := x.quiesce(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAdd: one op is one term (audited calls add ~10 terms per seq), with the
// flushes and merges it causes; cpu-ns/term counts every goroutine's CPU.
func BenchmarkAdd(b *testing.B) {
	for _, flush := range []int{1 << 18, 1 << 20} {
		b.Run(fmt.Sprintf("flush=%d", flush), func(b *testing.B) {
			x, err := Open(Options{Dir: b.TempDir(), FlushEntries: flush, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer x.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			var terms [10]uint64
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			seq := uint64(0)
			for n := 0; n < b.N; n += len(terms) {
				seq++
				for i := range terms {
					terms[i] = rng.Uint64N(1 << 22) // field values repeat, as names and orgs do
				}
				terms[0] = rng.Uint64() // a unique call id
				x.Add(seq, terms[:]...)
			}
			settle(b, x)
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/term")
			b.ReportMetric(float64(x.Stats().Runs), "runs")
		})
	}
}

const (
	fixtureSeqs     = 1_000_000 // × 10 terms = 10M pairs
	fixtureFrequent = 1 << 63   // the term every 10th seq has
)

func uniqueTerm(seq uint64) uint64 { return seq*0x9E3779B97F4A7C15 | 1 }

// fixture builds 10M pairs in 10 runs (merging off), as an index a year old might
// be between merges.
func fixture(b *testing.B, blockEntries int) string {
	dir := b.TempDir()
	x, err := Open(Options{Dir: dir, FlushEntries: 1 << 20, Logger: quiet, blockEntries: blockEntries, noMerge: true})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var terms [10]uint64
	for seq := uint64(1); seq <= fixtureSeqs; seq++ {
		terms[0] = uniqueTerm(seq)
		for i := 1; i < len(terms); i++ {
			terms[i] = rng.Uint64N(1 << 20)
		}
		if seq%10 == 0 {
			terms[1] = fixtureFrequent
		}
		x.Add(seq, terms[:]...)
	}
	if err := x.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

func BenchmarkSeqs(b *testing.B) {
	for _, be := range []int{64, 256, 1024} {
		dir := fixture(b, be)
		x, err := Open(Options{Dir: dir, Logger: quiet, noMerge: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("unique/block=%d", be), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(5, 6))
			b.ReportMetric(float64(x.Stats().Runs), "runs")
			for b.Loop() {
				seq := rng.Uint64N(fixtureSeqs) + 1
				it := x.Seqs(uniqueTerm(seq), 0, ^uint64(0), true)
				got, ok := it.Next()
				if !ok || got != seq {
					b.Fatalf("unique term of %d: %d %v %v", seq, got, ok, it.Err())
				}
				it.Close()
			}
		})
		b.Run(fmt.Sprintf("frequent-page100/block=%d", be), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(5, 6))
			for b.Loop() {
				hi := rng.Uint64N(fixtureSeqs) + 1
				it := x.Seqs(fixtureFrequent, 0, hi, true)
				n := 0
				for ; n < 100; n++ {
					if _, ok := it.Next(); !ok {
						break
					}
				}
				it.Close()
				if n < 100 && hi > 1000 {
					b.Fatalf("page below %d: %d results, %v", hi, n, it.Err())
				}
			}
		})
		b.Run(fmt.Sprintf("open/block=%d", be), func(b *testing.B) {
			for b.Loop() {
				y, err := Open(Options{Dir: dir, Logger: quiet, noMerge: true})
				if err != nil {
					b.Fatal(err)
				}
				y.Close()
			}
		})
		x.Close()
	}
}
