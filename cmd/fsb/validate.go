package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/openfsb/fsb/engine/modules"
)

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fsb validate DIR\n\nChecks every Source, Flow, Plugin and Test document under DIR (loading each\nplugin's module as serve would) and prints each error as file:line:col.")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	set, plans := load(fs.Arg(0), stderr)
	if plans == nil {
		return 1
	}
	// Plugins are loaded as serve would (module read, digest, ABI, exports,
	// each step's operation), without their secrets: those belong to the
	// machine that serves.
	_, closePlugins, err := modules.Open(context.Background(), set, modules.Options{TestSecrets: true})
	if err != nil {
		printErrors(stderr, err, fs.Arg(0))
		return 1
	}
	closePlugins()
	fmt.Fprintf(stdout, "ok: %s, %s, %s, %s in %s\n", plural(len(set.Sources), "source"), plural(len(plans), "flow"),
		plural(len(set.Plugins), "plugin"), plural(len(set.Tests), "test"), plural(len(set.Files), "file"))
	return 0
}
