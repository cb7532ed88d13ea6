package metrics

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// This file puts client_golang behind the package's bounds: a per-key cache
// of child collectors in front of each vector (README.md, "Why a cache in
// front of client_golang"), and a collector for values read at scrape time.

// other replaces label values beyond a vector's series limit.
const other = "other"

// Keys of one, two and three labels: map keys that cost no allocation.
type (
	k1 [1]string
	k2 [2]string
	k3 [3]string
)

func (k k1) values() []string { return k[:] }
func (k k2) values() []string { return k[:] }
func (k k3) values() []string { return k[:] }

type key interface {
	comparable
	values() []string
}

// children caches a vector's child collectors (C: prometheus.Counter,
// prometheus.Observer, …) by key, and bounds them: past limit, every new
// key gets the child whose labels are all "other".
type children[K key, C any] struct {
	limit int
	child func(labelValues []string) C

	// m is copied on write: a lookup is an atomic load and a map read, no
	// lock word shared by every core (children are created rarely).
	m        atomic.Pointer[map[K]C]
	mu       sync.Mutex // serialises writers
	overflow *C
}

func newChildren[K key, C any](limit int, labels []string, child func(labelValues []string) C) *children[K, C] {
	var k K
	if len(k.values()) != len(labels) {
		panic("metrics: key and label names differ in length") // a programming error in New
	}
	c := &children[K, C]{limit: limit, child: child}
	c.m.Store(&map[K]C{})
	return c
}

// get returns the child for k, creating it (or the overflow child, past the
// limit) on first use.
func (c *children[K, C]) get(k K) C {
	if x, ok := (*c.m.Load())[k]; ok {
		return x
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.m.Load()
	if x, ok := old[k]; ok {
		return x
	}
	if len(old) >= c.limit {
		if c.overflow == nil {
			lv := k.values()
			for i := range lv {
				lv[i] = other
			}
			x := c.child(lv)
			c.overflow = &x
		}
		return *c.overflow
	}
	x := c.child(validUTF8(k.values()))
	next := make(map[K]C, len(old)+1)
	for k, y := range old {
		next[k] = y
	}
	next[k] = x
	c.m.Store(&next)
	return x
}

// each calls f for every child, the overflow one included.
func (c *children[K, C]) each(f func(C)) {
	for _, x := range *c.m.Load() {
		f(x)
	}
	c.mu.Lock()
	o := c.overflow
	c.mu.Unlock()
	if o != nil {
		f(*o)
	}
}

// validUTF8 repairs label values in place: client_golang refuses (panics
// on) a value that is not UTF-8, and a label value must never take the
// gateway down.
func validUTF8(lv []string) []string {
	for i, v := range lv {
		lv[i] = strings.ToValidUTF8(v, "\uFFFD")
	}
	return lv
}

func counters[K key](m *Metrics, name, help string, labels ...string) *children[K, prometheus.Counter] {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	m.reg.MustRegister(v)
	return newChildren[K](m.maxSeries, labels, func(lv []string) prometheus.Counter { return v.WithLabelValues(lv...) })
}

func gauges[K key](m *Metrics, name, help string, labels ...string) *children[K, prometheus.Gauge] {
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	m.reg.MustRegister(v)
	return newChildren[K](m.maxSeries, labels, func(lv []string) prometheus.Gauge { return v.WithLabelValues(lv...) })
}

func histograms[K key](m *Metrics, name, help string, labels ...string) *children[K, prometheus.Observer] {
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: durationBuckets}, labels)
	m.reg.MustRegister(v)
	return newChildren[K](m.maxSeries, labels, func(lv []string) prometheus.Observer { return v.WithLabelValues(lv...) })
}

// durationBuckets (seconds) suit gateway latencies: 0.5 ms to 10 s.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// readCollector is a metric whose series are read at scrape time from a
// function (the WASM pools, the audit queue, the load limiter): their
// label values are only known then, which prometheus.GaugeFunc cannot
// express. read emits nothing when there is nothing to report.
type readCollector struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	read func(emit func(value float64, labelValues ...string))
}

func (m *Metrics) readMetric(name, help string, typ prometheus.ValueType, labels []string, read func(emit func(float64, ...string))) {
	m.reg.MustRegister(&readCollector{desc: prometheus.NewDesc(name, help, labels, nil), typ: typ, read: read})
}

func (c *readCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *readCollector) Collect(ch chan<- prometheus.Metric) {
	c.read(func(v float64, lv ...string) {
		m, err := prometheus.NewConstMetric(c.desc, c.typ, v, validUTF8(lv)...)
		if err != nil {
			m = prometheus.NewInvalidMetric(c.desc, err) // the scrape reports it
		}
		ch <- m
	})
}

var _ prometheus.Collector = (*readCollector)(nil)
