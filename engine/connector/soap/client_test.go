package soap_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/connector/soap"
	codec "github.com/openfsb/fsb/plugins/soap"
)

func message(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "messages", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mockSOAP is a SOAP server on loopback: it records each request and answers
// with the reply its handler picks.
type mockSOAP struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recorded
	reply    func(r recorded) (status int, contentType string, body []byte)
}

type recorded struct {
	method, contentType, action string
	hasAction                   bool
	trace                       string
	body                        []byte
}

func newMock(t *testing.T, reply func(r recorded) (int, string, []byte)) *mockSOAP {
	m := &mockSOAP{reply: reply}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		act, has := r.Header["Soapaction"]
		rec := recorded{method: r.Method, contentType: r.Header.Get("Content-Type"), hasAction: has, trace: r.Header.Get("BelGov-Trace-Id"), body: body}
		if has {
			rec.action = act[0]
		}
		m.mu.Lock()
		m.requests = append(m.requests, rec)
		m.mu.Unlock()
		status, ct, out := m.reply(rec)
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		w.Write(out)
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *mockSOAP) last(t *testing.T) recorded {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.requests) == 0 {
		t.Fatal("the server got no request")
	}
	return m.requests[len(m.requests)-1]
}

func client(t testing.TB, p *soap.Port, url string, mod func(*soap.Config)) *soap.Client {
	t.Helper()
	cfg := soap.Config{Source: "src", Port: p, Endpoint: url, Codec: codec.Native{}, Timeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := soap.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCallVIES calls checkVat of the real VIES WSDL against a mock server
// that checks the envelope the way VIES would and answers as VIES does.
func TestCallVIES(t *testing.T) {
	p := load(t, "checkVatService.wsdl", "")
	var answer []byte
	status := http.StatusOK
	m := newMock(t, func(r recorded) (int, string, []byte) {
		if r.method != http.MethodPost || r.contentType != "text/xml; charset=utf-8" || !r.hasAction || r.action != `""` {
			return 400, "text/plain", []byte("bad request")
		}
		return status, "text/xml;charset=UTF-8", answer
	})
	c := client(t, p, m.URL, nil)
	ctx := context.Background()

	answer = message(t, "checkVat.response.xml")
	resp, err := c.Call(ctx, &connector.Request{Operation: "checkVat", Body: message(t, "checkVat.request.json"), TraceID: "trace-1"})
	if err != nil {
		t.Fatal(err)
	}
	r := m.last(t)
	golden(t, "checkVat.request.xml", r.body)
	if r.trace != "trace-1" {
		t.Errorf("trace id %q", r.trace)
	}
	if resp.Status != 200 || resp.Headers.Get("Content-Type") != "application/json" {
		t.Errorf("response %+v", resp)
	}
	golden(t, "checkVat.response.json", append(resp.Body, '\n'))

	answer = message(t, "checkVat.invalid.xml")
	resp, err = c.Call(ctx, &connector.Request{Operation: "checkVat", Body: []byte(`{"countryCode":"BE","vatNumber":"0000000000"}`)})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "checkVat.invalid.json", append(resp.Body, '\n'))

	answer, status = message(t, "checkVat.fault.xml"), http.StatusInternalServerError
	_, err = c.Call(ctx, &connector.Request{Operation: "checkVat", Body: []byte(`{"countryCode":"BE","vatNumber":"1"}`)})
	var fe *soap.FaultError
	if !errors.As(err, &fe) || !errors.Is(err, soap.ErrFault) {
		t.Fatalf("fault: %v", err)
	}
	if fe.Code != "Server" || fe.Reason != "MS_UNAVAILABLE" || fe.Status != 500 || fe.Source != "src" || fe.Operation != "checkVat" {
		t.Errorf("fault %+v", fe)
	}
	if got := fe.Error(); got != `source "src" operation "checkVat": soap fault Server: MS_UNAVAILABLE` {
		t.Errorf("message %q", got)
	}
}

// TestCallOrders: SOAP 1.2, nested and repeated elements, nil, a 1.2 fault.
func TestCallOrders(t *testing.T) {
	p := load(t, "orders.wsdl", "")
	var answer []byte
	status := http.StatusOK
	m := newMock(t, func(r recorded) (int, string, []byte) {
		if r.hasAction {
			return 400, "text/plain", []byte("SOAP 1.2 has no SOAPAction header")
		}
		return status, "application/soap+xml; charset=utf-8", answer
	})
	c := client(t, p, m.URL, nil)
	ctx := context.Background()
	for _, name := range []string{"getOrder", "listOrders"} {
		answer = message(t, name+".response.xml")
		resp, err := c.Call(ctx, &connector.Request{Operation: name, Body: message(t, name+".request.json")})
		if err != nil {
			t.Fatal(err)
		}
		r := m.last(t)
		if want := `application/soap+xml; charset=utf-8; action="urn:example:orders/` + name + `"`; r.contentType != want {
			t.Errorf("%s: content type %q, want %q", name, r.contentType, want)
		}
		golden(t, name+".request.xml", r.body)
		golden(t, name+".response.json", append(resp.Body, '\n'))
	}

	answer, status = message(t, "getOrder.fault.xml"), http.StatusBadRequest
	_, err := c.Call(ctx, &connector.Request{Operation: "getOrder", Body: []byte(`{"orderId":42}`)})
	var fe *soap.FaultError
	if !errors.As(err, &fe) {
		t.Fatalf("fault: %v", err)
	}
	// The English text, sanitised (the bidi override and the line break
	// are gone); the Detail with its stack trace is not passed on.
	if fe.Code != "Sender" || len(fe.Subcodes) != 1 || fe.Subcodes[0] != "o:UnknownOrder" || fe.Reason != "Order 42 does not exist" || fe.Status != 400 {
		t.Errorf("fault %+v", fe)
	}
}

// TestCallErrors: what goes wrong is a connector.Error of the right kind.
func TestCallErrors(t *testing.T) {
	p := load(t, "checkVatService.wsdl", "")
	var (
		mu     sync.Mutex
		status int
		ctype  string
		body   []byte
		delay  time.Duration
	)
	m := newMock(t, func(recorded) (int, string, []byte) {
		mu.Lock()
		defer mu.Unlock()
		time.Sleep(delay)
		return status, ctype, body
	})
	set := func(s int, ct, b string, d time.Duration) {
		mu.Lock()
		status, ctype, body, delay = s, ct, []byte(b), d
		mu.Unlock()
	}
	c := client(t, p, m.URL, func(c *soap.Config) { c.MaxResponseBytes = 4096; c.Timeout = 300 * time.Millisecond })
	ok := `{"countryCode":"BE","vatNumber":"0417497106"}`
	for _, tc := range []struct {
		name        string
		op, in      string
		status      int
		ctype, body string
		delay       time.Duration
		kind        error
	}{
		{"unknown operation", "checkVies", ok, 200, "text/xml", "", 0, connector.ErrUnknownOp},
		{"unknown field", "checkVat", `{"countryCode":"BE","vatNumber":"1","vat":"x"}`, 200, "text/xml", "", 0, connector.ErrBadRequest},
		{"missing field", "checkVat", `{"countryCode":"BE"}`, 200, "text/xml", "", 0, connector.ErrBadRequest},
		{"not json", "checkVat", `countryCode=BE`, 200, "text/xml", "", 0, connector.ErrBadRequest},
		{"html 200", "checkVat", ok, 200, "text/html", "<html><body>maintenance</body></html>", 0, connector.ErrBadResponse},
		{"json 200", "checkVat", ok, 200, "application/json", `{"valid":true}`, 0, connector.ErrBadResponse},
		{"html 503", "checkVat", ok, 503, "text/html", "<html>down</html>", 0, connector.ErrUnavailable},
		{"empty 500", "checkVat", ok, 500, "text/xml", "", 0, connector.ErrBadResponse},
		{"envelope with 500 and no fault", "checkVat", ok, 500, "text/xml", string(message(t, "checkVat.response.xml")), 0, connector.ErrBadResponse},
		{"too large", "checkVat", ok, 200, "text/xml", "<a>" + strings.Repeat("x", 5000) + "</a>", 0, connector.ErrTooLarge},
		{"wrong element", "checkVat", ok, 200, "text/xml", strings.ReplaceAll(string(message(t, "checkVat.response.xml")), "checkVatResponse", "checkVatApproxResponse"), 0, connector.ErrBadResponse},
		{"timeout", "checkVat", ok, 200, "text/xml", string(message(t, "checkVat.response.xml")), time.Second, connector.ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set(tc.status, tc.ctype, tc.body, tc.delay)
			_, err := c.Call(context.Background(), &connector.Request{Operation: tc.op, Body: []byte(tc.in)})
			var ce *connector.Error
			if !errors.As(err, &ce) || !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want a connector.Error of kind %v", err, tc.kind)
			}
			if strings.Contains(ce.Error(), "127.0.0.1") {
				t.Errorf("message names the host: %v", ce)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		url := dead.URL
		dead.Close()
		c := client(t, p, url, nil)
		_, err := c.Call(context.Background(), &connector.Request{Operation: "checkVat", Body: []byte(ok)})
		if !errors.Is(err, connector.ErrUnavailable) {
			t.Errorf("error %v", err)
		}
		if err := c.Check(context.Background()); !errors.Is(err, connector.ErrUnavailable) {
			t.Errorf("check: %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		set(200, "text/xml", string(message(t, "checkVat.response.xml")), 200*time.Millisecond)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.Call(ctx, &connector.Request{Operation: "checkVat", Body: []byte(ok)})
		if !errors.Is(err, context.Canceled) || time.Since(start) > 150*time.Millisecond {
			t.Errorf("error %v after %s", err, time.Since(start))
		}
	})
	if err := c.Check(context.Background()); err != nil {
		t.Errorf("check: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	p := load(t, "checkVatService.wsdl", "")
	for _, tc := range []struct {
		name string
		cfg  soap.Config
		want string
	}{
		{"no source", soap.Config{Port: p, Codec: codec.Native{}}, "source name is empty"},
		{"no codec", soap.Config{Source: "s", Port: p}, "no codec"},
		{"bad endpoint", soap.Config{Source: "s", Port: p, Codec: codec.Native{}, Endpoint: "ftp://x"}, `endpoint "ftp://x": want an http:// or https:// URL`},
		{"bad header", soap.Config{Source: "s", Port: p, Codec: codec.Native{}, Headers: map[string]string{"X": "a\r\nb"}}, "line break"},
	} {
		if _, err := soap.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
