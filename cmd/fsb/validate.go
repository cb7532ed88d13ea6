package main

import (
	"flag"
	"fmt"
	"io"
)

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fsb validate DIR\n\nChecks every Source, Flow and Test document under DIR and prints each error as file:line:col.")
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
	fmt.Fprintf(stdout, "ok: %s, %s, %s in %s\n", plural(len(set.Sources), "source"), plural(len(plans), "flow"), plural(len(set.Tests), "test"), plural(len(set.Files), "file"))
	return 0
}
