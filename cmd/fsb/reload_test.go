package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// reloadFlow is the flow set of the reload tests: a REST source and the
// demo's project plugin (WASM), answering {"version": V, "name": …}.
// Version 0 is invalid: it calls an operation the source does not have.
func reloadFlow(up string, v int) string {
	op := "get"
	if v == 0 {
		op = "gte" // refused: one error, at its line and column
	}
	module, _ := filepath.Abs(filepath.Join(root, "plugins/project/project.wasm"))
	return fmt.Sprintf(`kind: Source
name: reg
protocol: rest
rest:
  baseUrl: %s
  operations:
    get: {method: GET, path: /item}
---
kind: Plugin
name: project
module: %s
digest: sha256:8a14cab40ece7f91213ca82ff29e7cc350f477475cdb5daa50f590e414ace1c4
---
kind: Flow
name: item
version: 1.0.0
method: GET
path: /item/v1/get
steps:
  - id: item
    call: reg.%s
  - id: kept
    transform: {plugin: project, input: steps.item.body, config: {keep: [name]}}
output:
  version: %d
  name: steps.kept.body.name
`, up, module, op, v)
}

// reloadEvents hears engine/reload's log lines: one event per reload
// served ("ok") or refused (the error, file:line:col first).
type reloadEvents struct {
	slog.Handler
	ch        chan string
	unchanged chan struct{} // "reload: no change", apart: a watch may add some
}

func (h reloadEvents) Enabled(context.Context, slog.Level) bool { return true }
func (h reloadEvents) Handle(_ context.Context, r slog.Record) error {
	switch {
	case r.Message == "reload: no change" && r.Level == slog.LevelInfo:
		select {
		case h.unchanged <- struct{}{}:
		default:
		}
	case strings.HasPrefix(r.Message, "reload: new flow set serving"):
		h.ch <- "ok"
	case strings.HasPrefix(r.Message, "reload: refused"):
		msg := "refused"
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "error" || a.Key == "err" {
				msg += " " + a.Value.String()
			}
			return true
		})
		h.ch <- msg
	}
	return nil
}
func (h reloadEvents) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h reloadEvents) WithGroup(string) slog.Handler      { return h }

// reloadRig is fsb serve started from a configuration file on a flow
// directory, with the admin listener (metrics) on.
type reloadRig struct {
	t       *testing.T
	dir     string // the flow directory
	tmp     string // where new versions are written before the rename
	up      string
	srv     *serving
	events  chan string
	same    chan struct{} // reloads that found no change
	client  *http.Client
	token   string
	version int // the version being served
}

