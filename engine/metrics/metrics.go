// Package metrics counts what an operator of OpenFSB watches — requests by
// service, consumer and status, latencies per flow and per source call,
// retries, timeouts, circuits, load shedding, WASM pools, the audit trail's
// commits and access refusals — in a client_golang registry private to one
// gateway (never the process-wide default), and serves them through promhttp
// on the admin listener.
//
// It is fed through small hooks: flow.Observer for source calls, Request
// and Refusal for what the gateway decides, a flow.Plugin wrapper, the
// breaker's hooks and the audit store's commits. It must not know about
// HTTP routing, access rules or the audit record format. Labels stay
// bounded: a consumer is its organisation (never an end user), an unknown
// route is "unmatched", and every metric has a series limit past which new
// label values count under "other".
package metrics

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"runtime/metrics"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/wasm"
)

// ContentType is the Prometheus text exposition format (0.0.4) of Gather.
// ServeHTTP negotiates with the scraper; its text answers carry this type
// plus an "escaping" parameter.
const ContentType = string(expfmt.FmtText)

// Label values the package writes itself.
const (
	Unmatched = "unmatched" // a request no flow's route matched
	Anonymous = "anonymous" // a call without a known organisation
)

// Options bound the registry.
type Options struct {
	// MaxConsumers is how many distinct consumer label values are kept
	// (default 1000); later organisations count as "other".
	MaxConsumers int
	// MaxSeries bounds every metric's series (default 10000).
	MaxSeries int
}

// Metrics is one gateway's metrics. Safe for concurrent use; the zero
// value is not usable, call New. A nil *Metrics ignores every call, so a
// gateway without metrics pays one nil check.
type Metrics struct {
	reg       *prometheus.Registry // private: never prometheus.DefaultRegisterer
	handler   http.Handler
	maxSeries int

	requests      *children[k3, prometheus.Counter]
	requestTime   *children[k1, prometheus.Observer]
	consumers     *children[k1, string] // the bounded set of consumer label values
	sourceCalls   *children[k3, prometheus.Counter]
	sourceTime    *children[k2, prometheus.Observer]
	retries       *children[k2, prometheus.Counter]
	timeouts      *children[k2, prometheus.Counter]
	circuitState  *children[k1, *circuit]
	circuitReject *children[k1, prometheus.Counter]
	shed          *children[k1, prometheus.Counter]
	pluginTime    *children[k1, prometheus.Observer]
	pluginFails   *children[k2, prometheus.Counter]
	auditTime     *children[k1, prometheus.Observer]
	auditRecords  *children[k1, prometheus.Counter]
	auditFailures *children[k1, prometheus.Counter]
	refusals      *children[k2, prometheus.Counter]
	quota         *children[k2, prometheus.Counter]
	reloads       *children[k1, prometheus.Counter]
	generation    *children[k1, prometheus.Gauge]

	// Read at every scrape; set once the gateway has built what they read.
	plugins    atomic.Pointer[func() map[string]flow.Plugin]
	auditQueue atomic.Pointer[func() int]
	inFlight   atomic.Pointer[func() (inFlight, capacity int)]
}

// circuit is one source's circuit state gauge, and whether it is open (for
// fsb_circuits_open: a gauge cannot be read back).
type circuit struct {
	state prometheus.Gauge
	open  atomic.Bool
}

