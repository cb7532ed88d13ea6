package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/connector"
)

// pooled counts the fasthttp requests and responses Call takes from the
// pools, to catch one never given back or given back twice.
type pooled struct {
	t    *testing.T
	mu   sync.Mutex
	live map[any]bool
}

func trackPooled(t *testing.T) *pooled {
	t.Helper()
	p := &pooled{t: t, live: map[any]bool{}}
	acqReq, relReq, acqResp, relResp := acquireRequest, releaseRequest, acquireResponse, releaseResponse
	acquireRequest = func() *fasthttp.Request { r := acqReq(); p.acquired(r); return r }
	releaseRequest = func(r *fasthttp.Request) { p.released(r); relReq(r) }
	acquireResponse = func() *fasthttp.Response { r := acqResp(); p.acquired(r); return r }
	releaseResponse = func(r *fasthttp.Response) { p.released(r); relResp(r) }
	t.Cleanup(func() {
		acquireRequest, releaseRequest, acquireResponse, releaseResponse = acqReq, relReq, acqResp, relResp
	})
	return p
}

func (p *pooled) acquired(v any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live[v] {
		p.t.Errorf("%T %p handed out while in use", v, v)
	}
	p.live[v] = true
}

func (p *pooled) released(v any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.live[v] {
		p.t.Errorf("%T %p released twice, or never acquired", v, v)
	}
	delete(p.live, v)
}

// drained waits until every object is back and no request is in flight:
// abandoned attempts end on their own, after the call has returned.
func (p *pooled) drained(c *Client, within time.Duration) {
	p.t.Helper()
	for end := time.Now().Add(within); ; time.Sleep(5 * time.Millisecond) {
		p.mu.Lock()
		n := len(p.live)
		p.mu.Unlock()
		pending := c.hc.PendingRequests()
		if n == 0 && pending == 0 {
			return
		}
		if time.Now().After(end) {
			p.t.Fatalf("after %s: %d pooled objects not released, %d requests in flight", within, n, pending)
		}
	}
}

func wantCancelled(t *testing.T, err error, addr string) {
	t.Helper()
	wantKind(t, err, connector.ErrUnavailable, addr)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v: want context.Canceled in its chain", err)
	}
	if ce := (*connector.Error)(nil); errors.As(err, &ce) && ce.Detail != "call cancelled" {
		t.Fatalf("detail %q, want \"call cancelled\"", ce.Detail)
	}
}

