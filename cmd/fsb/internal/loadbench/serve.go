package loadbench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
)

// ServedCandidates are the candidates StartServer builds: the Go proxies,
// which `fsb bench` runs in child processes of their own (`fsb
// bench-serve`), as nginx runs in its own.
var ServedCandidates = []string{FiberProxy, FiberMerge, FSBPassthrough, FSBThree, FSBThreeAudit}

// Server is a running candidate server.
type Server struct {
	Addr  string // host:port it listens on
	close func()
}

// Close shuts the server down (bounded: a few seconds at most).
func (s *Server) Close() { s.close() }

// StartServer starts candidate name (one of ServedCandidates) on listen, a
// loopback host:port, calling the three backends at backendURLs
// (http://127.0.0.1:PORT). poolConns bounds its connections to each
// backend. Both `fsb bench` in-process mode and `fsb bench-serve` build
// their servers here.
func StartServer(name string, backendURLs [3]string, poolConns int, listen string) (*Server, error) {
	if !slices.Contains(ServedCandidates, name) {
		return nil, fmt.Errorf("candidate %q is not served by fsb (served: %s)", name, strings.Join(ServedCandidates, ", "))
	}
	if err := checkLoopback(listen); err != nil {
		return nil, fmt.Errorf("listen address: %w", err)
	}
	if poolConns < 1 || poolConns > 65536 {
		return nil, fmt.Errorf("pool must be between 1 and 65536 connections, not %d", poolConns)
	}
	var addrs [3]string
	for i, raw := range backendURLs {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "http" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("backend %c: %q is not a base URL http://HOST:PORT", 'a'+i, raw)
		}
		if err := checkLoopback(u.Host); err != nil {
			return nil, fmt.Errorf("backend %c: %w", 'a'+i, err)
		}
		addrs[i] = u.Host
		backendURLs[i] = "http://" + u.Host
	}
	switch name {
	case FiberProxy:
		f, err := startFiberProxy(addrs[0], poolConns, listen)
		if err != nil {
			return nil, err
		}
		return &Server{Addr: f.addr, close: f.Close}, nil
	case FiberMerge:
		f, err := startFiberMerge(addrs, poolConns, listen)
		if err != nil {
			return nil, err
		}
		return &Server{Addr: f.addr, close: f.Close}, nil
	default: // FSBPassthrough, FSBThree(Audit): one gateway serving both flows
		s, err := startFSB(backendURLs, poolConns, listen, name == FSBThreeAudit)
		if err != nil {
			return nil, err
		}
		return &Server{Addr: s.addr, close: s.Close}, nil
	}
}

// checkLoopback wants hostport to be IP:PORT with a loopback IP: the
// benchmark serves nothing beyond this machine.
func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%q: %w", hostport, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return fmt.Errorf("%q: not an IPv4 loopback address (127.0.0.1:PORT)", hostport)
	}
	return nil
}

// ServeConfig is one `fsb bench-serve` run.
type ServeConfig struct {
	Candidate string    // one of ServedCandidates
	Backends  [3]string // the backends' base URLs
	Listen    string    // loopback host:port; port 0 picks one
	Pool      int       // connections to each backend (default 64)
}

// ReadyPrefix starts the line a served candidate prints once it accepts
// connections: "listening 127.0.0.1:PORT".
const ReadyPrefix = "listening "

// Serve starts the candidate, writes "listening ADDR\n" to ready once its
// listener is bound, serves until ctx ends, then shuts it down.
func Serve(ctx context.Context, sc ServeConfig, ready io.Writer) error {
	if sc.Pool == 0 {
		sc.Pool = 64
	}
	if sc.Listen == "" {
		sc.Listen = "127.0.0.1:0"
	}
	s, err := StartServer(sc.Candidate, sc.Backends, sc.Pool, sc.Listen)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := fmt.Fprintf(ready, "%s%s\n", ReadyPrefix, s.Addr); err != nil {
		return fmt.Errorf("announce the address: %w", err)
	}
	<-ctx.Done()
	return nil
}
