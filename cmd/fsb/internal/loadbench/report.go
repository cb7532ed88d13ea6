package loadbench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// fmtDur prints a latency in milliseconds with three decimals.
func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
}

// NoisyShare is the share of the CPU taken by other processes above which a
// measurement is flagged as noisy.
const NoisyShare = 0.10

// fmtShare prints a CPU share as a percentage, "?" when unknown.
func fmtShare(f float64) string {
	if f < 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f%%", 100*f)
}

// Layout says which process runs what.
func (r *Result) Layout() string {
	if r.InProcess {
		return fmt.Sprintf("nginx in child processes; load generator, backends and the Go candidates in this process (GOMAXPROCS=%d)", r.GOMAXPROCS)
	}
	return fmt.Sprintf("candidates in child processes (GOMAXPROCS as fsb serve sets it: one more with the audit trail); load generator and backends in this process (GOMAXPROCS=%d)", r.GOMAXPROCS)
}

// WriteTable prints the human report: one line per candidate, then the
// target ratios with PASS/FAIL and every candidate relative to direct.
func (r *Result) WriteTable(w io.Writer) {
	round := "1 round"
	if r.Rounds > 1 {
		round = fmt.Sprintf("%d rounds, median round shown", r.Rounds)
	}
	fmt.Fprintf(w, "fsb bench: %d connections, %s warm-up + %s measured per candidate, %s, loopback\n%s\n\n",
		r.Conns, r.Warmup, r.Duration, round, r.Layout())
	fmt.Fprintf(w, "%-16s %12s %11s %11s %8s %7s %8s %5s", "candidate", "requests/s", "p50", "p99", "errors", "others", "cpu/req", "idle")
	if r.Rounds > 1 {
		fmt.Fprintf(w, "  %s", "requests/s of each round (others' CPU)")
	}
	fmt.Fprintln(w)
	for _, c := range r.Candidates {
		if !c.Measured() {
			reason := c.Skipped
			if reason == "" {
				reason = "not measured"
			}
			fmt.Fprintf(w, "%-16s %s\n", c.Name, c.Name+": "+reason)
			continue
		}
		m := c.Median
		errs := fmt.Sprint(c.Errors + c.Non2xx)
		fmt.Fprintf(w, "%-16s %12.0f %11s %11s %8s %7s %8s %5s", c.Name, m.RPS, fmtDur(m.P50), fmtDur(m.P99), errs, fmtShare(m.OthersCPU), fmtCPU(m.CPUPerRequest), fmtShare(m.IdleCPU))
		if r.Rounds > 1 {
			var each []string
			for _, s := range c.Rounds {
				each = append(each, fmt.Sprintf("%.0f (%s)", s.RPS, fmtShare(s.OthersCPU)))
			}
			fmt.Fprintf(w, "  %s", strings.Join(each, " "))
		}
		fmt.Fprintln(w)
	}
	for _, c := range r.Candidates {
		if c.Failed() {
			first := ""
			for _, s := range c.Rounds {
				if s.FirstError != "" {
					first = s.FirstError
					break
				}
			}
			fmt.Fprintf(w, "  %s FAILED: %d transport errors, %d non-2xx responses; first: %s\n", c.Name, c.Errors, c.Non2xx, first)
		}
	}

	fmt.Fprintln(w, "\nothers: share of the machine's CPU taken by processes other than this one and the candidate's\n(and steal) while measuring; well above 0% means a noisy neighbour, and that round's numbers are suspect.\ncpu/req: CPU time of the candidate's own processes per request (not with -inprocess); idle: share of\nthe machine's CPU left idle (iowait included) while measuring.")
	noisy, total := 0, 0
	for _, c := range r.Candidates {
		for _, s := range c.Rounds {
			total++
			if s.OthersCPU > NoisyShare {
				noisy++
			}
		}
	}
	if noisy > 0 {
		fmt.Fprintf(w, "WARNING: %d of %d measurements ran while other processes took more than %.0f%% of the CPU:\nthe ratios below are unreliable; rerun on a quiet machine (more -rounds help).\n", noisy, total, 100*NoisyShare)
	}
	fmt.Fprintln(w, "\ntargets:")
	for _, x := range r.Ratios {
		if x.Target == 0 {
			continue
		}
		op := "≥"
		if x.AtMost {
			op = "≤"
		}
		val := "   n/a"
		if x.Status != StatusNA {
			val = fmt.Sprintf("%6.2f", x.Value)
		}
		fmt.Fprintf(w, "  %-34s %s  (target %s %.2f)  %s\n", x.Name, val, op, x.Target, x.Status)
		if rr := r.RoundRatios(x.Num, x.Den); x.Metric == "rps" && x.Status != StatusNA && len(rr) > 1 {
			parts := make([]string, len(rr))
			for i, v := range rr {
				parts[i] = fmt.Sprintf("%.2f", v)
			}
			slices.Sort(rr)
			fmt.Fprintf(w, "  %-34s per round %s (sorted: %.2f–%.2f, median %.2f)\n", "", strings.Join(parts, " "), rr[0], rr[len(rr)-1], rr[len(rr)/2])
		}
	}
	if x := r.ratio(FSBPassthrough, FiberProxy); x != nil && x.Value > 0 {
		fmt.Fprintf(w, "  %-34s %6.2f  (what the flow machinery costs over a bare Go proxy)\n", x.Name, x.Value)
	}
	for _, x := range r.Ratios {
		if x.Num == FSBThreeAudit && x.Metric == "p99" && x.Value > 0 {
			a, b := r.Candidate(FSBThreeAudit), r.Candidate(FSBThree)
			fmt.Fprintf(w, "  %-34s %6.2f  (p99 %s with the audit trail, %s without)\n", x.Name, x.Value, fmtDur(a.Median.P99), fmtDur(b.Median.P99))
		}
	}
	fmt.Fprintln(w, "\nrequests/s relative to direct:")
	for _, x := range r.Ratios {
		if x.Target != 0 || x.Den != Direct {
			continue
		}
		val := "   n/a"
		if x.Value > 0 {
			val = fmt.Sprintf("%6.2f", x.Value)
		}
		fmt.Fprintf(w, "  %-16s %s\n", x.Num, val)
	}
}