// A call cancelled while its request is in flight returns at once; the
// request itself goes on until the source answers, and cleans up after
// itself.
func TestCancelInFlight(t *testing.T) {
	p := trackPooled(t)
	started := make(chan struct{}, 1)
	var answered atomic.Int32
	var got atomic.Value // the body the source received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		time.Sleep(2 * time.Second)
		body, _ := io.ReadAll(r.Body)
		got.Store(string(body))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
		answered.Add(1)
	}))
	defer srv.Close()
	c := newClient(t, Config{BaseURL: srv.URL, Timeout: 5 * time.Second, Retry: Retry{Attempts: 3},
		Operations: map[string]Operation{"post": {Method: "POST", Path: "/slow", Idempotent: ptr(true)}}})

	body := []byte(`{"id":"original"}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Call(ctx, &connector.Request{Operation: "post", Body: body})
	elapsed := time.Since(start)
	wantCancelled(t, err, hostOf(srv))
	if elapsed > 300*time.Millisecond {
		t.Fatalf("cancelled call returned after %s, want < 300ms", elapsed)
	}
	select {
	case <-started:
	default:
		t.Fatal("the request never reached the source")
	}
	// The caller owns its body again: the abandoned request sends its own copy.
	copy(body, `{"id":"clobbered"}`)

	p.drained(c, 5*time.Second)
	if n := answered.Load(); n != 1 {
		t.Fatalf("source answered %d requests, want 1 (a cancelled call is not retried)", n)
	}
	if b := got.Load(); b != `{"id":"original"}` {
		t.Fatalf("source received body %q", b)
	}

	// The client is still fine, and the connection went back to the pool.
	srvFast := echoServer(t)
	c2 := newClient(t, Config{BaseURL: srvFast.URL, Operations: map[string]Operation{"get": {Method: "GET", Path: "/"}}})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	resp2, err := c2.Call(ctx2, &connector.Request{Operation: "get"})
	if err != nil {
		t.Fatal(err)
	}
	resp2.Done() // the lent body goes back to the pool
	p.drained(c2, time.Second)
}

// A context that expires (rather than being cancelled) in flight still
// ends the attempt by fasthttp's deadline, reported as a timeout, as before.
func TestContextExpiresInFlight(t *testing.T) {
	p := trackPooled(t)
	srv := slowServer(t)
	c := newClient(t, Config{BaseURL: srv.URL, Operations: map[string]Operation{"get": {Method: "GET", Path: "/"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Call(ctx, &connector.Request{Operation: "get"})
	wantKind(t, err, connector.ErrTimeout, hostOf(srv))
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v: the attempt should end by fasthttp's deadline, as before", err)
	}
	if elapsed := time.Since(start); elapsed < 90*time.Millisecond || elapsed > time.Second {
		t.Fatalf("timed out after %s", elapsed)
	}
	p.drained(c, 5*time.Second)
}

// Many calls, some cancelled at random points (before, during or after the
// request): every call either gets its own answer or reports cancellation,
// and every pooled object comes back exactly once. Run with -race.
func TestHammerCancel(t *testing.T) {
	p := trackPooled(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		_ = json.NewEncoder(w).Encode(seen{Method: r.Method, RequestURI: r.RequestURI, Body: string(body)})
	}))
	defer srv.Close()
	c := newClient(t, Config{BaseURL: srv.URL, MaxConns: 16,
		Retry: Retry{Attempts: 2, Backoff: time.Millisecond},
		Operations: map[string]Operation{
			"get":  {Method: "GET", Path: "/items/{id}"},
			"post": {Method: "POST", Path: "/items"},
		}})

	const goroutines, calls = 8, 100
	var wg sync.WaitGroup
	var ok, cancelled atomic.Int32
	for g := range goroutines {
		wg.Go(func() {
			body := make([]byte, 0, 64)
			for i := range calls {
				id := fmt.Sprintf("g%d-%d", g, i)
				req := connector.Request{Operation: "get", Path: map[string]string{"id": id}}
				if i%2 == 1 {
					body = fmt.Appendf(body[:0], `{"id":%q}`, id)
					req = connector.Request{Operation: "post", Body: body}
				}
				ctx, cancel := context.WithCancel(context.Background())
				switch rand.IntN(4) {
				case 0:
					cancel()
				case 1, 2:
					time.AfterFunc(time.Duration(rand.IntN(3000))*time.Microsecond, cancel)
				}
				resp, err := c.Call(ctx, &req)
				cancel()
				if err != nil {
					if !errors.Is(err, context.Canceled) || !errors.Is(err, connector.ErrUnavailable) {
						t.Errorf("call %s: %v", id, err)
					}
					cancelled.Add(1)
					// The next call reuses the body buffer at once.
					continue
				}
				ok.Add(1)
				var s seen
				err = json.Unmarshal(resp.Body, &s)
				resp.Done()
				if err != nil {
					t.Errorf("call %s: %v", id, err)
					continue
				}
				want := seen{Method: "GET", RequestURI: "/items/" + id}
				if req.Body != nil {
					want = seen{Method: "POST", RequestURI: "/items", Body: string(req.Body)}
				}
				if s.Method != want.Method || s.RequestURI != want.RequestURI || s.Body != want.Body {
					t.Errorf("call %s: source saw %+v, want %+v", id, s, want)
				}
				if req.Body != nil && !bytes.Contains(req.Body, []byte(id)) {
					t.Errorf("call %s: body changed under the call", id)
				}
			}
		})
	}
	wg.Wait()
	p.drained(c, 5*time.Second)
	if ok.Load() == 0 || cancelled.Load() == 0 {
		t.Fatalf("%d answered, %d cancelled: want some of each", ok.Load(), cancelled.Load())
	}
	t.Logf("%d answered, %d cancelled", ok.Load(), cancelled.Load())
}
