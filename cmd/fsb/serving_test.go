package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/config"
)

// serving is fsb serve started by a test, with wait running as cmdServe
// runs it. cancel is what Ctrl-C does to wait's context; stop cancels and
// returns wait's exit code (later calls return the same code). The test's
// cleanup stops it too and fails the test on a non-zero exit.
type serving struct {
	*server
	cancel func()
	stop   func() int
}

// serveFlows serves the flows under dir as `fsb serve` with the flags f
// and no configuration file does; o.log nil: no log.
func serveFlows(t *testing.T, dir string, f serveFlags, o serveOptions) *serving {
	t.Helper()
	cfg, err := serveConfig("", dir, &f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return serveTest(t, cfg, o)
}

// serveConfigFile serves file as `fsb serve --config file` does (no flags);
// o.log nil: no log.
func serveConfigFile(t *testing.T, file string, o serveOptions) *serving {
	t.Helper()
	cfg, err := serveConfig(file, "", &serveFlags{}, func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	return serveTest(t, cfg, o)
}

func serveTest(t *testing.T, cfg *config.Config, o serveOptions) *serving {
	t.Helper()
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	srv, err := startServer(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- srv.wait(ctx, o.log) }()
	s := &serving{server: srv, cancel: cancel}
	s.stop = sync.OnceValue(func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(20 * time.Second):
			t.Error("fsb serve did not stop within 20s")
			return -1
		}
	})
	t.Cleanup(func() {
		if code := s.stop(); code != 0 {
			t.Errorf("serve exit %d", code)
		}
	})
	return s
}

// getMetrics GETs the metrics at url with the admin token (none if ""),
// and returns the status and the text.
func getMetrics(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrapeMetrics reads the metrics of the admin listener at addr
// (metrics.path /metrics) with the admin token.
func scrapeMetrics(t *testing.T, addr, token string) string {
	t.Helper()
	code, text := getMetrics(t, "http://"+addr+"/metrics", token)
	if code != 200 {
		t.Fatalf("metrics: %d %s", code, text)
	}
	return text
}

// restFlow is the flow set of most serve tests: a REST source reg at up
// and a flow x (GET /x/v1/x) answering what reg's get answers.
func restFlow(up string) string {
	return `kind: Source
name: reg
protocol: rest
rest:
  baseUrl: ` + up + `
  operations:
    get: {method: GET, path: /x}
---
kind: Flow
name: x
version: 1.0.0
method: GET
path: /x/v1/x
steps:
  - id: r
    call: reg.get
output: steps.r.body
`
}

// writeFlows writes restFlow(up) as dir/flows/x.yaml and returns the flow
// directory.
func writeFlows(t *testing.T, dir, up string) string {
	t.Helper()
	flows := filepath.Join(dir, "flows")
	if err := os.MkdirAll(flows, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(flows, "x.yaml"), restFlow(up), 0o644)
	return flows
}

func writeFile(t *testing.T, name, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}

// runOK runs fsb with args, fails the test unless it exits 0, and returns
// what it printed on stdout.
func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("fsb %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	}
	return stdout.String()
}