// New returns metrics with an empty private registry.
func New(o Options) *Metrics {
	if o.MaxConsumers <= 0 {
		o.MaxConsumers = 1000
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = 10000
	}
	m := &Metrics{reg: prometheus.NewRegistry(), maxSeries: o.MaxSeries}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	m.requests = counters[k3](m, "fsb_requests_total", "Consumer requests answered, by service (flow), consumer organisation and HTTP status.", "service", "consumer", "status")
	m.requestTime = histograms[k1](m, "fsb_request_duration_seconds", "Time to answer a consumer request, by service (flow).", "service")
	m.consumers = newChildren[k1](o.MaxConsumers, []string{"consumer"}, func(lv []string) string { return lv[0] }) // not exposed: bounds the consumer label
	m.sourceCalls = counters[k3](m, "fsb_source_calls_total", "Calls to sources, by source, operation and outcome (ok, status_5xx, timeout, unreachable, error, circuit_open: rejected by an open circuit without reaching the source).", "source", "operation", "outcome")
	m.sourceTime = histograms[k2](m, "fsb_source_call_duration_seconds", "Duration of source calls, retries included, by source and operation.", "source", "operation")
	m.retries = counters[k2](m, "fsb_source_retries_total", "Retries of source calls by the connector, by source and operation.", "source", "operation")
	m.timeouts = counters[k2](m, "fsb_source_timeouts_total", "Source calls that timed out, by source and operation.", "source", "operation")
	states := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fsb_circuit_state", Help: "Circuit breaker state per source: 0 closed, 1 half-open, 2 open."}, []string{"source"})
	m.reg.MustRegister(states)
	m.circuitState = newChildren[k1](o.MaxSeries, []string{"source"}, func(lv []string) *circuit { return &circuit{state: states.WithLabelValues(lv...)} })
	m.circuitReject = counters[k1](m, "fsb_circuit_rejected_total", "Calls answered by an open circuit without reaching the source.", "source")
	m.shed = counters[k1](m, "fsb_shed_total", "Consumer requests refused with 503 because the engine was saturated.", "listener")
	m.pluginTime = histograms[k1](m, "fsb_wasm_call_duration_seconds", "Duration of WASM plugin calls, by plugin.", "plugin")
	m.pluginFails = counters[k2](m, "fsb_wasm_failures_total", "Failed WASM plugin calls, by plugin and kind (timeout, trap, memory, other).", "plugin", "kind")
	m.auditTime = histograms[k1](m, "fsb_audit_commit_duration_seconds", "Duration of one audit group commit.", "store")
	m.auditRecords = counters[k1](m, "fsb_audit_records_total", "Audit records committed.", "store")
	m.auditFailures = counters[k1](m, "fsb_audit_commit_failures_total", "Audit group commits whose write, or checkpoint after it, failed (the store refuses calls until reopened).", "store")
	m.refusals = counters[k2](m, "fsb_access_refusals_total", "Consumer calls refused by access control, by service and the check that refused.", "service", "step")
	m.quota = counters[k2](m, "fsb_quota_refusals_total", "Consumer calls refused because the grant's quota was used up, by service and consumer organisation.", "service", "consumer")
	m.reloads = counters[k1](m, "fsb_reloads_total", "Flow set reloads, by result (ok, refused).", "result")
	m.generation = gauges[k1](m, "fsb_flow_set_generation", "Generation of the flow set being served (1 at start, +1 per reload).", "dir")
	m.readMetrics()
	return m
}

// Request counts one answered consumer request. service is the flow name
// ("" for a request no route matched), consumer the organisation id ("" for
// none).
func (m *Metrics) Request(service, consumer string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if service == "" {
		service = Unmatched
	}
	m.requests.get(k3{service, m.consumer(consumer), statusText(status)}).Inc()
	m.requestTime.get(k1{service}).Observe(d.Seconds())
}

// consumer bounds the consumer label: the first MaxConsumers organisations
// seen keep their id, later ones count as "other".
func (m *Metrics) consumer(org string) string {
	if org == "" {
		return Anonymous
	}
	return m.consumers.get(k1{org})
}

func statusText(s int) string {
	if s < 100 || s > 599 {
		return other
	}
	return statusTexts[s-100]
}

// statusTexts spares an allocation per request.
var statusTexts = func() (out [500]string) {
	for i := range out {
		out[i] = strconv.Itoa(100 + i)
	}
	return out
}()

// Refusal counts a call access control refused at step (access.Step*);
// a "quota" refusal counts as a quota refusal of the consumer too.
func (m *Metrics) Refusal(service, consumer, step string) {
	if m == nil {
		return
	}
	if service == "" {
		service = Unmatched
	}
	m.refusals.get(k2{service, step}).Inc()
	if step == "quota" {
		m.quota.get(k2{service, m.consumer(consumer)}).Inc()
	}
}

