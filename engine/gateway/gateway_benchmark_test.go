package gateway_test

import (
	"crypto/ed25519"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/gateway"
	"github.com/openfsb/fsb/engine/sources"
	"github.com/openfsb/fsb/engine/spec"
)

// benchDoc is a ~1 KiB JSON document like the registers answer.
var benchDoc = []byte(`{"enterpriseNumber":"0912345673","name":"Zonnebloem Bakkerijen","status":"active",` +
	`"address":{"street":"Kortrijksesteenweg","houseNumber":"412","postalCode":"9000","municipality":"Gent"},` +
	`"notes":"` + strings.Repeat("x", 800) + `"}`)

// benchGateway serves flowYAML (sources a, b, c point at one fasthttp
// backend) on loopback and returns a client bound to it.
func benchGateway(b *testing.B, flowYAML string) (*fasthttp.HostClient, func()) {
	return benchGatewayWith(b, flowYAML, nil)
}

// benchGatewayWith is benchGateway with the audit trail store on (nil: off).
func benchGatewayWith(b *testing.B, flowYAML string, store *audit.Store) (*fasthttp.HostClient, func()) {
	b.Helper()
	backLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	back := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		c.SetContentType("application/json")
		c.SetBody(benchDoc)
	}}
	go back.Serve(backLn)
	var docs strings.Builder
	for _, n := range []string{"a", "b", "c"} {
		docs.WriteString("kind: Source\nname: " + n + "\nprotocol: rest\nrest:\n  baseUrl: http://" + backLn.Addr().String() +
			"\n  pool: {maxConns: 256}\n  operations:\n    get: {method: GET, path: \"/items/{id}\"}\n---\n")
	}
	docs.WriteString(flowYAML)
	set, err := spec.Load(map[string][]byte{"bench.yaml": []byte(docs.String())})
	if err != nil {
		b.Fatal(err)
	}
	plans, err := flow.Compile(set)
	if err != nil {
		b.Fatal(err)
	}
	conns, err := sources.Open(set, sources.Options{})
	if err != nil {
		b.Fatal(err)
	}
	gw := gateway.New(gateway.Config{Plans: plans, Runtime: &flow.Runtime{Conns: conns}, Audit: store})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go gw.App().Listener(ln)
	client := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 256}
	return client, func() {
		_ = gw.App().Shutdown()
		_ = back.Shutdown()
		sources.Close(conns)
	}
}

func benchGet(b *testing.B, client *fasthttp.HostClient, path string) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + client.Addr + path)
		for pb.Next() {
			if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body())
			}
		}
	})
}

// BenchmarkGatewayPassthrough: client → gateway → backend over loopback,
// all in this process (allocations count all three).
func BenchmarkGatewayPassthrough(b *testing.B) {
	client, stop := benchGateway(b, `kind: Flow
name: pass
version: 1.0.0
method: GET
path: /bench/v1/items/{id}
steps:
  - {id: a, call: a.get, with: {path: {id: input.path.id}}}
output: steps.a.body
`)
	defer stop()
	benchGet(b, client, "/bench/v1/items/7")
}

// threeFlow calls three sources in parallel and splices their answers.
const threeFlow = `kind: Flow
name: three
version: 1.0.0
method: GET
path: /bench/v1/all/{id}
steps:
  - id: all
    parallel:
      - {id: a, call: a.get, with: {path: {id: input.path.id}}}
      - {id: b, call: b.get, with: {path: {id: input.path.id}}}
      - {id: c, call: c.get, with: {path: {id: input.path.id}}}
output: {a: steps.a.body, b: steps.b.body, c: steps.c.body}
`

// BenchmarkGatewayThree: three sources in parallel, spliced.
func BenchmarkGatewayThree(b *testing.B) {
	client, stop := benchGateway(b, threeFlow)
	defer stop()
	benchGet(b, client, "/bench/v1/all/7")
}

// BenchmarkGatewayThreeAudited is BenchmarkGatewayThree with the audit
// trail on (a store on the disk: two durable records per call).
func BenchmarkGatewayThreeAudited(b *testing.B) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	store, err := audit.Open(audit.Options{Dir: filepath.Join(b.TempDir(), "audit"), Signer: key})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	client, stop := benchGatewayWith(b, threeFlow, store)
	defer stop()
	benchGet(b, client, "/bench/v1/all/7")
}

// BenchmarkBareFiberProxy is the floor the passthrough flow is compared
// with: a fiber handler forwarding to the same backend with a HostClient.
func BenchmarkBareFiberProxy(b *testing.B) {
	backLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	back := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		c.SetContentType("application/json")
		c.SetBody(benchDoc)
	}}
	go back.Serve(backLn)
	defer back.Shutdown()
	hc := &fasthttp.HostClient{Addr: backLn.Addr().String(), MaxConns: 256}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/bench/v1/items/:id", func(c *fiber.Ctx) error {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + hc.Addr + "/items/" + c.Params("id"))
		if err := hc.Do(req, resp); err != nil {
			return err
		}
		c.Set("Content-Type", "application/json")
		return c.Send(resp.Body())
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go app.Listener(ln)
	defer app.Shutdown()
	benchGet(b, &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 256}, "/bench/v1/items/7")
}
