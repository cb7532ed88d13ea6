package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/breaker"
)

// configRig is a configuration directory: fsb.yaml, flows/ with one flow
// calling the source at up, and an admin token.
type configRig struct {
	dir, file, token string
}

func newConfigRig(t *testing.T, up, yaml string) *configRig {
	t.Helper()
	c := &configRig{dir: t.TempDir(), token: "config-test-admin-token-0123456789"}
	c.file = filepath.Join(c.dir, "fsb.yaml")
	writeFlows(t, c.dir, up)
	writeFile(t, filepath.Join(c.dir, "admin.token"), c.token, 0o600)
	writeFile(t, c.file, yaml, 0o644)
	return c
}

// TestServeCheck: --check validates the file and loads the flows as
// serving would, prints ok or every error at its file:line:col, exits 0 or
// 1 and listens on nothing (the address it names is taken).
func TestServeCheck(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	c := newConfigRig(t, "http://127.0.0.1:9", "flows: flows\nlisteners:\n  consumer: {addr: "+taken.Addr().String()+"}\n")
	// Without a file, --check takes the flags and DIR.
	var o, e bytes.Buffer
	if code := run([]string{"serve", "--check", "-addr", taken.Addr().String(), filepath.Join(c.dir, "flows")}, &o, &e); code != 0 || o.String() != "ok\n" {
		t.Errorf("--check DIR: exit %d, %q %s", code, o.String(), e.String())
	}
	for _, tc := range []struct {
		name   string
		edit   func()
		code   int
		stdout string
		stderr []string
	}{
		{"valid", func() {}, 0, "ok\n", nil},
		{"config errors", func() {
			writeFile(t, c.file, "flows: flows\nlistners: {}\nlimits:\n  maxWait: soon\n", 0o644)
		}, 1, "", []string{c.file + `:2:1: unknown key "listners": did you mean "listeners"?`, c.file + ":4:12: ", "   4 |   maxWait: soon"}},
		{"flow errors", func() {
			writeFile(t, c.file, "flows: flows\n", 0o644)
			b, _ := os.ReadFile(filepath.Join(c.dir, "flows", "x.yaml"))
			writeFile(t, filepath.Join(c.dir, "flows", "x.yaml"), strings.Replace(string(b), "reg.get", "reg.gte", 1), 0o644)
		}, 1, "", []string{filepath.Join(c.dir, "flows", "x.yaml") + ":16:11: ", "1 error in the flows under " + filepath.Join(c.dir, "flows") + "\n"}},
		{"key file readable by others", func() {
			writeFile(t, filepath.Join(c.dir, "flows", "x.yaml"), "kind: Source\nname: reg\nprotocol: rest\nrest:\n  baseUrl: http://127.0.0.1:9\n  operations:\n    get: {method: GET, path: /x}\n", 0o644)
			writeFile(t, c.file, "flows: flows\nlisteners:\n  admin: {addr: 127.0.0.1:0}\nkeys:\n  adminToken: admin.token\n", 0o644)
			if err := os.Chmod(filepath.Join(c.dir, "admin.token"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 1, "", []string{c.file + ":5:15: keys.adminToken: ", "chmod 600", "1 error in " + c.file + "\n"}},
		// What serve refuses, --check refuses, at the key (issue 8).
		{"port out of range", func() {
			writeFile(t, c.file, "flows: flows\nlisteners:\n  consumer: {addr: 127.0.0.1:99999}\n", 0o644)
		}, 1, "", []string{c.file + `:3:20: listeners.consumer.addr "127.0.0.1:99999": the port must be a number from 0 to 65535`}},
		{"host that does not resolve", func() {
			writeFile(t, c.file, "flows: flows\nlisteners:\n  consumer: {addr: '127.0.0.300:8080'}\n", 0o644)
		}, 1, "", []string{c.file + `:3:20: listeners.consumer.addr "127.0.0.300": cannot listen there`, "1 error in " + c.file + "\n"}},
		{"admin token too short", func() {
			writeFile(t, filepath.Join(c.dir, "short.token"), "abcde", 0o600)
			writeFile(t, c.file, "flows: flows\nlisteners:\n  admin: {addr: 127.0.0.1:0}\nkeys:\n  adminToken: short.token\n", 0o644)
		}, 1, "", []string{c.file + ":5:15: keys.adminToken: the token in " + filepath.Join(c.dir, "short.token") + " must be at least 16 characters"}},
		{"missing key file", func() {
			writeFile(t, c.file, "flows: flows\nlisteners:\n  admin: {addr: 127.0.0.1:0}\nkeys:\n  adminToken: keys/admin-token.txt\n", 0o644)
		}, 1, "", []string{c.file + ":5:15: keys.adminToken: " + filepath.Join(c.dir, "keys", "admin-token.txt") + " does not exist: create it with `fsb audit secret -out " + filepath.Join(c.dir, "keys", "admin-token.txt") + "`"}},
	} {
		tc.edit()
		var stdout, stderr bytes.Buffer
		code := run([]string{"serve", "--config", c.file, "--check"}, &stdout, &stderr)
		if code != tc.code || stdout.String() != tc.stdout {
			t.Errorf("%s: exit %d, stdout %q, want %d and %q\n%s", tc.name, code, stdout.String(), tc.code, tc.stdout, stderr.String())
		}
		for _, w := range tc.stderr {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%s: stderr lacks %q:\n%s", tc.name, w, stderr.String())
			}
		}
	}

	// A bad flag is not an error in the file.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"serve", "--config", c.file, "--check", "-addr", "nowhere"}, &stdout, &stderr); code != 1 ||
		!strings.HasPrefix(stderr.String(), `flag -addr: listeners.consumer.addr "nowhere"`) || !strings.HasSuffix(stderr.String(), "\n1 error\n") {
		t.Errorf("a bad flag: exit %d\n%s", code, stderr.String())
	}

	// --check writes nothing into the data directory (no WASM cache there).
	writeFile(t, c.file, "flows: flows\ndataDir: data\n", 0o644)
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"serve", "--config", c.file, "--check"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--check with a data directory: exit %d\n%s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(c.dir, "data")); !os.IsNotExist(err) {
		t.Errorf("--check wrote into the data directory: %v", err)
	}
}

// TestServeConfigPrecedence: defaults < file < FSB_ environment < flags
// given explicitly; a flag's default never overrides the file; an error in
// a flag's value names the flag.
func TestServeConfigPrecedence(t *testing.T) {
	c := newConfigRig(t, "http://127.0.0.1:9", "flows: flows\nlisteners:\n  consumer: {addr: 127.0.0.1:1111}\nlog: {level: warn, format: json}\n")
	load := func(args ...string) (*serveFlags, func(string) bool) {
		t.Helper()
		fs := newServeFlagSet()
		var f serveFlags
		f.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return &f, flagsSet(fs)
	}
	f, set := load()
	cfg, err := serveConfig(c.file, "", f, set)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listeners.Consumer.Addr != "127.0.0.1:1111" || cfg.Log.Format != "json" || cfg.Log.Level != "warn" {
		t.Errorf("file: addr %s, log %+v (flag defaults must not override the file)", cfg.Listeners.Consumer.Addr, cfg.Log)
	}
	t.Setenv("FSB_LISTENERS_CONSUMER_ADDR", "127.0.0.1:2222")
	if cfg, err = serveConfig(c.file, "", f, set); err != nil || cfg.Listeners.Consumer.Addr != "127.0.0.1:2222" {
		t.Errorf("environment: %v, %v", cfg.Listeners.Consumer.Addr, err)
	}
	other := t.TempDir()
	f, set = load("-addr", "127.0.0.1:3333", "-log-level", "debug")
	if cfg, err = serveConfig(c.file, other, f, set); err != nil {
		t.Fatal(err)
	}
	if cfg.Listeners.Consumer.Addr != "127.0.0.1:3333" || cfg.Log.Level != "debug" || cfg.Log.Format != "json" || cfg.Flows != other {
		t.Errorf("flags: addr %s, log %+v, flows %s", cfg.Listeners.Consumer.Addr, cfg.Log, cfg.Flows)
	}
	f, set = load("-addr", "nowhere")
	if _, err = serveConfig(c.file, "", f, set); err == nil || !strings.Contains(err.Error(), `flag -addr: listeners.consumer.addr "nowhere" is not host:port`) {
		t.Errorf("a bad flag: %v", err)
	}
}

// TestServeSheds: with every slot taken and no wait, a consumer call is
// answered at once with 503 serviceUnavailable and Retry-After, /health
// still answers, the metrics count the shed calls and the calls in flight,
// and the log sums the shed calls up at warn, once per interval at most.
// The start-up lines are in the log too.
func TestServeSheds(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/x" {
			arrived.Add(1)
			<-release
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name":"Jan"}`)
	}))
	defer up.Close()
	defer close(release)
	c := newConfigRig(t, up.URL, `flows: flows
listeners:
  consumer: {addr: 127.0.0.1:0}
  admin: {addr: 127.0.0.1:0}
keys: {adminToken: admin.token}
limits: {maxConcurrent: 2, maxWait: 0s}
reload: {watch: false}
`)
	logs := newLogRecorder()
	const every = 20 * time.Millisecond
	srv := serveConfigFile(t, c.file, serveOptions{log: slog.New(logs), shedLogEvery: every})
	logs.wait(t, "start-up lines", func(l []string) bool {
		return hasLine("INFO serving", "flows=1", "url=http://"+srv.addr)(l) && hasLine("INFO admin API", "addr="+srv.adminAddr)(l)
	})
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	held := make([]int, 2)
	for i := range held {
		wg.Go(func() {
			if resp, err := client.Get("http://" + srv.addr + "/x/v1/x"); err == nil {
				held[i] = resp.StatusCode
				resp.Body.Close()
			}
		})
	}
	for deadline := time.Now().Add(10 * time.Second); arrived.Load() < 2; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the calls did not reach the source")
		}
	}
	for range 3 {
		start := time.Now()
		resp, err := client.Get("http://" + srv.addr + "/x/v1/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "serviceUnavailable") {
			t.Errorf("a call beyond maxConcurrent: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("shed after %v, want at once", d)
		}
	}
	if resp, err := client.Get("http://" + srv.addr + "/health"); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "busy") {
			t.Errorf("/health was shed: %s", b)
		}
	}
	shedRe := regexp.MustCompile(`^WARN shed (\d+) calls in the last 20ms: the listener is saturated listener=consumer shed=(\d+) interval=20ms total=\d+$`)
	lines := logs.wait(t, "3 shed calls", func(lines []string) bool {
		n := 0
		for _, l := range lines {
			if m := shedRe.FindStringSubmatch(l); m != nil && m[1] == m[2] {
				k, _ := strconv.Atoi(m[1])
				n += k
			}
		}
		return n == 3
	})
	for _, l := range lines {
		if strings.Contains(l, "msg=request") || strings.HasPrefix(l, "INFO request") && strings.Contains(l, "status=503") {
			t.Errorf("a shed call wrote an access line: %s", l)
		}
	}
	text := scrapeMetrics(t, srv.adminAddr, c.token)
	for _, want := range []string{`fsb_shed_total{listener="consumer"} 3`, `fsb_inflight_requests{kind="inflight"} 2`, `fsb_inflight_requests{kind="capacity"} 2`} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(text, "fsb_shed", "fsb_inflight"))
		}
	}
	release <- struct{}{}
	release <- struct{}{}
	wg.Wait()
	if held[0] != 200 || held[1] != 200 {
		t.Errorf("the calls holding the slots: %v, want 200", held)
	}
}

