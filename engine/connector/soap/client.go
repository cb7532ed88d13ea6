package soap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/openfsb/fsb/engine/connector"
)

// Codec turns a JSON request into a SOAP envelope (Encode) and a SOAP
// response into {"body": ...} or {"fault": ...} (Decode), given an
// operation's CodecConfig. plugins/soap implements it natively (soap.Native)
// and as a WebAssembly module (see ModuleCodec).
type Codec interface {
	Encode(ctx context.Context, in, config []byte) ([]byte, error)
	Decode(ctx context.Context, in, config []byte) ([]byte, error)
}

// Caller runs a module's operation; *wasm.Module is one.
type Caller interface {
	Call(ctx context.Context, op string, input, config []byte) ([]byte, error)
}

// ModuleCodec is the codec as a sandboxed module with the operations
// encode and decode (plugins/soap/wasm).
type ModuleCodec struct{ Module Caller }

// Encode calls the module's encode operation.
func (m ModuleCodec) Encode(ctx context.Context, in, config []byte) ([]byte, error) {
	return m.Module.Call(ctx, "encode", in, config)
}

// Decode calls the module's decode operation.
func (m ModuleCodec) Decode(ctx context.Context, in, config []byte) ([]byte, error) {
	return m.Module.Call(ctx, "decode", in, config)
}

// Config describes one SOAP source.
type Config struct {
	Source string // source name, for errors and logs
	Port   *Port  // the WSDL port whose operations the source offers
	// Endpoint overrides the port's soap:address (another environment, a
	// test server). http:// or https://.
	Endpoint string
	Codec    Codec
	Timeout  time.Duration // per call; default 10s
	// MaxResponseBytes bounds the answer; default 4 MiB. Larger answers fail
	// with connector.ErrTooLarge. It is also the codec's maxInput.
	MaxResponseBytes int
	// Limits bound the codec's reading of an answer (MaxInput is set from
	// MaxResponseBytes).
	Limits Limits
	// Headers are sent on every call (secrets already resolved).
	Headers map[string]string
	// Transport carries the requests (TLS settings, client certificates);
	// nil: a transport of the client's own, without proxy.
	Transport http.RoundTripper
}

// Defaults applied by New to zero values.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 4 << 20
)

// Client calls the operations of one SOAP source. It implements
// connector.Connector: Request.Body is the JSON request, Response.Body the
// JSON of the response element. It is safe for concurrent use.
type Client struct {
	source   string
	endpoint *url.URL
	codec    Codec
	hc       *http.Client
	timeout  time.Duration
	maxBytes int
	headers  map[string]string
	ops      map[string]*callOp
}

// callOp is an operation ready to call.
type callOp struct {
	op          *Operation
	config      []byte
	contentType string
	action      string // SOAPAction header value (SOAP 1.1), quoted
}

// New checks cfg and prepares the client. Nothing is dialled.
func New(cfg Config) (*Client, error) {
	c, err := build(cfg)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", cfg.Source, err)
	}
	return c, nil
}

