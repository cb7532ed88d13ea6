package gateway_test

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/access"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/gateway"
)

// benchMode is one way of serving the person flow (a passthrough of one
// source, ~200 bytes) for the overhead ratios.
type benchMode struct {
	name   string
	client *fasthttp.HostClient
	hdr    bool // sends the purpose headers
}

// benchModes serves the person flow four ways: plain HTTP without access
// (the floor), TLS without access, mTLS with the grant check, and mTLS
// with the grant check and the audit trail. Keep-alive clients with 64
// connections, so TLS handshakes amortise.
func benchModes(b *testing.B) []benchMode {
	s := newSecure(b, secureOpt{audit: true})
	var none []string
	if _, err := s.reg.AmendGrant(context.Background(), adminName, s.personGrant, access.Amendment{Fields: &none}); err != nil {
		b.Fatal(err) // release the whole answer: measure enforcement, not minimisation
	}
	plain := gateway.Config{Plans: s.plans, Runtime: &flow.Runtime{Conns: s.conns}}
	_, plainAddr := s.listen(plain, false)
	_, tlsAddr := s.listen(plain, true)
	enforced := plain
	enforced.Access = s.reg
	_, mtlsAddr := s.listen(enforced, true)
	audited := enforced
	audited.Audit = s.store
	_, auditAddr := s.listen(audited, true)
	client := func(addr string, useTLS bool, certs ...tls.Certificate) *fasthttp.HostClient {
		c := &fasthttp.HostClient{Addr: addr, MaxConns: 64, ReadTimeout: 10 * time.Second}
		if useTLS {
			c.IsTLS = true
			c.TLSConfig = &tls.Config{RootCAs: s.server, Certificates: certs, MinVersion: tls.VersionTLS12}
		}
		return c
	}
	return []benchMode{
		{"plain", client(plainAddr, false), false},
		{"tls", client(tlsAddr, true), false},
		{"mtls+grant", client(mtlsAddr, true, s.cert1), true},
		{"mtls+grant+audit", client(auditAddr, true, s.cert1), true},
	}
}

func (m benchMode) do(req *fasthttp.Request, resp *fasthttp.Response) error {
	req.Header.SetMethod("POST")
	scheme := "http://"
	if m.client.IsTLS {
		scheme = "https://"
	}
	req.SetRequestURI(scheme + m.client.Addr + "/persons/v1/get")
	req.Header.SetContentType("application/json")
	if m.hdr {
		req.Header.Set(headerPurpose, purpose)
		req.Header.Set(headerEndUser, endUser)
	}
	req.SetBodyString(`{"id":"85010112345"}`)
	if err := m.client.Do(req, resp); err != nil {
		return err
	}
	if resp.StatusCode() != 200 {
		return errStatus
	}
	return nil
}

// BenchmarkEnforcement measures each mode on its own (requests/s in ns/op).
func BenchmarkEnforcement(b *testing.B) {
	modes := benchModes(b)
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				for pb.Next() {
					if err := m.do(req, resp); err != nil {
						b.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body())
					}
				}
			})
		})
	}
}

// BenchmarkEnforcementRatio alternates the modes over 5 rounds of a fixed
// number of calls from 64 goroutines and reports the median throughput
// ratios of one run: mtls+grant/plain, mtls+grant/tls and
// audit/mtls+grant. Run it with -benchtime=1x.
func BenchmarkEnforcementRatio(b *testing.B) {
	modes := benchModes(b)
	const calls, workers, rounds = 4000, 64, 5
	rate := func(m benchMode) float64 {
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Go(func() {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				for range calls / workers {
					if err := m.do(req, resp); err != nil {
						b.Errorf("%s: %v %d %s", m.name, err, resp.StatusCode(), resp.Body())
						return
					}
				}
			})
		}
		wg.Wait()
		return calls / time.Since(start).Seconds()
	}
	for _, m := range modes { // warm up: connections and handshakes
		rate(m)
	}
	rates := make([][]float64, len(modes))
	for range rounds {
		for i, m := range modes {
			rates[i] = append(rates[i], rate(m))
		}
	}
	med := func(xs []float64) float64 {
		xs = slices.Clone(xs)
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	ratio := func(i, j int) float64 {
		var rs []float64
		for k := range rounds {
			rs = append(rs, rates[i][k]/rates[j][k])
		}
		return med(rs)
	}
	for i, m := range modes {
		b.ReportMetric(med(rates[i]), m.name+"_req/s")
	}
	b.ReportMetric(ratio(2, 0), "mtls+grant/plain")
	b.ReportMetric(ratio(2, 1), "mtls+grant/tls")
	b.ReportMetric(ratio(3, 2), "audit/noaudit")
}

var errStatus = errors.New("status is not 200")
