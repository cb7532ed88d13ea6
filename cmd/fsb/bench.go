// fsb bench: the load benchmark. From the repository root,
//
//	go run ./cmd/fsb bench                      # all candidates, 64 connections, 5 rounds of 1s + 3s, median round
//	go run ./cmd/fsb bench -d 5s -rounds 9      # longer and more rounds on a noisy machine
//	go run ./cmd/fsb bench -only fsb-three,fiber-merge -json
//
// It starts three loopback backends and the candidates serving them: the
// backend called directly, nginx proxy_pass (when an nginx binary is
// found), a hand-written fiber merge of the three backends, and OpenFSB
// serving a passthrough flow and a three-source flow. The load generator
// and the backends run in this process; every proxy candidate runs in a
// process of its own — nginx, and for the Go candidates this binary's
// hidden `fsb bench-serve` — so that each gets the same share of the
// machine. Each gets the same closed-loop load; the report ends with the
// ratios the project is judged on. The harness is
// cmd/fsb/internal/loadbench.

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/openfsb/fsb/cmd/fsb/internal/loadbench"
)

func cmdBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conns := fs.Int("c", 64, "concurrent connections, each a keep-alive connection of its own")
	dur := fs.Duration("d", 3*time.Second, "measured duration per candidate and round")
	warmup := fs.Duration("warmup", time.Second, "unmeasured warm-up before each measurement")
	rounds := fs.Int("rounds", 5, "rounds; with more than 1 the candidates alternate and the median round is reported")
	only := fs.String("only", "", "comma-separated candidates to run: "+strings.Join(loadbench.Candidates, ", "))
	asJSON := fs.Bool("json", false, "print the results as JSON")
	strict := fs.Bool("strict", false, "exit 1 when a target ratio is missed")
	cpuprofile := fs.String("cpuprofile", "", "") // hidden: write a CPU profile of this process (not of the candidates' processes)
	inProcess := fs.Bool("inprocess", false, "")  // hidden: run the Go candidates in this process, as before they had their own
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: fsb bench [flags]

Load-benchmarks OpenFSB against baselines, side by side on loopback:
  direct           the backend called directly
  nginx            nginx proxy_pass to the backend (when nginx is installed)
  fiber-proxy      a bare fiber handler forwarding to the backend (the floor of a Go proxy)
  fiber-merge      a hand-written fiber handler merging three backends with encoding/json
  fsb-passthrough  an OpenFSB flow answering one source's body
  fsb-three        an OpenFSB flow calling three sources in parallel
  fsb-three-audit  fsb-three with the privacy audit trail on (two durable records per call)
and reports requests/s, p50, p99 and the ratios the project targets.
Set CI=true and FSB_BENCH_REQUIRE_NGINX=1 to fail when nginx is missing.`)
		fs.VisitAll(func(f *flag.Flag) {
			if f.Usage == "" {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			def := ""
			if f.DefValue != "" && f.DefValue != "false" {
				def = " (default " + f.DefValue + ")"
			}
			if name != "" {
				name = " " + name
			}
			fmt.Fprintf(stderr, "  -%s%s\n    \t%s%s\n", f.Name, name, usage, def)
		})
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	onlyList, err := loadbench.ParseOnly(*only)
	if err != nil {
		fmt.Fprintln(stderr, "fsb bench: -only:", err)
		return 2
	}
	cfg := loadbench.Config{
		Conns: *conns, Duration: *dur, Warmup: *warmup, Rounds: *rounds, Only: onlyList,
		RequireNginx: os.Getenv("CI") == "true" && os.Getenv("FSB_BENCH_REQUIRE_NGINX") == "1",
		Progress:     stderr,
	}
	if !*inProcess {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(stderr, "fsb bench: cannot find this program to run the candidates:", err)
			return 1
		}
		cfg.ServeCommand = []string{exe, benchServeCommand}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "fsb bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "fsb bench: cpu profile:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := loadbench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "fsb bench:", err)
		return 1
	}
	if *asJSON {
		if err := res.WriteJSON(stdout); err != nil {
			fmt.Fprintln(stderr, "fsb bench:", err)
			return 1
		}
	} else {
		res.WriteTable(stdout)
	}
	switch {
	case res.Failed():
		fmt.Fprintln(stderr, "fsb bench: a candidate had failed requests")
		return 1
	case *strict && res.MissedTargets():
		fmt.Fprintln(stderr, "fsb bench: a target was missed (-strict)")
		return 1
	}
	return 0
}

// benchServeCommand is the hidden command serving one Go candidate of
// `fsb bench` in a process of its own; not listed by usage.
const benchServeCommand = "bench-serve"

// cmdBenchServe serves one candidate for `fsb bench`, which runs it as a
// child process: it prints "listening ADDR" once ready and serves until its
// standard input is closed or it gets SIGTERM or SIGINT.
func cmdBenchServe(args []string, stdout, stderr io.Writer) int {
	tuneGC() // every candidate server runs as `fsb serve` would
	fs := flag.NewFlagSet(benchServeCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	candidate := fs.String("candidate", "", "the candidate to serve: "+strings.Join(loadbench.ServedCandidates, ", "))
	backends := fs.String("backends", "", "the three backends' base URLs, comma-separated (http://127.0.0.1:PORT)")
	listen := fs.String("listen", "127.0.0.1:0", "loopback address to listen on")
	pool := fs.Int("pool", 64, "connections to each backend")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: fsb bench-serve -candidate NAME -backends URL1,URL2,URL3 [flags]

Serves one candidate of 'fsb bench' (which runs it as a child process),
prints "listening ADDR" once ready, and serves until standard input is
closed or SIGTERM or SIGINT arrives.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	urls := strings.Split(*backends, ",")
	if fs.NArg() != 0 || *candidate == "" || len(urls) != 3 {
		fs.Usage()
		return 2
	}
	setProcs(*candidate == loadbench.FSBThreeAudit) // as `fsb serve` with the audit trail
	// FSB_BENCH_CPUPROFILE=DIR writes DIR/<candidate>.pprof: the profile
	// of the candidate's own process, which -cpuprofile cannot see.
	if dir := os.Getenv("FSB_BENCH_CPUPROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, *candidate+".pprof"))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// The parent closes our stdin to stop us; so does its death.
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	err := loadbench.Serve(ctx, loadbench.ServeConfig{
		Candidate: *candidate,
		Backends:  [3]string{strings.TrimSpace(urls[0]), strings.TrimSpace(urls[1]), strings.TrimSpace(urls[2])},
		Listen:    *listen,
		Pool:      *pool,
	}, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "fsb bench-serve:", err)
		return 1
	}
	return 0
}