// jsonResult is the machine-readable form (-json): latencies in
// microseconds, rates in requests per second.
type jsonResult struct {
	Connections int             `json:"connections"`
	DurationMS  int64           `json:"durationMs"`
	WarmupMS    int64           `json:"warmupMs"`
	Rounds      int             `json:"rounds"`
	GOMAXPROCS  int             `json:"gomaxprocs"`
	InProcess   bool            `json:"inProcess"`
	Layout      string          `json:"layout"`
	Candidates  []jsonCandidate `json:"candidates"`
	Ratios      []jsonRatio     `json:"ratios"`
	Failed      bool            `json:"failed"`
	Noisy       int             `json:"noisyMeasurements"`
	Missed      bool            `json:"missedTargets"`
}

type jsonCandidate struct {
	Name     string      `json:"name"`
	Skipped  string      `json:"skipped,omitempty"`
	RPS      float64     `json:"rps"`
	P50us    float64     `json:"p50Us"`
	P99us    float64     `json:"p99Us"`
	MaxUs    float64     `json:"maxUs"`
	Others   float64     `json:"othersCpu"`
	CPUus    float64     `json:"cpuPerRequestUs"`
	Idle     float64     `json:"idleCpu"`
	Requests int64       `json:"requests"`
	Errors   int64       `json:"errors"`
	Non2xx   int64       `json:"non2xx"`
	Rounds   []jsonRound `json:"rounds,omitempty"`
}

