package rest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// Config describes one REST source. The YAML loader maps the project's
// configuration onto it; New validates it and fills the defaults.
type Config struct {
	Source           string            // source name, used in errors and logs
	BaseURL          string            // http:// or https://, may include a path prefix
	Timeout          time.Duration     // per attempt; default 10s
	Retry            Retry             // default: no retry (Attempts 1)
	MaxResponseBytes int               // default 4 MiB; larger responses fail with connector.ErrTooLarge
	MaxConns         int               // connection pool size; default 64
	MaxIdle          time.Duration     // idle connection lifetime; default 30s
	TLS              *TLS              // nil = system roots for https
	Headers          map[string]string // static headers sent on every call (secrets already resolved by the caller)
	HealthPath       string            // if set, Check does GET BaseURL+HealthPath and wants a 2xx; else Check just dials the host
	Operations       map[string]Operation
}

// TLS configures the connection to an https source.
type TLS struct {
	CAFile     string // PEM bundle; when set, only these roots are trusted
	CertFile   string // client certificate (PEM) for mTLS to the upstream
	KeyFile    string
	ServerName string // overrides SNI / verification name
}

// Retry is the retry policy of a source or of one operation.
type Retry struct {
	Attempts   int           // total attempts including the first; <=1 means no retry
	Backoff    time.Duration // base delay; default 100ms
	MaxBackoff time.Duration // cap; default 2s (or Backoff when larger)
	OnStatus   []int         // statuses that trigger a retry; default 429, 502, 503, 504
}

// Operation is one call a source offers.
type Operation struct {
	Method           string            // GET, POST, ...
	Path             string            // template relative to BaseURL: /persons/{ssin}
	Query            map[string]string // static query parameters
	Headers          map[string]string // static headers
	Timeout          time.Duration     // overrides Config.Timeout when > 0
	Retry            *Retry            // overrides Config.Retry when non-nil
	Idempotent       *bool             // nil: derived from the method (GET, HEAD, OPTIONS, PUT, DELETE are idempotent); retries only happen for idempotent operations
	MaxResponseBytes int               // overrides when > 0
}

// Defaults applied by New to zero values.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 4 << 20
	DefaultMaxConns         = 64
	DefaultMaxIdle          = 30 * time.Second
	DefaultBackoff          = 100 * time.Millisecond
	DefaultMaxBackoff       = 2 * time.Second
)

var defaultOnStatus = []int{429, 502, 503, 504}

// idempotentMethods are the methods RFC 9110 calls idempotent, minus TRACE
// (never sent) — the default of Operation.Idempotent.
var idempotentMethods = map[string]bool{
	"GET": true, "HEAD": true, "OPTIONS": true, "PUT": true, "DELETE": true,
	"POST": false, "PATCH": false,
}

// policy is a validated Retry with its defaults applied.
type policy struct {
	attempts   int
	backoff    time.Duration
	maxBackoff time.Duration
	onStatus   []int
}

func (p *policy) retriesStatus(status int) bool {
	return slices.Contains(p.onStatus, status)
}

func compilePolicy(r Retry) (policy, error) {
	p := policy{attempts: max(r.Attempts, 1), backoff: r.Backoff, maxBackoff: r.MaxBackoff}
	if r.Backoff < 0 || r.MaxBackoff < 0 {
		return p, errors.New("retry backoff must not be negative")
	}
	if p.backoff == 0 {
		p.backoff = DefaultBackoff
	}
	if p.maxBackoff == 0 {
		p.maxBackoff = max(DefaultMaxBackoff, p.backoff)
	}
	if p.maxBackoff < p.backoff {
		return p, fmt.Errorf("retry max backoff %s is below backoff %s", p.maxBackoff, p.backoff)
	}
	p.onStatus = defaultOnStatus
	if r.OnStatus != nil {
		for _, s := range r.OnStatus {
			if s < 400 || s > 599 {
				return p, fmt.Errorf("retry on status %d: only 4xx and 5xx statuses can trigger a retry", s)
			}
		}
		p.onStatus = slices.Clone(r.OnStatus)
	}
	return p, nil
}

// endpoint is the parsed BaseURL.
type endpoint struct {
	https  bool
	addr   string // host:port to dial
	host   string // host name, for TLS verification
	prefix string // scheme://host[:port]/base/path without a trailing slash
}

func parseBaseURL(raw string) (endpoint, error) {
	var e endpoint
	if raw == "" {
		return e, errors.New("base url is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return e, fmt.Errorf("base url: %w", err)
	}
	switch u.Scheme {
	case "http":
	case "https":
		e.https = true
	default:
		return e, fmt.Errorf("base url scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return e, errors.New("base url has no host")
	}
	if u.User != nil {
		return e, errors.New("base url must not carry credentials: use headers")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return e, errors.New("base url must not have a query or a fragment: use operation query")
	}
	e.host = u.Hostname()
	port := u.Port()
	if port == "" {
		port = "80"
		if e.https {
			port = "443"
		}
	}
	e.addr = net.JoinHostPort(e.host, port)
	e.prefix = u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/")
	return e, nil
}

// TLSConfig is the client TLS configuration for t and host (SNI and
// verification name unless t.ServerName says otherwise): TLS 1.2 at least,
// only t.CAFile's roots when it is set, t's client certificate. Other
// HTTP transports (the soap connector's) use it too.
func TLSConfig(t *TLS, host string) (*tls.Config, error) { return buildTLS(t, host) }

func buildTLS(t *TLS, host string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if t == nil {
		return cfg, nil
	}
	if t.ServerName != "" {
		cfg.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca file %q holds no pem certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("client certificate needs both cert file and key file")
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client key pair: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// header is one validated static header, name in canonical form.
// header is a static header; the byte forms (name canonical) let a call
// set it without normalising or converting again.
type header struct {
	name, value   string
	nameB, valueB []byte
}

// reservedHeaders are managed by the transport; letting a configuration or a
// flow set them would allow request smuggling or a wrong Host.
var reservedHeaders = []string{
	"Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
	"Proxy-Connection", "Te", "Trailer", "Upgrade",
}

// checkHeader validates a header name and value wherever they come from.
func checkHeader(name, value string) error {
	if name == "" {
		return errors.New("empty header name")
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return fmt.Errorf("header name %q is not a valid token", name)
		}
	}
	for _, r := range reservedHeaders {
		if strings.EqualFold(name, r) {
			return fmt.Errorf("header %q is managed by the transport", name)
		}
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c == '\r' || c == '\n' || c == 0 {
			return fmt.Errorf("header %q has a control character in its value", name)
		}
	}
	return nil
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// mergeHeaders lays op headers over source headers (case-insensitively) and
// returns them sorted by name so every call sends them in the same order.
func mergeHeaders(layers ...map[string]string) ([]header, error) {
	merged := map[string]string{}
	for _, layer := range layers {
		for k, v := range layer {
			if err := checkHeader(k, v); err != nil {
				return nil, err
			}
			merged[textproto.CanonicalMIMEHeaderKey(k)] = v
		}
	}
	out := make([]header, 0, len(merged))
	for k, v := range merged {
		out = append(out, header{name: k, value: v, nameB: []byte(k), valueB: []byte(v)})
	}
	slices.SortFunc(out, func(a, b header) int { return strings.Compare(a.name, b.name) })
	return out, nil
}
