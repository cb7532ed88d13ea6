package loadbench

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/gateway"
	"github.com/openfsb/fsb/engine/sources"
	"github.com/openfsb/fsb/engine/spec"
)

// Paths the candidates serve.
const (
	mergePath       = "/merge/v1/items/"
	proxyPath       = "/proxy/v1/items/"
	passthroughPath = "/bench/v1/items/"
	threePath       = "/bench/v1/merged/"
)

// fiberApp is a running fiber app on a loopback listener.
type fiberApp struct {
	app  *fiber.App
	addr string
	done chan error
}

func serveFiber(app *fiber.App, listen string) (*fiberApp, error) {
	ln, err := net.Listen("tcp4", listen)
	if err != nil {
		return nil, err
	}
	f := &fiberApp{app: app, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { f.done <- app.Listener(ln) }()
	return f, nil
}

func (f *fiberApp) Close() {
	_ = f.app.ShutdownWithTimeout(5 * time.Second)
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
	}
}

// startFiberProxy starts the floor of a Go proxy: a fiber v2 handler that
// forwards to one backend with a fasthttp.HostClient and copies the answer,
// with no validation, tracing or error mapping. fsb-passthrough / fiber-proxy
// is what OpenFSB's flow machinery costs on top of the same HTTP stack.
func startFiberProxy(addr string, poolConns int, listen string) (*fiberApp, error) {
	hc := &fasthttp.HostClient{Addr: addr, Name: "fiber-proxy", MaxConns: poolConns,
		MaxIdleConnDuration: 30 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get(proxyPath+":id", func(c *fiber.Ctx) error {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + "/items/" + c.Params("id"))
		if err := hc.DoTimeout(req, resp, 5*time.Second); err != nil {
			return fiber.NewError(fiber.StatusBadGateway, err.Error())
		}
		c.Status(resp.StatusCode())
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(resp.Body())
	})
	f, err := serveFiber(app, listen)
	if err != nil {
		return nil, fmt.Errorf("fiber-proxy: %w", err)
	}
	return f, nil
}

// startFiberMerge starts the hand-written baseline: a fiber v2 handler that
// calls the three backends in parallel with fasthttp clients and merges the
// bodies into {"a":…,"b":…,"c":…} through encoding/json maps — what a
// developer writes without a flow engine. addrs are the backends' host:port.
func startFiberMerge(addrs [3]string, poolConns int, listen string) (*fiberApp, error) {
	var clients [3]*fasthttp.HostClient
	for i, addr := range addrs {
		clients[i] = &fasthttp.HostClient{
			Addr:                addr,
			Name:                "fiber-merge",
			MaxConns:            poolConns,
			MaxIdleConnDuration: 30 * time.Second,
			ReadTimeout:         5 * time.Second,
			WriteTimeout:        5 * time.Second,
		}
	}
	keys := [3]string{"a", "b", "c"}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get(mergePath+":id", func(c *fiber.Ctx) error {
		id := strings.Clone(c.Params("id"))
		var (
			wg     sync.WaitGroup
			bodies [3][]byte
			errs   [3]error
		)
		for i, hc := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI("http://" + hc.Addr + "/items/" + id)
				req.Header.Set(fiber.HeaderAccept, fiber.MIMEApplicationJSON)
				if err := hc.DoTimeout(req, resp, 5*time.Second); err != nil {
					errs[i] = err
					return
				}
				if resp.StatusCode() != fiber.StatusOK {
					errs[i] = fmt.Errorf("status %d", resp.StatusCode())
					return
				}
				bodies[i] = append([]byte(nil), resp.Body()...)
			}()
		}
		wg.Wait()
		merged := make(map[string]any, len(keys))
		for i, b := range bodies {
			if errs[i] != nil {
				return fiber.NewError(fiber.StatusBadGateway, keys[i]+": "+errs[i].Error())
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				return fiber.NewError(fiber.StatusBadGateway, keys[i]+": "+err.Error())
			}
			merged[keys[i]] = m
		}
		out, err := json.Marshal(merged)
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(out)
	})
	f, err := serveFiber(app, listen)
	if err != nil {
		return nil, fmt.Errorf("fiber-merge: %w", err)
	}
	return f, nil
}

// sourcesYAML declares the three backends as OpenFSB sources a, b and c.
const sourceYAML = `kind: Source
name: %[1]s
title: Bench backend %[1]s (%[2]s)
owner: fsb bench
protocol: rest
rest:
  baseUrl: %[3]s
  timeout: 5s
  maxResponseBytes: 64KiB
  pool: {maxConns: %[4]d, idleTimeout: 30s}
  operations:
    getItem:
      method: GET
      path: /items/{id}
`

