package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/spec"
)

// load reads and compiles a flow directory, printing every error with its
// source line to w. It returns nil plans when there were errors.
func load(dir string, w io.Writer) (*spec.Set, map[string]*flow.Plan) {
	set, err := spec.LoadDir(dir)
	var errs spec.ErrorList
	if err != nil && !errors.As(err, &errs) {
		fmt.Fprintf(w, "fsb: %v\n", err)
		return nil, nil
	}
	plans, cerr := flow.Compile(set)
	var cerrs spec.ErrorList
	if errors.As(cerr, &cerrs) {
		errs = append(errs, cerrs...)
		errs.Sort()
	}
	// What a WSDL uses that the SOAP codec leaves out: shown, stops nothing.
	for _, e := range set.Warnings() {
		fmt.Fprintln(w, e.Snippet())
	}
	if len(errs) > 0 {
		printErrors(w, errs, dir)
		return set, nil
	}
	return set, plans
}

// printErrors prints err: a spec.ErrorList error by error with its source
// line, then how many there are and, unless where is "", where they are
// ("1 error in flows/"); any other error on one line.
func printErrors(w io.Writer, err error, where string) {
	var errs spec.ErrorList
	if !errors.As(err, &errs) {
		fmt.Fprintf(w, "fsb: %v\n", err)
		return
	}
	for _, e := range errs {
		fmt.Fprintln(w, e.Snippet())
	}
	if where == "" {
		fmt.Fprintln(w, plural(len(errs), "error"))
	} else {
		fmt.Fprintf(w, "%s in %s\n", plural(len(errs), "error"), where)
	}
}
