// Package loadbench is the harness behind `fsb bench`: it starts three
// loopback backends, the candidates that serve them (the backend direct,
// nginx proxy_pass, a hand-written fiber merge, and OpenFSB serving a
// passthrough flow and a three-source flow), validates each once, then puts
// the same closed-loop load on each — C workers, each on its own keep-alive
// connection — and reports requests/s, p50 and p99 with the ratios the
// project is judged on.
//
// The load generator and the backends run in the calling process. Every
// proxy candidate runs in a process of its own — nginx, and with
// Config.ServeCommand set (as `fsb bench` sets it) the Go candidates too,
// each a child `fsb bench-serve` — so that each candidate gets the same
// share of the machine as the others: its own process scheduled by the OS
// beside the load generator's, rather than the load generator's GOMAXPROCS
// shared with it. Without ServeCommand (the package's tests) the Go
// candidates run in the calling process.
//
// Everything listens on 127.0.0.1; every loop is bounded in time.
package loadbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Candidate names, in report order.
const (
	Direct         = "direct"
	Nginx          = "nginx"
	FiberProxy     = "fiber-proxy"
	FiberMerge     = "fiber-merge"
	FSBPassthrough = "fsb-passthrough"
	FSBThree       = "fsb-three"
	// FSBThreeAudit is fsb-three with the privacy audit trail on: two
	// durable records per call (engine/audit) in a store on disk.
	FSBThreeAudit = "fsb-three-audit"
)

// Candidates lists every candidate name in report order.
var Candidates = []string{Direct, Nginx, FiberProxy, FiberMerge, FSBPassthrough, FSBThree, FSBThreeAudit}

// Config is one benchmark run.
type Config struct {
	Conns    int           // concurrent connections (workers)
	Duration time.Duration // measured period per candidate and round
	Warmup   time.Duration // unmeasured period before it
	Rounds   int           // > 1: candidates alternate, the median round is reported
	Only     []string      // candidates to run; empty = all
	// NginxPath is the nginx binary; "" looks on PATH and at /usr/sbin/nginx.
	NginxPath string
	// RequireNginx makes a missing nginx an error rather than a skip.
	RequireNginx bool
	// ID is the item id requested (default 0403170701).
	ID string
	// Progress receives one line per measurement; nil is quiet.
	Progress io.Writer
	// ServeCommand is the argv that serves one Go candidate in a child
	// process: `fsb bench-serve` (os.Executable() and "bench-serve"); the
	// harness appends -candidate, -backends, -listen and -pool. Empty runs
	// the Go candidates in this process, sharing its GOMAXPROCS with the
	// load generator and the backends (what a test binary, which cannot
	// serve, does).
	ServeCommand []string
}

// Result is what a run measured.
type Result struct {
	Conns      int
	Duration   time.Duration
	Warmup     time.Duration
	Rounds     int
	GOMAXPROCS int  // this process's: the load generator's and the backends'
	InProcess  bool // the Go candidates ran in this process (no ServeCommand)
	Candidates []*CandidateResult
	Ratios     []Ratio
}

// CandidateResult is one candidate's measurements.
type CandidateResult struct {
	Name    string
	Skipped string  // why it was not measured (e.g. nginx: not installed)
	Rounds  []Stats // in the order run
	Median  Stats   // the round with the median requests/s
	Errors  int64   // transport errors over every round
	Non2xx  int64   // non-2xx responses over every round
}

// Measured reports whether the candidate ran.
func (c *CandidateResult) Measured() bool { return c != nil && c.Skipped == "" && len(c.Rounds) > 0 }

// Failed reports whether any of its requests failed.
func (c *CandidateResult) Failed() bool { return c.Errors > 0 || c.Non2xx > 0 }

