package connector

import (
	"context"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Handshake is what host and connector process must agree on. A change of
// the wire that an old process could not serve bumps ProtocolVersion.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "OPENFSB_CONNECTOR",
	MagicCookieValue: "f3c1d0a2-file-transports-v1",
}

// PluginName is the name under which the process serves its drivers.
const PluginName = "connector"

// Plugin is the go-plugin glue: the process side serves Drivers, the
// host side gets a *Client.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	Name, Version string
	Drivers       []Driver
}

// GRPCServer registers the connector service.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&serviceDesc, newServer(p.Name, p.Version, p.Drivers))
	return nil
}

// GRPCClient returns the *Client for the connection.
func (p *Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}

// Serve runs the connector process: it serves the drivers to the host that
// launched it and returns only when the host stops it (it exits the
// process). name and version describe the process for fsb plugin inspect.
// Logs go to standard error as JSON, which the host folds into its log.
//
// The process also exits when its parent goes away, so that a host killed
// without a chance to stop it leaves no orphan holding connections.
func Serve(name, version string, drivers ...Driver) {
	go exitWithParent(os.Getppid())
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{PluginName: &Plugin{Name: name, Version: version, Drivers: drivers}},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          hclog.New(&hclog.LoggerOptions{Name: name, Output: os.Stderr, JSONFormat: true, Level: hclog.Info}),
	})
}

func exitWithParent(ppid int) {
	for range time.Tick(time.Second) {
		if os.Getppid() != ppid {
			os.Exit(3)
		}
	}
}
