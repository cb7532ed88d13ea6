package loadbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Load is one load run: Conns workers, each with its own keep-alive
// connection (no pipelining), send the same GET for Warmup then Duration.
type Load struct {
	Addr     string // host:port (loopback)
	Path     string // request path
	Conns    int
	Warmup   time.Duration
	Duration time.Duration
	// Timeout bounds one request (default 10s, above the servers' own 5s
	// deadlines so that their answer is seen).
	Timeout time.Duration
	// PIDs are the candidate's own processes (nginx, a bench-serve child):
	// their CPU, and their children's, is not counted as other processes'
	// in Stats.OthersCPU.
	PIDs []int
}

// Stats is the outcome of one measured period.
type Stats struct {
	Requests int64         // responses completed inside the measured period (any status)
	Non2xx   int64         // responses not 2xx, warm-up included
	Errors   int64         // transport errors (dial, write, read, timeout), warm-up included
	Elapsed  time.Duration // length of the measured period
	RPS      float64       // Requests / Elapsed
	P50      time.Duration
	P99      time.Duration
	Max      time.Duration
	// FirstError is the first transport error or non-2xx status, for the report.
	FirstError string
	// OthersCPU is the share of the machine's CPU that other processes
	// (and the hypervisor's steal) took during the measured period: a
	// noisy-neighbour gauge; -1 when unknown.
	OthersCPU float64
	// CPUPerRequest is the CPU time the candidate's own processes spent
	// per completed request (with candidates in child processes: their
	// whole cost, 10 ms resolution over the period); -1 when unknown.
	CPUPerRequest time.Duration
	// IdleCPU is the share of the machine's CPU left idle (iowait
	// included) while measuring; -1 when unknown.
	IdleCPU float64
}

// Failed reports whether any request failed (error or non-2xx).
func (s Stats) Failed() bool { return s.Errors > 0 || s.Non2xx > 0 }

// worker is the per-connection state; each has its own histogram.
type worker struct {
	hist     Histogram
	requests int64
	non2xx   int64
	errors   int64
	firstErr string
}

// Run drives the load and returns its statistics. It stops early, with what
// it measured so far, when ctx ends.
func (l Load) Run(ctx context.Context) Stats {
	if l.Timeout <= 0 {
		l.Timeout = 10 * time.Second
	}
	req := []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fsb-bench\r\nAccept: application/json\r\n\r\n", l.Path, l.Addr))
	start := time.Now()
	measureFrom := start.Add(l.Warmup)
	end := measureFrom.Add(l.Duration)

	var stop atomic.Bool
	watch := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			stop.Store(true)
		case <-watch:
		}
	}()
	var closeWatch sync.Once
	defer closeWatch.Do(func() { close(watch) })

	// Read the CPU counters when the measured period starts and ends.
	firstCPU := make(chan cpuSample, 1)
	go func() {
		t := time.NewTimer(time.Until(measureFrom))
		defer t.Stop()
		select {
		case <-t.C:
			firstCPU <- sampleCPU(l.PIDs)
		case <-watch:
			firstCPU <- cpuSample{}
		}
	}()

	workers := make([]*worker, l.Conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(l, req, measureFrom, end, &stop)
		}()
	}
	wg.Wait()
	lastCPU := sampleCPU(l.PIDs)

	var s Stats
	var h Histogram
	for _, w := range workers {
		h.Merge(&w.hist)
		s.Requests += w.requests
		s.Non2xx += w.non2xx
		s.Errors += w.errors
		if s.FirstError == "" {
			s.FirstError = w.firstErr
		}
	}
	s.Elapsed = l.Duration
	if now := time.Now(); now.Before(end) { // stopped early
		s.Elapsed = max(now.Sub(measureFrom), 0)
	}
	if s.Elapsed > 0 {
		s.RPS = float64(s.Requests) / s.Elapsed.Seconds()
	}
	s.P50, s.P99, s.Max = h.Quantile(0.50), h.Quantile(0.99), h.Max()
	closeWatch.Do(func() { close(watch) })
	first := <-firstCPU
	s.OthersCPU = othersShare(first, lastCPU)
	s.IdleCPU = idleShare(first, lastCPU)
	s.CPUPerRequest = -1
	if c := candidateCPU(first, lastCPU); c >= 0 && s.Requests > 0 {
		s.CPUPerRequest = c / time.Duration(s.Requests)
	}
	return s
}

func (w *worker) fail(err string) {
	w.errors++
	if w.firstErr == "" {
		w.firstErr = err
	}
}

// loop sends requests one at a time on its own connection until end,
// reconnecting after an error or a Connection: close. Every wait is bounded
// by l.Timeout and the loop by end.
func (w *worker) loop(l Load, req []byte, measureFrom, end time.Time, stop *atomic.Bool) {
	var (
		conn net.Conn
		br   *bufio.Reader
		resp fasthttp.Response
	)
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
	}()
	for !stop.Load() {
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		if conn == nil {
			c, err := net.DialTimeout("tcp4", l.Addr, l.Timeout)
			if err != nil {
				w.fail("dial: " + err.Error())
				time.Sleep(10 * time.Millisecond) // do not spin on a dead server
				continue
			}
			conn = c
			if br == nil {
				br = bufio.NewReaderSize(conn, 16<<10)
			} else {
				br.Reset(conn)
			}
			t0 = time.Now()
		}
		_ = conn.SetDeadline(t0.Add(l.Timeout))
		_, err := conn.Write(req)
		if err == nil {
			resp.Reset()
			err = resp.Read(br)
		}
		t1 := time.Now()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) || !stop.Load() {
				w.fail(err.Error())
			}
			_ = conn.Close()
			conn = nil
			continue
		}
		code := resp.StatusCode()
		if !t0.Before(measureFrom) && !t1.After(end) {
			w.requests++
			w.hist.Record(t1.Sub(t0))
		}
		if code < 200 || code > 299 {
			w.non2xx++
			if w.firstErr == "" {
				w.firstErr = fmt.Sprintf("status %d: %.200s", code, resp.Body())
			}
		}
		if resp.ConnectionClose() {
			_ = conn.Close()
			conn = nil
		}
	}
}
