package reload_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/gateway"
	"github.com/openfsb/fsb/engine/reload"
	"github.com/openfsb/fsb/engine/spec"
	"github.com/openfsb/fsb/engine/wasm"
)

// echoModule compiles testdata/wasm/echo.wat (a plugin whose transform
// returns its input) with wat2wasm; it skips without it, except under CI.
func echoModule(t testing.TB) (file, digest string) {
	tool, err := exec.LookPath("wat2wasm")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("wat2wasm not found: apt-get install wabt")
		}
		t.Skip("wat2wasm not found")
	}
	file = filepath.Join(t.TempDir(), "echo.wasm")
	if out, err := exec.Command(tool, "../../testdata/wasm/echo.wat", "-o", file).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return file, "sha256:" + hex.EncodeToString(sum[:])
}

const flowSet = `kind: Source
name: reg
protocol: rest
rest:
  baseUrl: {{UP}}
  operations:
    get: {method: GET, path: /item}
---
kind: Plugin
name: echo
module: {{WASM}}
digest: {{DIGEST}}
pool: 2
---
kind: Flow
name: item
version: 1.0.0
method: GET
path: /item/v1/get
steps:
  - id: item
    call: reg.get
  - id: echoed
    transform: {plugin: echo, input: steps.item.body}
output:
  version: {{V}}
  name: steps.echoed.body.name
`

