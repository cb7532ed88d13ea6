// fsb bench: the load benchmark. From the repository root,
//
//	go run ./cmd/fsb bench                      # all candidates, 64 connections, 1s + 5s each
//	go run ./cmd/fsb bench -d 5s -rounds 3      # alternate the candidates, report the median round
//	go run ./cmd/fsb bench -only fsb-three,fiber-merge -json
//
// It starts three loopback backends and, side by side in one process, the
// candidates serving them: the backend called directly, nginx proxy_pass
// (when an nginx binary is found), a hand-written fiber merge of the three
// backends, and OpenFSB serving a passthrough flow and a three-source flow.
// Each gets the same closed-loop load; the report ends with the ratios the
// project is judged on. The harness is cmd/fsb/internal/loadbench.

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
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
	dur := fs.Duration("d", 5*time.Second, "measured duration per candidate and round")
	warmup := fs.Duration("warmup", time.Second, "unmeasured warm-up before each measurement")
	rounds := fs.Int("rounds", 1, "rounds; with more than 1 the candidates alternate and the median round is reported")
	only := fs.String("only", "", "comma-separated candidates to run: "+strings.Join(loadbench.Candidates, ", "))
	asJSON := fs.Bool("json", false, "print the results as JSON")
	strict := fs.Bool("strict", false, "exit 1 when a target ratio is missed")
	cpuprofile := fs.String("cpuprofile", "", "") // hidden: write a CPU profile of the whole run
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: fsb bench [flags]

Load-benchmarks OpenFSB against baselines, side by side on loopback:
  direct           the backend called directly
  nginx            nginx proxy_pass to the backend (when nginx is installed)
  fiber-merge      a hand-written fiber handler merging three backends with encoding/json
  fsb-passthrough  an OpenFSB flow answering one source's body
  fsb-three        an OpenFSB flow calling three sources in parallel
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