type jsonRound struct {
	RPS        float64 `json:"rps"`
	P50us      float64 `json:"p50Us"`
	P99us      float64 `json:"p99Us"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	Non2xx     int64   `json:"non2xx"`
	Others     float64 `json:"othersCpu"`
	CPUus      float64 `json:"cpuPerRequestUs"`
	Idle       float64 `json:"idleCpu"`
	FirstError string  `json:"firstError,omitempty"`
}

type jsonRatio struct {
	Name   string   `json:"name"`
	Num    string   `json:"num"`
	Den    string   `json:"den"`
	Metric string   `json:"metric"`
	Value  *float64 `json:"value"`
	Target *float64 `json:"target,omitempty"`
	AtMost bool     `json:"atMost,omitempty"`
	Status string   `json:"status,omitempty"`
	// PerRound: Num's requests/s over Den's in each round (rps ratios).
	PerRound []float64 `json:"perRound,omitempty"`
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// cpuUs is us for a CPU time that may be unknown (-1, kept as -1).
func cpuUs(d time.Duration) float64 {
	if d < 0 {
		return -1
	}
	return us(d)
}

// fmtCPU formats a CPU time per request, "?" when unknown.
func fmtCPU(d time.Duration) string {
	if d < 0 {
		return "?"
	}
	return fmt.Sprintf("%.0fµs", us(d))
}

// WriteJSON prints the result as one JSON document.
func (r *Result) WriteJSON(w io.Writer) error {
	out := jsonResult{
		Connections: r.Conns, DurationMS: r.Duration.Milliseconds(), WarmupMS: r.Warmup.Milliseconds(),
		Rounds: r.Rounds, GOMAXPROCS: r.GOMAXPROCS, InProcess: r.InProcess, Layout: r.Layout(), Failed: r.Failed(), Missed: r.MissedTargets(),
		Candidates: []jsonCandidate{}, Ratios: []jsonRatio{},
	}
	for _, c := range r.Candidates {
		for _, s := range c.Rounds {
			if s.OthersCPU > NoisyShare {
				out.Noisy++
			}
		}
		jc := jsonCandidate{Name: c.Name, Skipped: c.Skipped, Errors: c.Errors, Non2xx: c.Non2xx}
		if c.Measured() {
			m := c.Median
			jc.RPS, jc.P50us, jc.P99us, jc.MaxUs, jc.Requests, jc.Others = m.RPS, us(m.P50), us(m.P99), us(m.Max), m.Requests, m.OthersCPU
			jc.CPUus, jc.Idle = cpuUs(m.CPUPerRequest), m.IdleCPU
		}
		for _, s := range c.Rounds {
			jc.Rounds = append(jc.Rounds, jsonRound{RPS: s.RPS, P50us: us(s.P50), P99us: us(s.P99),
				Requests: s.Requests, Errors: s.Errors, Non2xx: s.Non2xx, Others: s.OthersCPU, CPUus: cpuUs(s.CPUPerRequest), Idle: s.IdleCPU, FirstError: s.FirstError})
		}
		out.Candidates = append(out.Candidates, jc)
	}
	for _, x := range r.Ratios {
		jr := jsonRatio{Name: x.Name, Num: x.Num, Den: x.Den, Metric: x.Metric, AtMost: x.AtMost, Status: x.Status}
		if x.Metric == "rps" {
			jr.PerRound = r.RoundRatios(x.Num, x.Den)
		}
		if x.Value > 0 {
			v := x.Value
			jr.Value = &v
		}
		if x.Target != 0 {
			t := x.Target
			jr.Target = &t
		}
		out.Ratios = append(out.Ratios, jr)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// ratio finds the computed ratio num / den, or nil.
func (r *Result) ratio(num, den string) *Ratio {
	for i := range r.Ratios {
		if r.Ratios[i].Num == num && r.Ratios[i].Den == den {
			return &r.Ratios[i]
		}
	}
	return nil
}
