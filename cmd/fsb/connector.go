package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/openfsb/fsb/engine/connector/file/ftp"
	"github.com/openfsb/fsb/engine/connector/file/sftp"
	"github.com/openfsb/fsb/engine/plugin"
	"github.com/openfsb/fsb/sdk/connector"
)

// connectorCommand is the hidden subcommand that makes this binary the
// native connector process of file sources. The engine starts it through
// engine/plugin (plugin.Self("file-transports", connectorCommand)): the
// same executable, pinned by its SHA-256, with no inherited environment.
const connectorCommand = "connector"

// connectorVersion describes the process to fsb plugin inspect.
const connectorVersion = "1"

// cmdConnector serves the FTP and SFTP drivers over go-plugin until the
// engine stops it. Run by hand (without the engine's handshake) it says
// that it is a plugin and exits with status 1.
func cmdConnector(args []string, _, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "fsb %s: takes no arguments (the engine starts it)\n", connectorCommand)
		return 2
	}
	connector.Serve("fsb-connector", connectorVersion, ftp.Driver{}, sftp.Driver{})
	return 0
}

// connectorConfig returns how the engine starts the connector process of
// file sources: this executable, pinned by its SHA-256 when the first
// file source opens, running `fsb connector`, logging into log.
func connectorConfig(log *slog.Logger) func() (plugin.Config, error) {
	return func() (plugin.Config, error) {
		cfg, err := plugin.Self("file-transports", connectorCommand)
		cfg.Logger = log
		return cfg, err
	}
}