// SourceCall implements flow.Observer.
func (m *Metrics) SourceCall(_ context.Context, c *flow.SourceCall) {
	if m == nil {
		return
	}
	outcome := "ok"
	switch {
	case c.Err != nil && errors.Is(c.Err, connector.ErrCircuitOpen):
		// Rejected by the source's open circuit: not a call to the source,
		// so no duration (it would drag the latencies towards zero).
		m.sourceCalls.get(k3{c.Source, c.Operation, "circuit_open"}).Inc()
		return
	case c.Err == nil && c.Status >= 500:
		outcome = "status_5xx"
	case c.Err == nil:
	case errors.Is(c.Err, connector.ErrTimeout):
		outcome = "timeout"
		m.timeouts.get(k2{c.Source, c.Operation}).Inc()
	case errors.Is(c.Err, connector.ErrUnavailable):
		outcome = "unreachable"
	default:
		outcome = "error"
	}
	m.sourceCalls.get(k3{c.Source, c.Operation, outcome}).Inc()
	m.sourceTime.get(k2{c.Source, c.Operation}).Observe(c.Duration.Seconds())
	if c.Attempts > 1 {
		m.retries.get(k2{c.Source, c.Operation}).Add(float64(c.Attempts - 1))
	}
}

// CircuitState records a source's circuit state (breaker.Hooks.StateChange).
func (m *Metrics) CircuitState(source, _, to string) {
	if m == nil {
		return
	}
	v := 0.0
	switch to {
	case "half-open":
		v = 1
	case "open":
		v = 2
	}
	c := m.circuitState.get(k1{source})
	c.open.Store(to == "open")
	c.state.Set(v)
}

// CircuitRejected counts a call an open circuit answered (breaker.Hooks.Rejected).
func (m *Metrics) CircuitRejected(source string) {
	if m != nil {
		m.circuitReject.get(k1{source}).Inc()
	}
}

// Shed counts a request the load limiter refused; listener names the
// listener (consumer, test).
func (m *Metrics) Shed(listener string) {
	if m != nil {
		m.shed.get(k1{listener}).Inc()
	}
}

// AuditCommit records one group commit of the audit store: how many records
// it made durable, how long their write took and whether it failed.
func (m *Metrics) AuditCommit(records int, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.auditTime.get(k1{"default"}).Observe(d.Seconds())
	if err != nil {
		m.auditFailures.get(k1{"default"}).Inc()
	}
	m.auditRecords.get(k1{"default"}).Add(float64(records)) // durable even when the checkpoint after them failed
}

// Reload records a reload attempt (engine/reload Options.OnReload):
// generation 0 means refused.
func (m *Metrics) Reload(dir string, generation uint64, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.reloads.get(k1{"refused"}).Inc()
		return
	}
	if generation > 1 {
		m.reloads.get(k1{"ok"}).Inc()
	}
	m.generation.get(k1{dir}).Set(float64(generation))
}

// SetPlugins gives the function that returns the plugins being served, read
// at every scrape for the WASM pool gauges (with hot reload, the current
// snapshot's).
func (m *Metrics) SetPlugins(f func() map[string]flow.Plugin) { m.plugins.Store(&f) }

// SetAuditQueue gives the function that returns the audit store's queue depth.
func (m *Metrics) SetAuditQueue(f func() int) { m.auditQueue.Store(&f) }

// SetInFlight gives the function that returns the load limiter's calls in
// flight and capacity.
func (m *Metrics) SetInFlight(f func() (inFlight, capacity int)) { m.inFlight.Store(&f) }

// statser is a plugin that reports its pool (wasm.Module).
type statser interface{ Stats() wasm.Stats }