// Candidate returns the named result, or nil.
func (r *Result) Candidate(name string) *CandidateResult {
	for _, c := range r.Candidates {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// RoundRatios is num's requests/s over den's, round by round, or nil. The
// candidates take turns round by round, so round i of each ran moments
// apart, on the same state of a shared machine: the spread of these paired
// ratios shows how far the ratio of the median rounds can be trusted.
func (r *Result) RoundRatios(num, den string) []float64 {
	a, b := r.Candidate(num), r.Candidate(den)
	if !a.Measured() || !b.Measured() || len(a.Rounds) != len(b.Rounds) {
		return nil
	}
	out := make([]float64, len(a.Rounds))
	for i := range a.Rounds {
		if b.Rounds[i].RPS <= 0 {
			return nil
		}
		out[i] = a.Rounds[i].RPS / b.Rounds[i].RPS
	}
	return out
}

// Failed reports whether a measured candidate had errors.
func (r *Result) Failed() bool {
	for _, c := range r.Candidates {
		if c.Failed() {
			return true
		}
	}
	return false
}

// MissedTargets reports whether a target ratio that could be computed failed.
func (r *Result) MissedTargets() bool {
	for _, x := range r.Ratios {
		if x.Target != 0 && x.Status == StatusFail {
			return true
		}
	}
	return false
}

// candidate is a measurable server.
type candidate struct {
	name  string
	addr  string
	path  string
	pids  []int // processes of its own (nginx, a bench-serve child)
	check func(body []byte) error
	alive func() error // non-nil: reports an error once its process has exited
}

// ParseOnly splits a comma list of candidate names and checks each.
func ParseOnly(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !slices.Contains(Candidates, n) {
			return nil, fmt.Errorf("unknown candidate %q (candidates: %s)", n, strings.Join(Candidates, ", "))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (cfg *Config) defaults() error {
	if cfg.Conns == 0 {
		cfg.Conns = 64
	}
	if cfg.Duration == 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.Rounds == 0 {
		cfg.Rounds = 1
	}
	if cfg.ID == "" {
		cfg.ID = "0403170701"
	}
	switch {
	case cfg.Conns < 1 || cfg.Conns > 4096:
		return fmt.Errorf("connections must be between 1 and 4096, not %d", cfg.Conns)
	case cfg.Duration < 10*time.Millisecond || cfg.Duration > 10*time.Minute:
		return fmt.Errorf("duration must be between 10ms and 10m, not %s", cfg.Duration)
	case cfg.Warmup < 0 || cfg.Warmup > time.Minute:
		return fmt.Errorf("warm-up must be between 0 and 1m, not %s", cfg.Warmup)
	case cfg.Rounds < 1 || cfg.Rounds > 25:
		return fmt.Errorf("rounds must be between 1 and 25, not %d", cfg.Rounds)
	case !validID([]byte(cfg.ID)):
		return fmt.Errorf("id %q is not a plain path segment", cfg.ID)
	}
	for _, n := range cfg.Only {
		if !slices.Contains(Candidates, n) {
			return fmt.Errorf("unknown candidate %q", n)
		}
	}
	return nil
}

func (cfg *Config) wants(name string) bool {
	return len(cfg.Only) == 0 || slices.Contains(cfg.Only, name)
}

func (cfg *Config) progress(format string, args ...any) {
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, format+"\n", args...)
	}
}

// Run starts the servers, validates every selected candidate, measures them
// and stops everything it started. A setup or validation failure is an
// error; request failures during the load are in the result (Failed).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	res := &Result{Conns: cfg.Conns, Duration: cfg.Duration, Warmup: cfg.Warmup, Rounds: cfg.Rounds, GOMAXPROCS: runtime.GOMAXPROCS(0),
		InProcess: len(cfg.ServeCommand) == 0}

	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()

	var backends [3]*backend
	for i := range backends {
		b, err := startBackend(i)
		if err != nil {
			return nil, err
		}
		closers = append(closers, b.Close)
		backends[i] = b
	}
	var backendURLs [3]string
	for i, b := range backends {
		backendURLs[i] = b.URL()
	}
	poolConns := max(64, cfg.Conns)
	id := cfg.ID
	want := [3]any{}
	for i := range want {
		if err := json.Unmarshal(BackendBody(i, id), &want[i]); err != nil {
			return nil, fmt.Errorf("backend %c body: %w", 'a'+i, err)
		}
	}
	checkOne := func(body []byte) error { return checkEqual(body, want[0]) }
	checkThree := func(body []byte) error { return checkMerged(body, want) }

	var cands []*candidate
	for _, name := range Candidates {
		if !cfg.wants(name) {
			continue
		}
		cr := &CandidateResult{Name: name}
		res.Candidates = append(res.Candidates, cr)
		var c *candidate
		switch name {
		case Direct:
			c = &candidate{name: name, addr: backends[0].addr, path: "/items/" + id, check: checkOne}
		case Nginx:
			bin := cfg.NginxPath
			if bin == "" {
				bin = FindNginx()
			}
			if bin == "" {
				if cfg.RequireNginx {
					return nil, errors.New("nginx: not installed, and this run requires it (CI=true, FSB_BENCH_REQUIRE_NGINX=1)")
				}
				cr.Skipped = "not installed"
				cfg.progress("nginx: not installed (skipped)")
				continue
			}
			n, err := startNginx(bin, backends[0].addr)
			if err != nil {
				return nil, err
			}
			closers = append(closers, n.Close)
			c = &candidate{name: name, addr: n.addr, path: "/items/" + id, pids: []int{n.cmd.Process.Pid}, check: checkOne}
		case FiberProxy, FiberMerge, FSBPassthrough, FSBThree, FSBThreeAudit:
			c = &candidate{name: name, path: passthroughPath + id, check: checkOne}
			switch name {
			case FiberProxy:
				c.path = proxyPath + id
			case FiberMerge:
				c.path, c.check = mergePath+id, checkThree
			case FSBThree, FSBThreeAudit:
				c.path, c.check = threePath+id, checkThree
			}
			if err := startServed(&cfg, c, backendURLs, poolConns, &closers); err != nil {
				return nil, err
			}
		}
		cands = append(cands, c)
	}

	// Validate every candidate before measuring any.
	var bad []error
	for _, c := range cands {
		if err := validate(c); err != nil {
			if c.alive != nil {
				if dead := c.alive(); dead != nil {
					err = dead
				}
			}
			bad = append(bad, fmt.Errorf("%s (GET http://%s%s): %w", c.name, c.addr, c.path, err))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("candidate validation failed:\n  %w", errors.Join(bad...))
	}
	cfg.progress("validated %d candidates; %d connections, %s warm-up + %s measured, %d round(s)",
		len(cands), cfg.Conns, cfg.Warmup, cfg.Duration, cfg.Rounds)

	rounds := map[string][]Stats{}
	for r := 0; r < cfg.Rounds && ctx.Err() == nil; r++ {
		for k := range cands {
			if ctx.Err() != nil {
				break
			}
			c := cands[(k+r)%len(cands)] // rotate the order each round
			runtime.GC()                 // do not charge one candidate with another's garbage
			s := Load{Addr: c.addr, Path: c.path, Conns: cfg.Conns, Warmup: cfg.Warmup, Duration: cfg.Duration, PIDs: c.pids}.Run(ctx)
			if c.alive != nil && ctx.Err() == nil {
				if err := c.alive(); err != nil {
					return nil, fmt.Errorf("while measuring %w", err)
				}
			}
			rounds[c.name] = append(rounds[c.name], s)
			cfg.progress("round %d/%d  %-16s %10.0f req/s  p50 %s  p99 %s  errors %d  other processes %s CPU",
				r+1, cfg.Rounds, c.name, s.RPS, fmtDur(s.P50), fmtDur(s.P99), s.Errors+s.Non2xx, fmtShare(s.OthersCPU))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupted: %w", err)
	}
	for _, cr := range res.Candidates {
		cr.Rounds = rounds[cr.Name]
		for _, s := range cr.Rounds {
			cr.Errors += s.Errors
			cr.Non2xx += s.Non2xx
		}
		if len(cr.Rounds) > 0 {
			cr.Median = medianRound(cr.Rounds)
		}
	}
	res.Ratios = ratios(res)
	return res, nil
}

// startServed starts the server of Go candidate c — a child process
// running cfg.ServeCommand, or in this process without one — and sets its
// address, processes and liveness check. Each candidate gets a server of
// its own.
func startServed(cfg *Config, c *candidate, backendURLs [3]string, poolConns int, closers *[]func()) error {
	if len(cfg.ServeCommand) == 0 {
		s, err := StartServer(c.name, backendURLs, poolConns, "127.0.0.1:0")
		if err != nil {
			return err
		}
		*closers = append(*closers, s.Close)
		c.addr = s.Addr
		return nil
	}
	ch, err := startChild(cfg.ServeCommand, c.name, backendURLs, poolConns)
	if err != nil {
		return err
	}
	*closers = append(*closers, func() {
		if err := ch.Close(); err != nil {
			cfg.progress("%v", err)
		}
	})
	c.addr, c.pids, c.alive = ch.addr, []int{ch.cmd.Process.Pid}, ch.alive
	return nil
}

// medianRound returns the round with the median requests/s (the lower
// middle for an even count).
func medianRound(rs []Stats) Stats {
	s := slices.Clone(rs)
	sort.SliceStable(s, func(i, j int) bool { return s[i].RPS < s[j].RPS })
	return s[(len(s)-1)/2]
}

// validate sends one request and checks the answer.
func validate(c *candidate) error {
	hc := &fasthttp.HostClient{Addr: c.addr, MaxConns: 1, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + c.addr + c.path)
	req.Header.Set("Accept", "application/json")
	if err := hc.DoTimeout(req, resp, 5*time.Second); err != nil {
		return err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return fmt.Errorf("status %d, want 200: %.300s", resp.StatusCode(), resp.Body())
	}
	return c.check(resp.Body())
}

// checkEqual wants body to be the JSON value want.
func checkEqual(body []byte, want any) error {
	var got any
	if err := json.Unmarshal(body, &got); err != nil {
		return fmt.Errorf("body is not JSON (%v): %.200s", err, body)
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("body is not backend a's item: %.200s", body)
	}
	return nil
}

// checkMerged wants {"a":…,"b":…,"c":…} holding the three backends' items.
func checkMerged(body []byte, want [3]any) error {
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		return fmt.Errorf("body is not a JSON object (%v): %.200s", err, body)
	}
	for i, k := range []string{"a", "b", "c"} {
		v, ok := got[k]
		if !ok {
			return fmt.Errorf("merged body has no %q part: %.200s", k, body)
		}
		if !reflect.DeepEqual(v, want[i]) {
			return fmt.Errorf("merged part %q is not backend %s's item", k, k)
		}
	}
	if len(got) != 3 {
		return fmt.Errorf("merged body has %d parts, want 3 (a, b, c)", len(got))
	}
	return nil
}

// Ratio statuses.
const (
	StatusPass = "PASS"
	StatusFail = "FAIL"
	StatusNA   = "n/a"
)

// Ratio compares two candidates on one metric, against a target when
// Target is not 0.
type Ratio struct {
	Name     string  // e.g. "fsb-passthrough / nginx rps"
	Num, Den string  // candidate names
	Metric   string  // "rps" or "p99"
	Value    float64 // 0 when not computable
	Target   float64 // 0: informational
	AtMost   bool    // the target is an upper bound (else a lower bound)
	Status   string  // PASS, FAIL or n/a ("" for informational ratios)
}

func ratios(r *Result) []Ratio {
	out := []Ratio{
		ratio(r, FSBPassthrough, Nginx, "rps", 0.8, false),
		ratio(r, FSBThree, FiberMerge, "rps", 1.0, false),
		ratio(r, FSBThree, FiberMerge, "p99", 1.5, true),
		ratio(r, FSBThreeAudit, FSBThree, "rps", 0.8, false), // issue 5: the audit trail on vs off
		ratio(r, FSBThreeAudit, FSBThree, "p99", 0, true),
		ratio(r, FSBPassthrough, FiberProxy, "rps", 0, false), // how far from a bare Go proxy
	}
	for _, c := range r.Candidates {
		if c.Name != Direct {
			out = append(out, ratio(r, c.Name, Direct, "rps", 0, false))
		}
	}
	return out
}

func ratio(r *Result, num, den, metric string, target float64, atMost bool) Ratio {
	x := Ratio{Name: num + " / " + den + " " + metric, Num: num, Den: den, Metric: metric, Target: target, AtMost: atMost}
	a, b := r.Candidate(num), r.Candidate(den)
	if !a.Measured() || !b.Measured() || a.Failed() || b.Failed() {
		if target != 0 {
			x.Status = StatusNA
		}
		return x
	}
	var va, vb float64
	switch metric {
	case "rps":
		va, vb = a.Median.RPS, b.Median.RPS
	case "p99":
		va, vb = float64(a.Median.P99), float64(b.Median.P99)
	}
	if vb <= 0 {
		if target != 0 {
			x.Status = StatusNA
		}
		return x
	}
	x.Value = va / vb
	if target != 0 {
		ok := x.Value >= target
		if atMost {
			ok = x.Value <= target
		}
		x.Status = StatusFail
		if ok {
			x.Status = StatusPass
		}
	}
	return x
}
