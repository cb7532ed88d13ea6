package soap_test

import (
	"context"
	"testing"

	"github.com/openfsb/fsb/engine/wasm"
	"github.com/openfsb/fsb/plugins/internal/plugintest"
	"github.com/openfsb/fsb/plugins/soap"
)

// checkVatMessages returns the checkVat request, response and codec
// configuration of the VIES WSDL.
func checkVatMessages(b *testing.B) (req, resp, cfg []byte) {
	for _, c := range messageCases(b) {
		switch c.name {
		case "checkVat request":
			req, cfg = []byte(c.in), []byte(c.cfg)
		case "checkVat response":
			resp = []byte(c.in)
		}
	}
	return req, resp, cfg
}

// BenchmarkCheckVat measures one call's codec work: encode the request and
// decode the response, natively and in the sandbox.
func BenchmarkCheckVat(b *testing.B) {
	req, resp, cfg := checkVatMessages(b)
	ctx := context.Background()
	b.Run("native", func(b *testing.B) {
		var c soap.Native
		b.SetBytes(int64(len(req) + len(resp)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Encode(ctx, req, cfg); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Decode(ctx, resp, cfg); err != nil {
				b.Fatal(err)
			}
		}
	})
	bin := build(b)
	for _, tc := range []struct {
		name  string
		trust wasm.Trust
	}{{"wasm-untrusted", wasm.Untrusted}, {"wasm-trusted", wasm.Trusted}} {
		b.Run(tc.name, func(b *testing.B) {
			m := plugintest.Load(b, "soap", bin, tc.trust)
			b.SetBytes(int64(len(req) + len(resp)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Call(ctx, "encode", req, cfg); err != nil {
					b.Fatal(err)
				}
				if _, err := m.Call(ctx, "decode", resp, cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeOrder measures decoding the nested getOrder response.
func BenchmarkDecodeOrder(b *testing.B) {
	var in, cfg []byte
	for _, c := range messageCases(b) {
		if c.name == "getOrder response" {
			in, cfg = []byte(c.in), []byte(c.cfg)
		}
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (soap.Native{}).Decode(context.Background(), in, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