// world is an upstream, a flow directory and a gateway serving it through
// a Reloader on a real loopback listener.
type world struct {
	t        *testing.T
	dir      string
	vars     map[string]string
	r        *reload.Reloader
	host     *wasm.Host
	base     string
	client   *http.Client
	srv      *fasthttp.Server
	lnClosed chan struct{}
	logs     lockedBuffer // the reloader's log, text
}

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newWorld(t *testing.T) *world {
	wasmFile, digest := echoModule(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"name":"Alice","n":1}`)
	}))
	t.Cleanup(up.Close)
	w := &world{t: t, dir: t.TempDir(), vars: map[string]string{"UP": up.URL, "WASM": wasmFile, "DIGEST": digest}}
	w.write(1, true)
	host, err := wasm.NewHost(context.Background(), wasm.HostConfig{CacheDir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	w.host = host
	t.Cleanup(func() { _ = host.Close(context.Background()) })
	w.r, err = reload.New(context.Background(), reload.Options{
		Dir:  w.dir,
		Host: host,
		Log:  slog.New(slog.NewTextHandler(&w.logs, nil)),
		Handler: func(s *reload.Snapshot) (fasthttp.RequestHandler, error) {
			return gateway.New(gateway.Config{Plans: s.Plans, Runtime: s.Runtime}).App().Handler(), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.srv = &fasthttp.Server{Handler: w.r.Handler()}
	w.lnClosed = make(chan struct{})
	go func() { _ = w.srv.Serve(ln); close(w.lnClosed) }()
	w.base = "http://" + ln.Addr().String()
	w.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(func() {
		_ = w.srv.Shutdown()
		// Shutdown closes only the listeners Serve has registered: a test
		// that ends before the goroutine above got that far would leave
		// Serve accepting forever (it hung CI once). Close ours too.
		_ = ln.Close()
		<-w.lnClosed
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.r.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return w
}

// write replaces the flow set with version v; an invalid one names a
// source that does not exist.
func (w *world) write(v int, valid bool) {
	text := flowSet
	for k, val := range w.vars {
		text = strings.ReplaceAll(text, "{{"+k+"}}", val)
	}
	text = strings.ReplaceAll(text, "{{V}}", fmt.Sprint(v))
	if !valid {
		text = strings.Replace(text, "call: reg.get", "call: nowhere.get", 1)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "set.yaml"), []byte(text), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// call calls the flow and returns the version that answered.
func (w *world) call() (int, error) {
	resp, err := w.client.Get(w.base + "/item/v1/get")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var out struct {
		Version int
		Name    string
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Name != "Alice" {
		return 0, fmt.Errorf("answer %s (%v)", b, err)
	}
	return out.Version, nil
}

// load calls the flow from n goroutines until stop is closed, counting
// answers by version and failures.
type load struct {
	ok       atomic.Int64
	versions sync.Map // int → *atomic.Int64
	failures atomic.Int64
	firstErr atomic.Value
	wg       sync.WaitGroup
	stop     chan struct{}
}

func (w *world) startLoad(n int) *load {
	l := &load{stop: make(chan struct{})}
	for range n {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				v, err := w.call()
				if err != nil {
					l.failures.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				l.ok.Add(1)
				c, _ := l.versions.LoadOrStore(v, new(atomic.Int64))
				c.(*atomic.Int64).Add(1)
			}
		})
	}
	return l
}

func (l *load) end() { close(l.stop); l.wg.Wait() }

// replaced is what a test keeps of a replaced snapshot: not the snapshot
// itself, whose plans and gateway would stay reachable.
type replaced struct {
	gen    uint64
	closed <-chan struct{}
	module *wasm.Module
}

// reloadTo writes version v and reloads; it returns the snapshot replaced.
func (w *world) reloadTo(v int) replaced {
	w.t.Helper()
	old := w.r.Current()
	rep := replaced{gen: old.Generation, closed: old.Closed(), module: old.Runtime.Plugins["echo"].(*wasm.Module)}
	w.write(v, true)
	changed, err := w.r.Reload(context.Background())
	if err != nil || !changed {
		w.t.Fatalf("reload to %d: changed %v, %v", v, changed, err)
	}
	return rep
}

func waitClosed(t *testing.T, olds []replaced) {
	t.Helper()
	for _, s := range olds {
		select {
		case <-s.closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("generation %d was never closed", s.gen)
		}
	}
}

// goroutines counts goroutines but fasthttp's connection and DNS cache
// cleaners, which a closed rest connector leaves to end on their own
// (within its idle timeout, and within a minute for the DNS cache); it
// also returns how many of those there are.
func goroutines() (n, cleaners int) {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "fasthttp.(*HostClient).connsCleaner") || strings.Contains(g, "fasthttp.(*TCPDialer).tcpAddrsClean") {
			cleaners++
		} else {
			n++
		}
	}
	return n, cleaners
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestReloadUnderLoad: 100 reloads while 8 clients call without pause:
// no call fails, both versions answer, an invalid set on every tenth reload
// is refused while the old set keeps serving, every replaced snapshot is
// closed (its WASM instances gone, its module refusing calls), and memory
// and goroutines return to their level.
func TestReloadUnderLoad(t *testing.T) {
	w := newWorld(t)
	if v, err := w.call(); err != nil || v != 1 {
		t.Fatalf("first call: %d, %v", v, err)
	}
	const clients, warmup, total = 8, 10, 100
	var olds []replaced
	phase := func(from, to int) {
		l := w.startLoad(clients)
		for i := from; i < to; i++ {
			if i%10 == 5 { // an invalid set is refused; the current one keeps serving
				cur := w.r.Current()
				w.write(i, false)
				if _, err := w.r.Reload(context.Background()); err == nil {
					t.Fatal("an invalid set was accepted")
				} else if !strings.Contains(err.Error(), "nowhere") {
					t.Fatalf("refusal does not name the error: %v", err)
				}
				if w.r.Current() != cur {
					t.Fatal("a refused reload replaced the snapshot")
				}
			}
			olds = append(olds, w.reloadTo(i+2))
			time.Sleep(2 * time.Millisecond) // let some calls land on each generation
		}
		l.end()
		if n := l.failures.Load(); n > 0 {
			t.Fatalf("%d of %d calls failed while reloading; first: %v", n, n+l.ok.Load(), l.firstErr.Load())
		}
		seen := 0
		l.versions.Range(func(_, _ any) bool { seen++; return true })
		if seen < 2 {
			t.Errorf("calls saw %d versions", seen)
		}
		t.Logf("reloads %d–%d: %d calls, %d versions answered, none failed", from+1, to, l.ok.Load(), seen)
		waitClosed(t, olds)
	}

	phase(0, warmup)
	baseHeap := heapAfterGC()
	baseG, _ := goroutines()
	phase(warmup, total)
	heap := heapAfterGC()
	g, cleaners := goroutines()
	t.Logf("after %d reloads: heap %.1f MiB (%.1f MiB after %d), goroutines %d (%d), fasthttp cleaners still ending %d", total, mib(heap), mib(baseHeap), warmup, g, baseG, cleaners)
	if heap > baseHeap+8<<20 {
		t.Errorf("heap grew from %.1f to %.1f MiB over %d reloads", mib(baseHeap), mib(heap), total-warmup)
	}
	if g > baseG+10 {
		t.Errorf("goroutines grew from %d to %d", baseG, g)
	}
	if got := w.r.Current().Generation; got != total+1 {
		t.Errorf("generation %d, want %d", got, total+1)
	}
	for _, s := range olds {
		if st := s.module.Stats(); st.Live != 0 {
			t.Fatalf("generation %d: %d instances alive after close", s.gen, st.Live)
		}
		if _, err := s.module.Call(context.Background(), "transform", []byte(`{}`), nil); !errors.Is(err, wasm.ErrClosed) {
			t.Fatalf("generation %d: a closed module answered: %v", s.gen, err)
		}
	}
}

// TestInFlightFinishesOnOld: a call that holds the old snapshot keeps its
// plugin open across a reload; the old snapshot closes when it ends.
func TestInFlightFinishesOnOld(t *testing.T) {
	w := newWorld(t)
	held := w.r.Acquire()
	old := w.reloadTo(2)
	if held.Generation != old.gen {
		t.Fatal("acquired a different snapshot")
	}
	select {
	case <-old.closed:
		t.Fatal("closed while a call still held it")
	case <-time.After(50 * time.Millisecond):
	}
	out, err := held.Runtime.Plugins["echo"].Call(context.Background(), "transform", []byte(`{"a":1}`), nil)
	if err != nil || string(out) != `{"a":1}` {
		t.Fatalf("old plugin during the call: %s, %v", out, err)
	}
	held.Release()
	waitClosed(t, []replaced{old})
	if v, err := w.call(); err != nil || v != 2 {
		t.Fatalf("after reload: %d, %v", v, err)
	}
}

// TestRefusedSetLogsPositions: an invalid set comes back as a
// spec.ErrorList with file:line:col, and nothing changes.
func TestRefusedSetLogsPositions(t *testing.T) {
	w := newWorld(t)
	w.write(2, false)
	_, err := w.r.Reload(context.Background())
	var errs spec.ErrorList
	if !errors.As(err, &errs) || len(errs) == 0 || errs[0].Pos.Line == 0 {
		t.Fatalf("error %v is not a positioned spec.ErrorList", err)
	}
	if !strings.HasPrefix(errs[0].Error(), filepath.Join(w.dir, "set.yaml")+":") {
		t.Errorf("error %q does not name the file", errs[0])
	}
	if v, err := w.call(); err != nil || v != 1 {
		t.Fatalf("after a refused reload: %d, %v", v, err)
	}
	if _, err := w.r.Reload(context.Background()); err == nil { // SIGHUP again: the errors again
		t.Fatal("the same invalid set was accepted on a second try")
	}
}

// TestUnchangedIsNoop: the same content does not build a new snapshot,
// and says so at info (a SIGHUP always leaves a line).
func TestUnchangedIsNoop(t *testing.T) {
	w := newWorld(t)
	cur := w.r.Current()
	if changed, err := w.r.Reload(context.Background()); changed || err != nil || w.r.Current() != cur {
		t.Fatalf("unchanged directory: changed %v, err %v", changed, err)
	}
	if logs := w.logs.String(); !strings.Contains(logs, `level=INFO msg="reload: no change" generation=1`) {
		t.Errorf("an unchanged reload logged:\n%s", logs)
	}
}

// TestWatch: a change in the directory is picked up after the debounce.
func TestWatch(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	done, err := w.r.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); <-done }()
	w.write(7, true) // watched from the moment Watch returned
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if v, err := w.call(); err == nil && v == 7 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the change was not served within 5s")
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
