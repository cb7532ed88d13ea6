package rest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector"
)

// goroutines counts the goroutines whose stack holds fn.
func goroutines(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if strings.Contains(string(g), fn) {
			count++
		}
	}
	return count
}

// waitFor polls cond until it holds or d passes: a goroutine's exit sends
// no signal to wait on.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const (
	dnsCleaner   = "fasthttp.(*TCPDialer).tcpAddrsClean"
	connsCleaner = "fasthttp.(*HostClient).connsCleaner"
)

// TestCloseStopsCleaners: after Close, the DNS-cache cleaner goroutine a
// call started ends within its one-second tick (it used to run two cache
// lifetimes, 2 minutes); the connection cleaner, which fasthttp gives no
// way to stop, ends within MaxIdle. Goroutines return to their level.
func TestCloseStopsCleaners(t *testing.T) {
	// Other tests' clients are closed by now: their DNS cleaners end within
	// a second. Start from none, so that the one counted below is ours.
	if !waitFor(3*time.Second, func() bool { return goroutines(dnsCleaner) == 0 }) {
		t.Fatalf("%d DNS cleaners still running before the test", goroutines(dnsCleaner))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	conns0, total0 := goroutines(connsCleaner), runtime.NumGoroutine()

	c, err := New(Config{Source: "s", BaseURL: "http://localhost:" + port, MaxIdle: 200 * time.Millisecond,
		Operations: map[string]Operation{"get": {Method: "GET", Path: "/x"}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Call(context.Background(), &connector.Request{Operation: "get"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Done()
	if n := goroutines(dnsCleaner); n != 1 {
		t.Fatalf("%d DNS cleaners after a call by host name, want 1", n)
	}
	if n := goroutines(connsCleaner); n != conns0+1 {
		t.Fatalf("%d connection cleaners after a call, want %d", n, conns0+1)
	}

	closed := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !waitFor(2*time.Second, func() bool { return goroutines(dnsCleaner) == 0 }) {
		t.Fatalf("the DNS cleaner still runs %s after Close", time.Since(closed))
	}
	t.Logf("DNS cleaner gone %s after Close", time.Since(closed).Round(time.Millisecond))
	if !waitFor(2*time.Second, func() bool { return goroutines(connsCleaner) <= conns0 }) {
		t.Fatalf("the connection cleaner still runs %s after Close (MaxIdle 200ms)", time.Since(closed))
	}
	srv.CloseClientConnections()
	if !waitFor(2*time.Second, func() bool { return runtime.NumGoroutine() <= total0 }) {
		t.Errorf("goroutines %d after Close, %d before the client", runtime.NumGoroutine(), total0)
	}

	// A closed client still works (and its cleaners come back).
	resp, err = c.Call(context.Background(), &connector.Request{Operation: "get"})
	if err != nil {
		t.Fatalf("call after Close: %v", err)
	}
	resp.Done()
	_ = c.Close()
}