// TestServeBreaker: a source failing in a row opens its circuit: calls are
// answered 503 without reaching it, the metrics show the open circuit,
// the log says so at warn, and each failed call's warning names the
// source and operation.
func TestServeBreaker(t *testing.T) {
	var arrived atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		w.WriteHeader(500)
	}))
	defer up.Close()
	c := newConfigRig(t, up.URL, `flows: flows
listeners:
  consumer: {addr: 127.0.0.1:0}
  admin: {addr: 127.0.0.1:0}
keys: {adminToken: admin.token}
breaker: {consecutiveFailures: 2, openFor: 1m}
reload: {watch: false}
`)
	logs := newLogRecorder()
	srv := serveConfigFile(t, c.file, serveOptions{log: slog.New(logs)})
	for i := range 5 {
		if resp, err := http.Get("http://" + srv.addr + "/x/v1/x"); err != nil {
			t.Fatal(err)
		} else {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				t.Errorf("call %d: %d, want a 5xx", i, resp.StatusCode)
			}
		}
	}
	n := arrived.Load()
	text := scrapeMetrics(t, srv.adminAddr, c.token)
	if !strings.Contains(text, `fsb_circuit_state{source="reg"} 2`) || !strings.Contains(text, `fsb_circuit_rejected_total{source="reg"} 3`) {
		t.Errorf("source reached %d times; metrics:\n%s", n, grepLines(text, "fsb_circuit"))
	}
	logs.wait(t, "the circuit opening and the failed calls", func(l []string) bool {
		return hasLine("WARN circuit open", "source=reg", "from=closed", "openFor=1m0s")(l) &&
			hasLine("WARN flow failed", "flow=x step=r source=reg operation=get", "status=502", "err=status 500")(l) &&
			hasLine("WARN flow failed", "source=reg operation=get", "status=503")(l)
	})

	// A reload brings new breakers, closed: the gauge says so and calls
	// reach the source again.
	writeFile(t, filepath.Join(c.dir, "flows", "x.yaml"), restFlow(up.URL)+"\n# reloaded\n", 0o644)
	if changed, err := srv.r.Reload(context.Background()); !changed || err != nil {
		t.Fatalf("reload: changed %v, %v", changed, err)
	}
	if text := scrapeMetrics(t, srv.adminAddr, c.token); !strings.Contains(text, `fsb_circuit_state{source="reg"} 0`) {
		t.Errorf("after a reload:\n%s", grepLines(text, "fsb_circuit"))
	}
	if resp, err := http.Get("http://" + srv.addr + "/x/v1/x"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	if arrived.Load() != n+1 {
		t.Errorf("after a reload the source was reached %d times, want once", arrived.Load()-n)
	}
}

