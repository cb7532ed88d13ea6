// Command fsb is the one OpenFSB binary: it validates, tests and serves flow
// directories, and runs the demo.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"validate": {"check a flow directory and report every error", cmdValidate},
	"test":     {"run the flow tests kept next to the flows", cmdTest},
	"serve":    {"serve the flows of a directory", cmdServe},
	"demo":     {"start demo sources and serve the demo flows", cmdDemo},
	"bench":    {"load-benchmark OpenFSB against baselines on loopback", cmdBench},
	"plugin":   {"build, inspect or run a WebAssembly plugin", cmdPlugin},
	"consumer": {"onboard consumers through the admin API, run a connection test", cmdConsumer},
	"audit":    {"verify, query and export the audit trail; make keys", cmdAudit},
}

// hiddenCommands run like commands but are not listed by usage.
var hiddenCommands = map[string]command{
	benchServeCommand: {"serve one candidate of fsb bench in a child process", cmdBenchServe},
	connectorCommand:  {"serve the FTP/SFTP transports to the engine (started by engine/plugin)", cmdConnector},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		c, ok = hiddenCommands[args[0]]
	}
	if !ok {
		fmt.Fprintf(stderr, "fsb: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: fsb <command> [flags] [args]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'fsb <command> -h' for the flags of one command.")
}

// plural returns "1 flow" or "2 flows".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
