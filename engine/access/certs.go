package access

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync"
	"time"
)

// chainCache remembers leaves whose chain verified against the CA pool, so
// that the signature checks (tens of µs) run once per certificate rather
// than once per call. An entry is only trusted inside the validity window
// common to the whole verified chain. Only successes are cached; failures
// cost the caller's CPU, and tooManyFailedRequests bounds that.
type chainCache struct {
	mu sync.RWMutex
	m  map[[32]byte]validity
}

type validity struct{ notBefore, notAfter time.Time }

// maxCachedChains bounds the cache; it is emptied when full. Only leaves
// issued by a trusted CA get in, so this is far above any real fleet.
const maxCachedChains = 10_000

// verifyChain checks that chain[0] chains to roots (chain[1:] may be
// intermediates) at now, for client authentication.
func (r *Registry) verifyChain(fp [32]byte, chain []*x509.Certificate, now time.Time) error {
	c := &r.chains
	c.mu.RLock()
	v, ok := c.m[fp]
	c.mu.RUnlock()
	if ok && !now.Before(v.notBefore) && !now.After(v.notAfter) {
		return nil
	}
	if r.opts.ClientCAs == nil {
		return fmt.Errorf("no client CA configured")
	}
	opts := x509.VerifyOptions{
		Roots:       r.opts.ClientCAs,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(chain) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, ic := range chain[1:] {
			opts.Intermediates.AddCert(ic)
		}
	}
	verified, err := chain[0].Verify(opts)
	if err != nil {
		return err
	}
	v = validity{notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter}
	for _, cert := range verified[0] {
		if cert.NotBefore.After(v.notBefore) {
			v.notBefore = cert.NotBefore
		}
		if cert.NotAfter.Before(v.notAfter) {
			v.notAfter = cert.NotAfter
		}
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedChains {
		c.m = make(map[[32]byte]validity)
	}
	c.m[fp] = v
	c.mu.Unlock()
	return nil
}

// parseCertificates reads a PEM bundle (leaf first, then intermediates) or
// one DER certificate.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue // a key pasted by mistake is skipped, never stored
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate: %w: %w", err, ErrInvalid)
		}
		out = append(out, c)
	}
	if len(out) > 0 {
		return out, nil
	}
	c, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("certificate: neither PEM with a CERTIFICATE block nor DER: %w", ErrInvalid)
	}
	return []*x509.Certificate{c}, nil
}
