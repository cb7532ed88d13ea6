package rest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/connector"
)

// poolSize is how many keep-alive connections the warm-up leaves in the pool.
const poolSize = 8

// upstream is a real HTTP server on 127.0.0.1 that can be restarted on the
// same port, as a source is when it is redeployed. The first poolSize
// requests to /warm are held until all of them have arrived, so the client
// has to open poolSize connections and keeps them idle afterwards.
type upstream struct {
	t     *testing.T
	addr  string // 127.0.0.1:port, fixed after the first start
	reset bool   // close connections with a RST (SO_LINGER 0) instead of a FIN

	conns             atomic.Int32 // connections accepted, over all lives
	gets, posts, hlth atomic.Int32 // requests seen, over all lives

	warmed  atomic.Int32
	warmAll chan struct{}

	mu  sync.Mutex
	srv *http.Server
}

func newUpstream(t *testing.T, reset bool) *upstream {
	t.Helper()
	u := &upstream{t: t, addr: "127.0.0.1:0", reset: reset, warmAll: make(chan struct{})}
	u.start()
	t.Cleanup(func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		_ = u.srv.Close()
	})
	return u
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	switch {
	case r.URL.Path == "/health":
		u.hlth.Add(1)
	case r.URL.Path == "/warm":
		if u.warmed.Add(1) == poolSize {
			close(u.warmAll)
		}
		select {
		case <-u.warmAll:
		case <-time.After(5 * time.Second):
		}
	case r.Method == http.MethodPost:
		u.posts.Add(1)
	default:
		u.gets.Add(1)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{}`)
}

// start listens on u.addr: a free port the first time, the same one after.
func (u *upstream) start() {
	u.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port was ours a moment ago; allow the kernel a beat
		if ln, err = net.Listen("tcp", u.addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		u.t.Fatalf("listen again on %s: %v", u.addr, err)
	}
	u.addr = ln.Addr().String()
	if u.reset {
		ln = lingerZero{ln}
	}
	srv := &http.Server{Handler: u, ErrorLog: log.New(io.Discard, "", 0), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	u.mu.Lock()
	u.srv = srv
	u.mu.Unlock()
}

// restart closes the server, and with it every kept-alive connection, then
// listens again on the same port.
func (u *upstream) restart() {
	u.t.Helper()
	u.mu.Lock()
	_ = u.srv.Close()
	u.mu.Unlock()
	u.start()
	time.Sleep(20 * time.Millisecond) // let the FINs (or RSTs) reach the pooled connections
}

// lingerZero makes every accepted connection close with a RST.
type lingerZero struct{ net.Listener }

func (l lingerZero) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return c, err
}

// warmPool sends poolSize concurrent GETs so the pool holds poolSize idle
// keep-alive connections.
func warmPool(t *testing.T, c *Client, u *upstream) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, poolSize)
	for range poolSize {
		wg.Go(func() {
			if _, err := c.Call(context.Background(), &connector.Request{Operation: "warm"}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("warm-up: %v", err)
	}
	if n := u.conns.Load(); n != poolSize {
		t.Fatalf("warm-up opened %d connections, want %d", n, poolSize)
	}
}

func restartClient(t *testing.T, u *upstream) *Client {
	return newClient(t, Config{BaseURL: "http://" + u.addr, Timeout: 2 * time.Second, MaxConns: 16, HealthPath: "/health",
		Operations: map[string]Operation{
			"warm": {Method: "GET", Path: "/warm"},
			"get":  {Method: "GET", Path: "/get"},
			"post": {Method: "POST", Path: "/post"},
		}})
}

// The source restarted while the pool held several idle connections: every
// one of them is stale. A GET is re-sent on a fresh connection, without it
// counting as an attempt.
func TestSourceRestartGET(t *testing.T) {
	for _, reset := range []bool{false, true} {
		t.Run(fmt.Sprintf("rst=%v", reset), func(t *testing.T) {
			u := newUpstream(t, reset)
			c := restartClient(t, u)
			warmPool(t, c, u)
			u.restart()

			resp, err := c.Call(context.Background(), &connector.Request{Operation: "get"})
			if err != nil {
				t.Fatalf("first GET after the restart: %v", err)
			}
			if resp.Status != 200 || resp.Attempts != 1 || u.gets.Load() != 1 {
				t.Fatalf("status %d attempts %d, upstream saw %d GETs", resp.Status, resp.Attempts, u.gets.Load())
			}
			for i := range 3 {
				if _, err := c.Call(context.Background(), &connector.Request{Operation: "get"}); err != nil {
					t.Fatalf("GET %d after the restart: %v", i+2, err)
				}
			}
		})
	}
}

// A POST that may have reached the source is never sent twice. After a FIN
// the request was written and the answer never came: it fails. After a RST
// the write itself fails, so the source cannot have processed it: it is
// re-sent. Either way the pool is rid of its stale connections at once.
func TestSourceRestartPOST(t *testing.T) {
	for _, reset := range []bool{false, true} {
		t.Run(fmt.Sprintf("rst=%v", reset), func(t *testing.T) {
			u := newUpstream(t, reset)
			c := restartClient(t, u)
			warmPool(t, c, u)
			u.restart()

			post := func() (*connector.Response, error) {
				return c.Call(context.Background(), &connector.Request{Operation: "post", Body: []byte(`{"n":1}`)})
			}
			resp, err := post()
			seen := u.posts.Load()
			t.Logf("first POST after the restart: err=%v (cause %v), upstream saw it %d times", err, errCause(err), seen)
			if seen > 1 {
				t.Fatalf("upstream saw the POST %d times", seen)
			}
			switch {
			case err != nil:
				wantKind(t, err, connector.ErrUnavailable, u.addr)
				if seen != 0 {
					t.Fatalf("the POST failed but the upstream saw it")
				}
				if reset {
					t.Fatalf("a POST whose write failed was not re-sent: %v", err)
				}
			case seen != 1 || resp.Attempts != 1:
				t.Fatalf("POST succeeded after %d attempts but the upstream saw it %d times", resp.Attempts, seen)
			}
			// The stale connections are gone: the next POST goes through.
			if _, err := post(); err != nil {
				t.Fatalf("second POST after the restart: %v", err)
			}
			if got := u.posts.Load(); got != seen+1 {
				t.Fatalf("upstream saw %d POSTs, want %d", got, seen+1)
			}
		})
	}
}

// Check goes through the pool when the source has a health path: it must see
// the restarted source as reachable.
func TestSourceRestartCheck(t *testing.T) {
	u := newUpstream(t, false)
	c := restartClient(t, u)
	warmPool(t, c, u)
	u.restart()
	if err := c.Check(context.Background()); err != nil {
		t.Fatalf("check after the restart: %v", err)
	}
	if n := u.hlth.Load(); n != 1 {
		t.Fatalf("upstream saw %d health checks, want 1", n)
	}
	dialOnly := newClient(t, Config{BaseURL: "http://" + u.addr})
	if err := dialOnly.Check(context.Background()); err != nil {
		t.Fatalf("dial check after the restart: %v", err)
	}
}

// A source that drops every connection without answering is not hammered:
// one call sends the request at most twice (the re-send on a fresh
// connection), and a POST once.
func TestStaleResendIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var hits atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				hits.Add(1)
			}()
		}
	}()
	c := newClient(t, Config{BaseURL: "http://" + ln.Addr().String(), Timeout: 2 * time.Second,
		Retry: Retry{Attempts: 1},
		Operations: map[string]Operation{
			"get":  {Method: "GET", Path: "/"},
			"post": {Method: "POST", Path: "/"},
		}})
	_, err = c.Call(context.Background(), &connector.Request{Operation: "get"})
	wantKind(t, err, connector.ErrUnavailable, ln.Addr().String())
	if n := hits.Load(); n != 2 {
		t.Fatalf("GET sent %d times, want 2", n)
	}
	hits.Store(0)
	_, err = c.Call(context.Background(), &connector.Request{Operation: "post", Body: []byte(`{}`)})
	wantKind(t, err, connector.ErrUnavailable, ln.Addr().String())
	if n := hits.Load(); n != 1 {
		t.Fatalf("POST sent %d times, want 1", n)
	}
}

func TestResendable(t *testing.T) {
	writeErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", errno)}
	}
	readErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errno)}
	}
	tests := []struct {
		name             string
		err              error
		stale, idem, non bool // stale connection; re-sent when idempotent; when not
	}{
		{"eof before the first byte", io.EOF, true, true, false},
		{"connection closed", fasthttp.ErrConnectionClosed, true, true, false},
		{"reset on write", writeErr(syscall.ECONNRESET), true, true, true},
		{"broken pipe on write", writeErr(syscall.EPIPE), true, true, true},
		{"reset on write, wrapped (tls)", fmt.Errorf("tls: %w", writeErr(syscall.ECONNRESET)), true, true, true},
		{"reset on read", fmt.Errorf("error when reading response headers: %w", readErr(syscall.ECONNRESET)), true, true, false},
		{"timeout", fasthttp.ErrTimeout, false, false, false},
		{"body too large", fasthttp.ErrBodyTooLarge, false, false, false},
		{"refused", writeErr(syscall.ECONNREFUSED), false, false, false},
		{"other", errors.New("bad status line"), false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := staleConn(tt.err); got != tt.stale {
				t.Errorf("staleConn = %v, want %v", got, tt.stale)
			}
			if got := resendable(true, tt.err); got != tt.idem {
				t.Errorf("resendable(idempotent) = %v, want %v", got, tt.idem)
			}
			if got := resendable(false, tt.err); got != tt.non {
				t.Errorf("resendable(non-idempotent) = %v, want %v", got, tt.non)
			}
		})
	}
}

// errCause is the underlying cause of a connector error, for logs.
func errCause(err error) error {
	var ce *connector.Error
	if errors.As(err, &ce) {
		return ce.Err
	}
	return err
}