// newServeFlagSet is a flag set for serve's flags, without output.
func newServeFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// grepLines keeps the lines of text that start with one of prefixes.
func grepLines(text string, prefixes ...string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				fmt.Fprintln(&b, l)
				break
			}
		}
	}
	return b.String()
}

// TestServeTracing: with tracing on, a call's spans (the flow and its
// source call) reach the OTLP/HTTP collector by shutdown at the latest,
// and a source listed in tracing.propagate receives a W3C traceparent.
func TestServeTracing(t *testing.T) {
	var mu sync.Mutex
	var exported []byte
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		if r.URL.Path == "/v1/traces" {
			exported = append(exported, b...)
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	traceparent := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case traceparent <- r.Header.Get("Traceparent"):
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name":"Jan"}`)
	}))
	defer up.Close()
	c := newConfigRig(t, up.URL, `flows: flows
listeners:
  consumer: {addr: 127.0.0.1:0}
tracing: {enabled: true, endpoint: `+collector.URL+`, propagate: [reg], serviceName: fsb-tracing-test}
reload: {watch: false}
`)
	srv := serveConfigFile(t, c.file, serveOptions{})
	httpGet(t, "http://"+srv.addr+"/x/v1/x", 200)
	if code := srv.shutdown(); code != 0 { // flushes the spans
		t.Fatalf("serve exit %d", code)
	}
	if tp := <-traceparent; !regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`).MatchString(tp) {
		t.Errorf("the propagated source got traceparent %q", tp)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"fsb-tracing-test", "flow x", "reg"} {
		if !bytes.Contains(exported, []byte(want)) {
			t.Errorf("the exported spans lack %q (%d bytes exported)", want, len(exported))
		}
	}
}

// logRecorder is a slog.Handler keeping every record as a line
// ("LEVEL msg key=value …"), for tests that read the process log.
type logRecorder struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed (and replaced) on each record
}

func newLogRecorder() *logRecorder { return &logRecorder{changed: make(chan struct{})} }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	return nil
}

// wait returns the lines once done says they are complete, or fails the
// test after 10s.
func (l *logRecorder) wait(t *testing.T, what string, done func(lines []string) bool) []string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		lines, changed := append([]string(nil), l.lines...), l.changed
		l.mu.Unlock()
		if done(lines) {
			return lines
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no %s in the log:\n%s", what, strings.Join(lines, "\n"))
		}
	}
}

// hasLine is a wait condition: some line starts with prefix and contains
// every one of parts.
func hasLine(prefix string, parts ...string) func([]string) bool {
	return func(lines []string) bool {
	next:
		for _, l := range lines {
			if !strings.HasPrefix(l, prefix) {
				continue
			}
			for _, p := range parts {
				if !strings.Contains(l, p) {
					continue next
				}
			}
			return true
		}
		return false
	}
}

// TestLogCircuit: a circuit opening is logged at warn, half-open and
// closed at info, each naming the source.
func TestLogCircuit(t *testing.T) {
	logs := newLogRecorder()
	log := slog.New(logs)
	s := breaker.Settings{OpenFor: 30 * time.Second}
	logCircuit(log, "reg", breaker.Closed, breaker.Open, s)
	logCircuit(log, "reg", breaker.Open, breaker.HalfOpen, s)
	logCircuit(log, "reg", breaker.HalfOpen, breaker.Closed, s)
	want := []string{
		"WARN circuit open: calls to the source are answered 503 without reaching it source=reg from=closed openFor=30s",
		"INFO circuit half-open: one trial call goes to the source source=reg from=open",
		"INFO circuit closed: the source is called again source=reg from=half-open",
	}
	if got := logs.wait(t, "3 lines", func(l []string) bool { return len(l) == 3 }); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
