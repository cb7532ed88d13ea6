package sources

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/connector/rest"
	"github.com/openfsb/fsb/engine/connector/soap"
	"github.com/openfsb/fsb/engine/spec"
	"github.com/openfsb/fsb/engine/wasm"
)

// openSOAP builds the client of a soap source: the WSDL port the spec
// checker read, the codec plugin loaded by engine/modules (a sandboxed
// module with the operations encode and decode), and the transport.
func openSOAP(set *spec.Set, src *spec.Source, opt Options) (connector.Connector, error) {
	s := src.SOAP
	port := s.WSDLPort()
	if port == nil {
		return nil, fmt.Errorf("WSDL %s was not read (fsb validate says why)", s.WSDL)
	}
	codec := opt.Plugins[s.Codec]
	if codec == nil {
		return nil, fmt.Errorf("codec plugin %q is not loaded", s.Codec)
	}
	if m, ok := codec.(interface{ Operations() []string }); ok {
		ops := m.Operations()
		if !slices.Contains(ops, "encode") || !slices.Contains(ops, "decode") {
			return nil, fmt.Errorf("codec plugin %q has no encode and decode operations: declare the SOAP codec (plugins/soap/soap.wasm)", s.Codec)
		}
	}
	// The codec reads the whole answer: it must accept as much as the
	// source may send.
	maxInput := wasm.DefaultMaxInput
	if pl := set.Plugins[s.Codec]; pl != nil && pl.Limits != nil && pl.Limits.MaxInput > 0 {
		maxInput = int(pl.Limits.MaxInput)
	}
	maxBytes := int(s.MaxResponseBytes)
	switch {
	case maxBytes == 0:
		maxBytes = min(soap.DefaultMaxResponseBytes, maxInput)
	case maxBytes > maxInput:
		return nil, fmt.Errorf("maxResponseBytes %d is larger than what codec plugin %q reads (limits.maxInput %d): raise its maxInput", maxBytes, s.Codec, maxInput)
	}
	cfg := soap.Config{
		Source:           src.Name,
		Port:             port,
		Endpoint:         s.Endpoint,
		Codec:            soap.ModuleCodec{Module: codec},
		Timeout:          s.Timeout.D(),
		MaxResponseBytes: maxBytes,
		Headers:          map[string]string{},
	}
	if u, ok := opt.BaseURLs[src.Name]; ok {
		cfg.Endpoint = u
	}
	for k, v := range s.Headers {
		cfg.Headers[k] = v
	}
	if err := authHeaders(s.Auth, opt, cfg.Headers); err != nil {
		return nil, err
	}
	if s.TLS != nil {
		rt, err := soapTransport(s.TLS, cmpOr(cfg.Endpoint, port.Address), cmpOr(cfg.Timeout, soap.DefaultTimeout))
		if err != nil {
			return nil, err
		}
		cfg.Transport = rt
	}
	return soap.New(cfg)
}

// soapTransport is the HTTP transport of a soap source with a tls block:
// the REST connector's TLS rules (rest.TLSConfig), net/http's pooling.
func soapTransport(t *spec.TLS, endpoint string, timeout time.Duration) (http.RoundTripper, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, errors.New("endpoint is not a URL")
	}
	tc, err := rest.TLSConfig(&rest.TLS{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName}, u.Hostname())
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