func build(cfg Config) (*Client, error) {
	switch {
	case cfg.Source == "":
		return nil, errors.New("source name is empty")
	case cfg.Port == nil:
		return nil, errors.New("no WSDL port")
	case cfg.Codec == nil:
		return nil, errors.New("no codec")
	case cfg.Timeout < 0:
		return nil, errors.New("timeout must not be negative")
	case cfg.MaxResponseBytes < 0:
		return nil, errors.New("max response bytes must not be negative")
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = cfg.Port.Address
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q: want an http:// or https:// URL", endpoint)
	}
	c := &Client{
		source:   cfg.Source,
		endpoint: u,
		codec:    cfg.Codec,
		timeout:  cmpOr(cfg.Timeout, DefaultTimeout),
		maxBytes: cmpOr(cfg.MaxResponseBytes, DefaultMaxResponseBytes),
		headers:  cfg.Headers,
		ops:      make(map[string]*callOp),
	}
	for k, v := range cfg.Headers {
		if err := checkHeader(k, v); err != nil {
			return nil, err
		}
	}
	rt := cfg.Transport
	if rt == nil {
		rt = &http.Transport{
			DialContext:           (&net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       30 * time.Second,
			TLSHandshakeTimeout:   c.timeout,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
		}
	}
	c.hc = &http.Client{
		Transport: rt,
		// A redirected POST would be replayed as a GET: take the answer as
		// it is (it is then not a SOAP envelope, and the call fails).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	limits := cfg.Limits
	limits.MaxInput = c.maxBytes
	for _, name := range cfg.Port.Operations() {
		op, _ := cfg.Port.Operation(name)
		conf, err := op.CodecConfig(limits)
		if err != nil {
			return nil, err
		}
		co := &callOp{op: op, config: conf}
		if op.Version == SOAP12 {
			co.contentType = "application/soap+xml; charset=utf-8"
			if op.Action != "" {
				co.contentType += "; action=" + quote(op.Action)
			}
		} else {
			co.contentType = "text/xml; charset=utf-8"
			co.action = quote(op.Action)
		}
		c.ops[name] = co
	}
	return c, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// quote makes a quoted-string of s (RFC 9110), as SOAPAction and the action
// parameter want.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func checkHeader(k, v string) error {
	if k == "" || strings.ContainsAny(k, " \t\r\n:") {
		return fmt.Errorf("header name %q is not valid", k)
	}
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("header %q: value holds a line break or NUL", k)
	}
	return nil
}

// Call performs one operation: encodes r.Body (JSON), posts the envelope and
// decodes the answer. A SOAP Fault comes back as a *FaultError; transport
// failures as a *connector.Error. See connector.Connector.
func (c *Client) Call(ctx context.Context, r *connector.Request) (*connector.Response, error) {
	co, ok := c.ops[r.Operation]
	if !ok {
		return nil, c.fail(r.Operation, connector.ErrUnknownOp, "", nil)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.fail(r.Operation, ctxKind(err), "", err)
	}
	env, err := c.codec.Encode(ctx, r.Body, co.config)
	if err != nil {
		return nil, c.fail(r.Operation, connector.ErrBadRequest, "the request does not fit the operation's schema", err)
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint.String(), bytes.NewReader(env))
	if err != nil {
		return nil, c.fail(r.Operation, connector.ErrBadRequest, "", err)
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	for k, v := range r.Headers {
		if err := checkHeader(k, v); err != nil {
			return nil, c.fail(r.Operation, connector.ErrBadRequest, err.Error(), err)
		}
		req.Header.Set(k, v)
	}
	if r.TraceID != "" {
		if err := checkHeader(traceHeader, r.TraceID); err != nil {
			return nil, c.fail(r.Operation, connector.ErrBadRequest, err.Error(), err)
		}
		req.Header.Set(traceHeader, r.TraceID)
	}
	req.Header.Set("Content-Type", co.contentType)
	if co.op.Version == SOAP11 {
		req.Header["SOAPAction"] = []string{co.action} // this spelling, as SOAP 1.1 writes it
		req.Header.Set("Accept", "text/xml")
	} else {
		req.Header.Set("Accept", "application/soap+xml")
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		kind, detail := classify(err)
		return nil, c.fail(r.Operation, kind, detail, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.maxBytes)+1))
	if err != nil {
		kind, detail := classify(err)
		return nil, c.fail(r.Operation, kind, detail, err)
	}
	if len(body) > c.maxBytes {
		return nil, c.fail(r.Operation, connector.ErrTooLarge, "", nil)
	}

	out, err := c.codec.Decode(ctx, body, co.config)
	ok2xx := resp.StatusCode >= 200 && resp.StatusCode < 300
	if err != nil {
		if !ok2xx {
			return nil, c.statusError(r.Operation, resp.StatusCode, err)
		}
		return nil, c.fail(r.Operation, connector.ErrBadResponse, "the answer is not the operation's SOAP response", err)
	}
	if bytes.HasPrefix(out, faultPrefix) {
		return nil, c.fault(r.Operation, resp.StatusCode, out)
	}
	if !bytes.HasPrefix(out, bodyPrefix) || !bytes.HasSuffix(out, []byte("}")) {
		return nil, c.fail(r.Operation, connector.ErrBadResponse, "the codec's output is malformed", nil)
	}
	if !ok2xx {
		return nil, c.statusError(r.Operation, resp.StatusCode, nil)
	}
	h := connector.Headers{{Name: "Content-Type", Value: "application/json"}}
	if t := resp.Header.Get(traceHeader); t != "" {
		h = append(h, connector.Header{Name: traceHeaderCanonical, Value: t})
	}
	return &connector.Response{
		Status:   resp.StatusCode,
		Headers:  h,
		Body:     out[len(bodyPrefix) : len(out)-1],
		Attempts: 1,
	}, nil
}

const (
	traceHeader          = "BelGov-Trace-Id"
	traceHeaderCanonical = "Belgov-Trace-Id"
)

var (
	bodyPrefix  = []byte(`{"body":`)
	faultPrefix = []byte(`{"fault":`)
)

// ErrFault is wrapped by every *FaultError.
var ErrFault = errors.New("soap fault")

// FaultError is a SOAP Fault the source answered. Code and Reason come from
// the codec, sanitised and length-capped: safe to put in a problem detail.
type FaultError struct {
	Source    string
	Operation string
	Status    int      // HTTP status of the answer
	Code      string   // Server, Client (1.1); Sender, Receiver (1.2); or the source's own QName
	Subcodes  []string // SOAP 1.2 subcodes
	Reason    string   // faultstring (1.1) or Reason/Text (1.2)
}

func (e *FaultError) Error() string {
	msg := fmt.Sprintf("source %q operation %q: soap fault %s", e.Source, e.Operation, e.Code)
	if len(e.Subcodes) > 0 {
		msg += " (" + strings.Join(e.Subcodes, ", ") + ")"
	}
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Is reports ErrFault.
func (e *FaultError) Is(target error) bool { return target == ErrFault }

// ProblemDetail says what the source answered, for the badGateway problem a
// flow returns: the fault code, subcodes and reason, without the source's
// or operation's name (the flow names its step and source) and without
// faultactor or detail. The codec already sanitised code and reason; they
// are cleaned again here because the codec is a replaceable module.
func (e *FaultError) ProblemDetail() string {
	var b strings.Builder
	b.WriteString("a SOAP fault ")
	b.WriteString(strconv.Quote(safeText(e.Code, 128)))
	if len(e.Subcodes) > 0 {
		b.WriteString(" (")
		for i, s := range e.Subcodes[:min(len(e.Subcodes), 8)] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(safeText(s, 128))
		}
		b.WriteString(")")
	}
	if r := safeText(e.Reason, 256); r != "" {
		b.WriteString(": ")
		b.WriteString(r)
	}
	return b.String()
}

// safeText keeps the printable characters of s, runs of white space made
// one space, cut at max bytes on a character boundary (ending in …).
func safeText(s string, max int) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case r == utf8.RuneError, unicode.Is(unicode.Cf, r):
			continue
		case unicode.IsSpace(r) || unicode.IsControl(r):
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if b.Len()+utf8.RuneLen(r) > max {
			return b.String() + "…"
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (c *Client) fault(op string, status int, out []byte) error {
	var f struct {
		Fault struct {
			Code     string   `json:"code"`
			Subcodes []string `json:"subcodes"`
			Reason   string   `json:"reason"`
		} `json:"fault"`
	}
	if err := json.Unmarshal(out, &f); err != nil {
		return c.fail(op, connector.ErrBadResponse, "the codec's fault output is malformed", err)
	}
	return &FaultError{Source: c.source, Operation: op, Status: status, Code: f.Fault.Code, Subcodes: f.Fault.Subcodes, Reason: f.Fault.Reason}
}

// statusError is a non-2xx answer without a SOAP Fault.
func (c *Client) statusError(op string, status int, cause error) error {
	kind := connector.ErrBadResponse
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		kind = connector.ErrUnavailable
	}
	return c.fail(op, kind, fmt.Sprintf("HTTP status %d without a SOAP fault", status), cause)
}

func (c *Client) fail(op string, kind error, detail string, err error) *connector.Error {
	return &connector.Error{Source: c.source, Operation: op, Kind: kind, Detail: detail, Err: err, Attempts: 1}
}

func ctxKind(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return connector.ErrTimeout
	}
	return err
}

// classify maps a transport failure onto a connector sentinel and a detail
// without host names or addresses.
func classify(err error) (kind error, detail string) {
	var netErr net.Error
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.Canceled):
		return context.Canceled, ""
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return connector.ErrTimeout, ""
	case errors.Is(err, syscall.ECONNREFUSED):
		return connector.ErrUnavailable, "connection refused"
	case errors.As(err, &dnsErr):
		return connector.ErrUnavailable, "host name not resolved"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return connector.ErrUnavailable, "connection closed by the source"
	}
	return connector.ErrUnavailable, "connection failed"
}

// Check dials the endpoint's host: nil means reachable.
func (c *Client) Check(ctx context.Context) error {
	host := c.endpoint.Host
	if c.endpoint.Port() == "" {
		port := "80"
		if c.endpoint.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(c.endpoint.Hostname(), port)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", host)
	if err != nil {
		kind, detail := classify(err)
		return c.fail("", kind, detail, err)
	}
	return conn.Close()
}

// Close drops idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

var _ connector.Connector = (*Client)(nil)