func startReloadRig(t *testing.T, watch bool) *reloadRig {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name":"Alice","n":1}`)
	}))
	t.Cleanup(up.Close)
	base := t.TempDir()
	r := &reloadRig{t: t, dir: filepath.Join(base, "flows"), tmp: t.TempDir(), up: up.URL, events: make(chan string, 64), same: make(chan struct{}, 64),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	if err := os.Mkdir(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.write(1)
	r.version = 1
	r.token = "reload-test-admin-token-0123456789"
	writeFile(t, filepath.Join(base, "admin.token"), r.token, 0o600)
	writeFile(t, filepath.Join(base, "fsb.yaml"), fmt.Sprintf(`flows: flows
listeners:
  consumer: {addr: 127.0.0.1:0}
  admin: {addr: 127.0.0.1:0}
keys: {adminToken: admin.token}
log: {level: warn}
reload: {watch: %v, debounce: 10ms}
`, watch), 0o644)
	r.srv = serveConfigFile(t, filepath.Join(base, "fsb.yaml"), serveOptions{log: slog.New(reloadEvents{ch: r.events, unchanged: r.same})})
	return r
}

// write replaces the flow file atomically (write elsewhere, rename in), as
// OPERATING.md tells operators to.
func (r *reloadRig) write(v int) {
	r.t.Helper()
	tmp := filepath.Join(r.tmp, "set.yaml")
	writeFile(r.t, tmp, reloadFlow(r.up, v), 0o644)
	if err := os.Rename(tmp, filepath.Join(r.dir, "set.yaml")); err != nil {
		r.t.Fatal(err)
	}
}

// wait returns the next reload event.
func (r *reloadRig) wait() string {
	r.t.Helper()
	select {
	case e := <-r.events:
		return e
	case <-time.After(10 * time.Second):
		r.t.Fatal("no reload within 10s")
		return ""
	}
}

// call calls the flow and returns the version that answered.
func (r *reloadRig) call() (int, error) {
	resp, err := r.client.Get("http://" + r.srv.addr + "/item/v1/get")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		Version int
		Name    string
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || out.Name != "Alice" {
		return 0, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return out.Version, nil
}

// metric reads one series from the admin listener's metrics.
func (r *reloadRig) metric(series string) float64 {
	r.t.Helper()
	text := scrapeMetrics(r.t, r.srv.adminAddr, r.token)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		r.t.Fatalf("metrics lack %s:\n%s", series, text)
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	return f
}

// TestServeReloadUnderLoad is issue 8's reload test at the level of fsb
// serve: the server started from a configuration file, 8 clients calling
// without pause, the flow file replaced 100 times in the watched directory
// (two valid versions in turn, an invalid set every tenth, which is
// refused with its file:line:col while the old set keeps serving). No call
// fails, a call after each reload answers the new version, and heap and
// goroutines return to their level.
func TestServeReloadUnderLoad(t *testing.T) {
	r := startReloadRig(t, true)
	if v, err := r.call(); err != nil || v != 1 {
		t.Fatalf("first call: %d, %v", v, err)
	}
	const clients, warmup, total = 8, 10, 100
	refusedAt := regexp.MustCompile(`^refused \S+/flows/set\.yaml:\d+:\d+: `)
	ok, refused := 0, 0
	phase := func(from, to int) {
		var stop atomic.Bool
		var calls, failures atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for !stop.Load() {
					if _, err := r.call(); err != nil {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
					calls.Add(1)
				}
			})
		}
		for i := from + 1; i <= to; i++ {
			if i%10 == 0 { // invalid: refused, the current version keeps serving
				r.write(0)
				if e := r.wait(); !refusedAt.MatchString(e) {
					t.Fatalf("reload %d: %q, want a refusal at file:line:col", i, e)
				}
				refused++
			} else {
				r.version = 3 - r.version
				r.write(r.version)
				if e := r.wait(); e != "ok" {
					t.Fatalf("reload %d: %s", i, e)
				}
				ok++
			}
			if v, err := r.call(); err != nil || v != r.version {
				t.Fatalf("after reload %d: version %d (%v), want %d", i, v, err, r.version)
			}
		}
		stop.Store(true)
		wg.Wait()
		if n := failures.Load(); n > 0 {
			t.Fatalf("%d of %d calls failed while reloading; first: %v", n, calls.Load(), firstErr.Load())
		}
		t.Logf("reloads %d–%d: %d calls, none failed", from+1, to, calls.Load())
		r.client.CloseIdleConnections()
	}
	settle := func() (heap uint64, g int) {
		// Replaced snapshots close in the background once their last call
		// ended; give them a moment, then measure.
		deadline := time.Now().Add(5 * time.Second)
		for {
			heap = heapAfterGC()
			g, _ = countGoroutines()
			if time.Now().After(deadline) {
				return heap, g
			}
			time.Sleep(50 * time.Millisecond)
			if h2 := heapAfterGC(); h2 >= heap*98/100 {
				return heap, g
			}
		}
	}

	phase(0, warmup)
	baseHeap, baseG := settle()
	phase(warmup, total)
	heap, g := settle()
	_, cleaners := countGoroutines()
	t.Logf("after %d reloads: heap %.1f MiB (%.1f MiB after %d), goroutines %d (%d after %d), fasthttp cleaners still ending %d",
		total, float64(heap)/(1<<20), float64(baseHeap)/(1<<20), warmup, g, baseG, warmup, cleaners)
	// 8 MiB: a generation kept alive costs ~10 MiB (its WASM instances'
	// memory above all) and ~7 goroutines — measured by leaking each
	// replaced snapshot: 1,060 MiB and 731 goroutines after 100 reloads —
	// so one leaked generation fails the test; the slack absorbs the GC's
	// timing and the runtime's caches.
	if heap > baseHeap+8<<20 {
		t.Errorf("heap grew from %.1f to %.1f MiB over %d reloads", float64(baseHeap)/(1<<20), float64(heap)/(1<<20), total-warmup)
	}
	// 10 goroutines: two leaked generations; the slack is for connections
	// the clients and the source are still closing.
	if g > baseG+10 {
		t.Errorf("goroutines grew from %d to %d over %d reloads", baseG, g, total-warmup)
	}
	if got := r.metric(`fsb_reloads_total{result="ok"}`); got != float64(ok) {
		t.Errorf("fsb_reloads_total ok = %v, want %d", got, ok)
	}
	if got := r.metric(`fsb_reloads_total{result="refused"}`); got != float64(refused) {
		t.Errorf("fsb_reloads_total refused = %v, want %d", got, refused)
	}
	if got := r.metric(`fsb_flow_set_generation{dir="` + r.dir + `"}`); got != float64(ok+1) {
		t.Errorf("fsb_flow_set_generation = %v, want %d", got, ok+1)
	}
	// The WASM pool gauges read the snapshot being served.
	if got := r.metric(`fsb_wasm_calls_total{plugin="project"}`); got < 1 {
		t.Errorf("fsb_wasm_calls_total of the current generation = %v", got)
	}
}

// TestServeReloadOnSIGHUP: without reload.watch, a change waits for SIGHUP.
func TestServeReloadOnSIGHUP(t *testing.T) {
	r := startReloadRig(t, false)
	r.write(2)
	if v, err := r.call(); err != nil || v != 1 {
		t.Fatalf("before SIGHUP: version %d, %v; want 1 (not watching)", v, err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if e := r.wait(); e != "ok" {
		t.Fatalf("SIGHUP: %s", e)
	}
	if v, err := r.call(); err != nil || v != 2 {
		t.Fatalf("after SIGHUP: version %d, %v; want 2", v, err)
	}
	// SIGHUP again, nothing changed: "reload: no change" at info.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.same:
	case <-time.After(10 * time.Second):
		t.Fatal("a SIGHUP without change logged no \"reload: no change\"")
	}
}

// countGoroutines counts goroutines but fasthttp's connection and DNS
// cache cleaners, which a closed REST connector leaves to end on their own
// (within its idle timeout, and within a minute for the DNS cache,
// engine/reload/README.md); it also returns how many of those there are.
func countGoroutines() (n, cleaners int) {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "fasthttp.(*HostClient).connsCleaner") || strings.Contains(g, "fasthttp.(*TCPDialer).tcpAddrsClean") {
			cleaners++
		} else {
			n++
		}
	}
	return n, cleaners
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