// readMetrics registers the metrics read at scrape time.
func (m *Metrics) readMetrics() {
	pool := func(name, help string, typ prometheus.ValueType, labels []string, pick func(emit func(float64, ...string), plugin string, s wasm.Stats)) {
		m.readMetric(name, help, typ, labels, func(emit func(float64, ...string)) {
			f := m.plugins.Load()
			if f == nil {
				return
			}
			for name, p := range (*f)() {
				if s, ok := p.(statser); ok {
					pick(emit, name, s.Stats())
				}
			}
		})
	}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	pool("fsb_wasm_pool_instances", "WASM instances alive in a plugin's pool, by state (idle, busy).", gauge, []string{"plugin", "state"},
		func(emit func(float64, ...string), p string, s wasm.Stats) {
			emit(float64(s.Idle), p, "idle")
			emit(float64(s.Live-s.Idle), p, "busy")
		})
	pool("fsb_wasm_pool_peak", "Most WASM instances alive at once in a plugin's pool.", gauge, []string{"plugin"},
		func(emit func(float64, ...string), p string, s wasm.Stats) { emit(float64(s.Peak), p) })
	pool("fsb_wasm_calls_total", "Calls that reached a plugin's pool (since its flow set was loaded).", counter, []string{"plugin"},
		func(emit func(float64, ...string), p string, s wasm.Stats) { emit(float64(s.Calls), p) })
	pool("fsb_wasm_instantiations_total", "WASM instances started (the probe instance of a load included).", counter, []string{"plugin"},
		func(emit func(float64, ...string), p string, s wasm.Stats) { emit(float64(s.Instantiations), p) })
	pool("fsb_wasm_pool_hits_total", "Calls served by an idle instance already warm.", counter, []string{"plugin"},
		func(emit func(float64, ...string), p string, s wasm.Stats) { emit(float64(s.Hits), p) })
	pool("fsb_wasm_instances_discarded_total", "WASM instances closed after a failed call.", counter, []string{"plugin"},
		func(emit func(float64, ...string), p string, s wasm.Stats) { emit(float64(s.Discarded), p) })
	pool("fsb_wasm_instances_recycled_total", "Healthy WASM instances replaced after their call budget or memory growth.", counter, []string{"plugin"},
		func(emit func(float64, ...string), p string, s wasm.Stats) { emit(float64(s.Recycled), p) })

	m.readMetric("fsb_audit_queue_depth", "Audit records waiting for the group commit.", gauge, nil, func(emit func(float64, ...string)) {
		if f := m.auditQueue.Load(); f != nil {
			emit(float64((*f)()))
		}
	})
	m.readMetric("fsb_inflight_requests", "Consumer requests being served, and the limiter's capacity.", gauge, []string{"kind"}, func(emit func(float64, ...string)) {
		if f := m.inFlight.Load(); f != nil {
			n, c := (*f)()
			emit(float64(n), "inflight")
			emit(float64(c), "capacity")
		}
	})
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fsb_circuits_open", Help: "Sources whose circuit is open."}, func() float64 {
		n := 0
		m.circuitState.each(func(c *circuit) {
			if c.open.Load() {
				n++
			}
		})
		return float64(n)
	}))

	// Three runtime figures under the names this package has always used;
	// collectors.NewGoCollector would name the last two differently.
	runtimeMetric := func(sample string) func() float64 {
		return func() float64 {
			s := []metrics.Sample{{Name: sample}}
			metrics.Read(s)
			if s[0].Value.Kind() != metrics.KindUint64 {
				return 0
			}
			return float64(s[0].Value.Uint64())
		}
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "go_goroutines", Help: "Goroutines that currently exist."}, runtimeMetric("/sched/goroutines:goroutines")),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "go_heap_objects_bytes", Help: "Memory occupied by live and not yet swept heap objects."}, runtimeMetric("/memory/classes/heap/objects:bytes")),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "go_gc_cycles_total", Help: "Completed GC cycles."}, runtimeMetric("/gc/cycles/total:gc-cycles")),
	)
}

// Gather returns every metric in the text format (ContentType). A metric
// that cannot be gathered is left out (ServeHTTP answers 500 instead).
func (m *Metrics) Gather() []byte {
	families, _ := m.reg.Gather()
	var b bytes.Buffer
	for _, f := range families {
		_, _ = expfmt.MetricFamilyToText(&b, f)
	}
	return b.Bytes()
}

// ServeHTTP serves the metrics (net/http) through promhttp: the text format
// unless the scraper asks for protobuf, gzip if it accepts it.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	m.handler.ServeHTTP(w, r)
}

// Handler serves the metrics from a fiber app (the admin listener).
func (m *Metrics) Handler() fiber.Handler { return adaptor.HTTPHandler(m) }

var (
	_ flow.Observer = (*Metrics)(nil)
	_ http.Handler  = (*Metrics)(nil)
)