// flowsYAML holds the two benchmark flows.
const flowsYAML = `# One call, the source's body answered as it came.
kind: Flow
name: benchPassthrough
version: 1.0.0
method: GET
path: /bench/v1/items/{id}
catalog:
  title: Bench passthrough
timeout: 5s
steps:
  - id: a
    call: a.getItem
    with:
      path:
        id: input.path.id
output: steps.a.body
---
# Three calls in parallel, merged into one object.
kind: Flow
name: benchThree
version: 1.0.0
method: GET
path: /bench/v1/merged/{id}
catalog:
  title: Bench three sources
timeout: 5s
steps:
  - id: all
    parallel:
      - id: a
        call: a.getItem
        with:
          path:
            id: input.path.id
      - id: b
        call: b.getItem
        with:
          path:
            id: input.path.id
      - id: c
        call: c.getItem
        with:
          path:
            id: input.path.id
output:
  a: steps.a.body
  b: steps.b.body
  c: steps.c.body
`

// FlowFiles returns the YAML the OpenFSB candidates are built from, for
// backends at the given base URLs.
func FlowFiles(baseURLs [3]string, poolConns int) map[string][]byte {
	kinds := [3]string{"enterprise", "person", "VAT record"}
	var src []string
	for i, u := range baseURLs {
		src = append(src, fmt.Sprintf(sourceYAML, string(rune('a'+i)), kinds[i], u, poolConns))
	}
	return map[string][]byte{
		"bench/sources.yaml": []byte(strings.Join(src, "---\n")),
		"bench/flows.yaml":   []byte(flowsYAML),
	}
}

// fsbServer is an OpenFSB gateway serving the two benchmark flows.
type fsbServer struct {
	*fiberApp
	close func()
}

// startFSB starts an OpenFSB gateway serving both benchmark flows, with
// the backends at the base URLs urls as its sources. With audit, every
// call is recorded in a fresh audit store on disk (openBenchAudit).
func startFSB(urls [3]string, poolConns int, listen string, withAudit bool) (*fsbServer, error) {
	set, err := spec.Load(FlowFiles(urls, poolConns))
	if err != nil {
		return nil, fmt.Errorf("fsb: load the bench flows: %w", err)
	}
	plans, err := flow.Compile(set)
	if err != nil {
		return nil, fmt.Errorf("fsb: compile the bench flows: %w", err)
	}
	conns, err := sources.Open(set, sources.Options{})
	if err != nil {
		return nil, fmt.Errorf("fsb: open the bench sources: %w", err)
	}
	log := slog.New(slog.DiscardHandler)
	closeAll := func() { sources.Close(conns) }
	var store *audit.Store
	if withAudit {
		var closeAudit func()
		if store, closeAudit, err = openBenchAudit(log); err != nil {
			closeAll()
			return nil, err
		}
		closeAll = func() { closeAudit(); sources.Close(conns) }
	}
	gw := gateway.New(gateway.Config{
		Plans:   plans,
		Runtime: &flow.Runtime{Conns: conns, Observer: gateway.CallLogger{Log: log}, Log: log},
		Log:     log,
		Audit:   store,
	})
	f, err := serveFiber(gw.App(), listen)
	if err != nil {
		closeAll()
		return nil, errors.Join(errors.New("fsb: listen"), err)
	}
	return &fsbServer{fiberApp: f, close: closeAll}, nil
}

// openBenchAudit opens an audit store in a new temporary directory on the
// machine's disk (os.TempDir: a tmpfs would make every sync free and the
// measurement meaningless — set TMPDIR to a disk), with a fresh signing
// key and subject key, as `fsb serve -audit-dir` would. close removes it.
func openBenchAudit(log *slog.Logger) (*audit.Store, func(), error) {
	dir, err := os.MkdirTemp("", "fsb-bench-audit-")
	if err != nil {
		return nil, nil, fmt.Errorf("fsb: audit store: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	opt := audit.Options{Dir: dir, Signer: key, SubjectKeys: []audit.Key{{ID: "bench", Secret: secret}}, Logger: log}
	// FSB_BENCH_AUDIT_STATS=FILE: the store's batches (records, write+sync
	// time) are summarised into FILE when the candidate stops.
	statsFile := os.Getenv("FSB_BENCH_AUDIT_STATS")
	var mu sync.Mutex
	var syncs []time.Duration
	var records int
	if statsFile != "" {
		opt.OnCommit = func(n int, d time.Duration, err error) {
			mu.Lock()
			syncs = append(syncs, d)
			records += n
			mu.Unlock()
		}
	}
	s, err := audit.Open(opt)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("fsb: audit store: %w", err)
	}
	return s, func() {
		_ = s.Close()
		_ = os.RemoveAll(dir)
		if statsFile != "" && len(syncs) > 0 {
			mu.Lock()
			defer mu.Unlock()
			var sum time.Duration
			for _, d := range syncs {
				sum += d
			}
			sorted := slices.Clone(syncs)
			slices.Sort(sorted)
			q := func(f float64) time.Duration { return sorted[int(f*float64(len(sorted)-1))] }
			_ = os.WriteFile(statsFile, fmt.Appendf(nil, "batches %d records %d (%.1f a batch) write+sync mean %v p50 %v p90 %v p99 %v\n",
				len(syncs), records, float64(records)/float64(len(syncs)), sum/time.Duration(len(syncs)), q(0.5), q(0.9), q(0.99)), 0o644)
		}
	}, nil
}

func (s *fsbServer) Close() {
	s.fiberApp.Close()
	s.close()
}
