package main

import (
	"os"
	"testing"
)

// TestMain lets this test binary stand in for fsb as the connector
// process: the engine (plugin.Self) re-executes the running binary with
// the hidden subcommand, and under go test that binary is this one, so
// `connector` must serve the file transports here too, not run the tests.
// TestDemo's file source goes through it.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == connectorCommand {
		os.Exit(cmdConnector(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
