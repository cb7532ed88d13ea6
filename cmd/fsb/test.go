package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/openfsb/fsb/engine/flowtest"
	"github.com/openfsb/fsb/engine/modules"
)

func cmdTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runPattern := fs.String("run", "", "only run tests whose flow/name matches this regular expression")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fsb test [-run REGEXP] DIR\n\nRuns every Test document under DIR against its flow, with the sources mocked.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	var filter *regexp.Regexp
	if *runPattern != "" {
		var err error
		if filter, err = regexp.Compile(*runPattern); err != nil {
			fmt.Fprintf(stderr, "fsb test: -run: %v\n", err)
			return 2
		}
	}
	set, plans := load(fs.Arg(0), stderr)
	if plans == nil {
		return 1
	}
	// Plugins run for real; a secret that is not set gets a test value.
	plugins, closePlugins, err := modules.Open(context.Background(), set, modules.Options{TestSecrets: true})
	if err != nil {
		fmt.Fprintf(stderr, "fsb test: %v\n", err)
		return 1
	}
	defer closePlugins()
	results := flowtest.Run(set, plans, plugins, filter)
	failed := 0
	for _, r := range results {
		if r.Pass {
			fmt.Fprintf(stdout, "PASS  %s (%s)\n", r.Name(), r.Duration.Round(100_000))
			continue
		}
		failed++
		fmt.Fprintf(stdout, "FAIL  %s (%s)  %s\n", r.Name(), r.Duration.Round(100_000), r.Test.Pos)
		for _, f := range r.Failures {
			fmt.Fprintf(stdout, "      %s\n", strings.ReplaceAll(strings.TrimRight(f, "\n"), "\n", "\n      "))
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", len(results)-failed, failed)
	if failed > 0 || len(results) == 0 {
		if len(results) == 0 {
			fmt.Fprintln(stderr, "fsb test: no tests found")
		}
		return 1
	}
	return 0
}
