package loadbench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFSBBinaryBench builds the real fsb binary and runs `fsb bench` with
// it, so that the Go candidates run as `fsb bench-serve` child processes
// (a test binary cannot serve them): each must be measured, fail nothing,
// and leave no process behind.
func TestFSBBinaryBench(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fsb and puts load on child processes")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	gomod, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		t.Fatal("go env GOMOD: not in a module")
	}
	bin := filepath.Join(t.TempDir(), "fsb")
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/fsb")
	build.Dir = filepath.Dir(mod)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/fsb: %v\n%s", err, out)
	}

	only := []string{FSBPassthrough, FiberMerge, FSBThree}
	var stdout, stderr bytes.Buffer
	run := exec.CommandContext(ctx, bin, "bench", "-d", "300ms", "-warmup", "100ms", "-c", "4", "-only", strings.Join(only, ","))
	run.Stdout, run.Stderr = &stdout, &stderr
	run.WaitDelay = 5 * time.Second
	if err := run.Run(); err != nil {
		t.Fatalf("fsb bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "candidates in child processes") {
		t.Errorf("the header does not say the candidates ran in child processes:\n%s", out)
	}
	rps := map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				rps[f[0]] = v
			}
		}
	}
	for _, name := range only {
		if rps[name] <= 0 {
			t.Errorf("%s: no requests/s in the table:\n%s", name, out)
		}
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", stderr.String())
	}

	// fsb bench waited for its children: none of them is left.
	if entries, err := os.ReadDir("/proc"); err == nil {
		for _, e := range entries {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err == nil && bytes.HasPrefix(cmdline, []byte(bin+"\x00")) {
				t.Errorf("process %s is still running: %q", e.Name(), cmdline)
			}
		}
	}
	t.Logf("\n%s", out)
}

// TestServeStopsWithContext: Serve announces its address, serves, and
// returns once its context ends.
func TestServeStopsWithContext(t *testing.T) {
	b, err := startBackend(0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ready := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServeConfig{Candidate: FSBPassthrough, Backends: [3]string{b.URL(), b.URL(), b.URL()}}, ready)
	}()
	var addr string
	for deadline := time.Now().Add(5 * time.Second); addr == "" && time.Now().Before(deadline); {
		line, ok := strings.CutSuffix(string(ready.Bytes()), "\n")
		if ok {
			addr, ok = strings.CutPrefix(line, ReadyPrefix)
			if !ok {
				t.Fatalf("announced %q", line)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if addr == "" {
		cancel()
		t.Fatal("no address announced within 5s")
	}
	var want any
	if err := json.Unmarshal(BackendBody(0, "0403170701"), &want); err != nil {
		t.Fatal(err)
	}
	c := &candidate{name: FSBPassthrough, addr: addr, path: passthroughPath + "0403170701", check: func(body []byte) error { return checkEqual(body, want) }}
	if err := validate(c); err != nil {
		t.Error(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10s of its context ending")
	}
}

// TestServeLoopbackOnly: a served candidate listens on and calls loopback
// addresses only.
func TestServeLoopbackOnly(t *testing.T) {
	local := [3]string{"http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"}
	for _, tc := range []struct {
		name, listen string
		backends     [3]string
	}{
		{FiberMerge, "0.0.0.0:0", local},
		{FiberMerge, ":0", local},
		{FSBThree, "127.0.0.1:0", [3]string{"http://10.0.0.1:1", local[1], local[2]}},
		{FSBThree, "127.0.0.1:0", [3]string{"https://127.0.0.1:1", local[1], local[2]}},
		{FSBThree, "127.0.0.1:0", [3]string{"http://127.0.0.1:1/x", local[1], local[2]}},
		{Nginx, "127.0.0.1:0", local},
		{Direct, "127.0.0.1:0", local},
	} {
		if s, err := StartServer(tc.name, tc.backends, 8, tc.listen); err == nil {
			s.Close()
			t.Errorf("%s on %s calling %v: started", tc.name, tc.listen, tc.backends)
		}
	}
}

// TestReadyWatcher: the first stdout line gives the address, the rest is
// kept for the report.
func TestReadyWatcher(t *testing.T) {
	ready := make(chan string, 1)
	var rest bytes.Buffer
	w := &readyWatcher{ready: ready, rest: &rest}
	for _, p := range []string{"listen", "ing 127.0.0.1:", "4321\nlater ", "output\n"} {
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case addr := <-ready:
		if addr != "127.0.0.1:4321" {
			t.Errorf("address %q", addr)
		}
	default:
		t.Error("no address")
	}
	if rest.String() != "later output\n" {
		t.Errorf("rest %q", rest.String())
	}

	ready = make(chan string, 1)
	rest.Reset()
	w = &readyWatcher{ready: ready, rest: &rest}
	_, _ = w.Write([]byte("panic: oops\nmore\n"))
	if len(ready) != 0 || rest.String() != "panic: oops\nmore\n" {
		t.Errorf("non-address line: ready %d, rest %q", len(ready), rest.String())
	}
}

// TestChildFailureShowsOutput: a child that fails shows its stderr; one
// that announces a non-loopback address is refused and killed.
func TestChildFailureShowsOutput(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	urls := [3]string{"http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"}
	_, err = startChild([]string{sh, "-c", "echo boom >&2; exit 3", "sh"}, FiberMerge, urls, 8)
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("failing child: %v", err)
	}
	_, err = startChild([]string{sh, "-c", "echo listening 10.1.2.3:80; echo why >&2; exec sleep 30", "sh"}, FiberMerge, urls, 8)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("child on a non-loopback address: %v", err)
	}
	c, err := startChild([]string{sh, "-c", "echo listening 127.0.0.1:9; read x; echo bye >&2; exit 4", "sh"}, FiberMerge, urls, 8)
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != "127.0.0.1:9" || c.alive() != nil {
		t.Errorf("addr %q, alive %v", c.addr, c.alive())
	}
	if err := c.Close(); err == nil || !strings.Contains(err.Error(), "bye") {
		t.Errorf("child exiting 4 at close: %v", err)
	}
	if c.alive() == nil {
		t.Error("closed child still alive")
	}
}
