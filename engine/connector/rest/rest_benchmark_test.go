package rest

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/connector"
)

// benchServer serves a 1 KiB JSON document from a fasthttp server on
// loopback, so the numbers measure the client rather than the server.
func benchServer(b *testing.B) string {
	b.Helper()
	body := []byte(`{"data":"` + strings.Repeat("x", 1024-11) + `"}`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// BenchmarkCall is one connector call: URL from a template, merged query,
// static and request headers, deadline, and the body copied out.
func BenchmarkCall(b *testing.B) {
	addr := benchServer(b)
	c, err := New(Config{
		Source:     "bench",
		BaseURL:    "http://" + addr + "/api",
		Headers:    map[string]string{"X-Api-Key": "secret"},
		Retry:      Retry{Attempts: 2},
		Operations: map[string]Operation{"get": {Method: "GET", Path: "/persons/{ssin}", Query: map[string]string{"fields": "all"}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ReportAllocs()
	b.SetBytes(1024)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := &connector.Request{
			Operation: "get",
			Path:      map[string]string{"ssin": "85073003328"},
			Query:     map[string]string{"lang": "fr"},
			TraceID:   "3f1c2a9e-0b7d-4d7e-9d2a-5a1e6f0c8b11",
		}
		for pb.Next() {
			resp, err := c.Call(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			if resp.Status != 200 || len(resp.Body) != 1024 {
				b.Fatalf("status %d, %d bytes", resp.Status, len(resp.Body))
			}
		}
	})
}

// BenchmarkHostClient is the floor: a bare fasthttp.HostClient GET of the
// same document, to show what the connector adds on top.
func BenchmarkHostClient(b *testing.B) {
	addr := benchServer(b)
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: DefaultMaxConns}
	b.ReportAllocs()
	b.SetBytes(1024)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + "/api/persons/85073003328?fields=all&lang=fr")
		for pb.Next() {
			if err := hc.DoDeadline(req, resp, time.Now().Add(10*time.Second)); err != nil {
				b.Fatal(err)
			}
			if len(resp.Body()) != 1024 {
				b.Fatalf("%d bytes", len(resp.Body()))
			}
		}
	})
}
