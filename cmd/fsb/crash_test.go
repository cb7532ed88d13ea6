package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openfsb/fsb/cmd/fsb/internal/loadbench"
	"github.com/openfsb/fsb/engine/audit"
)

// The audit trail's crash tests (issue 5, "How it will be checked"): the
// gateway runs with the audit trail on as a separate process — this test
// binary re-executed as `fsb serve` (TestCrashServeChild) — in front of
// three real loopback HTTP sources that count their hits, under load from
// concurrent clients.

// crashServeEnv carries the serve arguments (JSON) to the child process.
const crashServeEnv = "FSB_CRASH_SERVE_ARGS"

// TestCrashServeChild is the child process: `fsb serve` with the
// arguments in crashServeEnv. Without it, it does nothing.
func TestCrashServeChild(t *testing.T) {
	raw := os.Getenv(crashServeEnv)
	if raw == "" {
		t.Skip("only runs as the child process of the crash tests")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(run(append([]string{"serve"}, args...), os.Stdout, os.Stderr))
}

// crashRig is the gateway's environment: key files, a flow directory whose
// three sources are counting backends, and the audit directory.
type crashRig struct {
	t        *testing.T
	dir      string // flows
	auditDir string
	keyFile  string
	subject  string
	pub      ed25519.PublicKey
	hits     atomic.Int64 // requests the sources received
}

func newCrashRig(t *testing.T, auditDir string) *crashRig {
	r := &crashRig{t: t, dir: t.TempDir(), auditDir: auditDir}
	keys := t.TempDir()
	r.keyFile, r.subject = filepath.Join(keys, "audit.key"), filepath.Join(keys, "subject.key")
	var out, errb bytes.Buffer
	if code := run([]string{"audit", "keygen", "-out", r.keyFile}, &out, &errb); code != 0 {
		t.Fatal(errb.String())
	}
	if code := run([]string{"audit", "secret", "-out", r.subject}, &out, &errb); code != 0 {
		t.Fatal(errb.String())
	}
	k, err := loadEd25519Key(r.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	r.pub = k.Public().(ed25519.PublicKey)

	var urls [3]string
	for i := range urls {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			r.hits.Add(1)
			id := strings.TrimPrefix(req.URL.Path, "/items/")
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(loadbench.BackendBody(i, id))
		}))
		t.Cleanup(srv.Close)
		urls[i] = srv.URL
	}
	for name, b := range loadbench.FlowFiles(urls, 16) {
		if err := os.WriteFile(filepath.Join(r.dir, filepath.Base(name)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// crashGateway is one running `fsb serve` child.
type crashGateway struct {
	cmd  *exec.Cmd
	addr string
	out  *bytes.Buffer
	done chan struct{}
}

// start runs the gateway with the audit trail on and waits for its address.
func (r *crashRig) start(extra ...string) *crashGateway {
	r.t.Helper()
	args := append([]string{"-addr", "127.0.0.1:0", "-log-level", "warn",
		"-audit-dir", r.auditDir, "-audit-key", r.keyFile, "-subject-key-file", r.subject}, extra...)
	args = append(args, r.dir)
	js, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashServeChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashServeEnv+"="+string(js))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	g := &crashGateway{cmd: cmd, out: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{w: g.out}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, a, ok := strings.Cut(sc.Text(), " on http://"); ok {
				addr <- a
			}
		}
		_ = cmd.Wait()
		close(g.done)
	}()
	select {
	case g.addr = <-addr:
		return g
	case <-g.done:
		r.t.Fatalf("the gateway exited at start: %s", g.out)
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		r.t.Fatalf("the gateway did not start: %s", g.out)
	}
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (g *crashGateway) kill() {
	_ = g.cmd.Process.Kill()
	<-g.done
}

// stop sends SIGTERM (a graceful stop: the store signs a last checkpoint).
func (g *crashGateway) stop(t *testing.T) {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(15 * time.Second):
		g.kill()
		t.Fatalf("the gateway did not stop on SIGTERM: %s", g.out)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// answer is one response a client received.
type answer struct {
	trace   string // the BelGov-Trace-Id the client sent
	status  int
	receipt string
	problem string
}

var crashClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// crashCall sends one request to the three-source flow with a fresh trace id.
func crashCall(addr, trace string) (answer, error) {
	req, _ := http.NewRequest("GET", "http://"+addr+"/bench/v1/merged/0403170701", nil)
	req.Header.Set("BelGov-Trace-Id", trace)
	resp, err := crashClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err // cut by the kill: not received
	}
	a := answer{trace: trace, status: resp.StatusCode, receipt: resp.Header.Get(audit.ReceiptHeader)}
	if resp.StatusCode >= 400 {
		var p struct{ Type string }
		_ = json.Unmarshal(body, &p)
		a.problem = p.Type
	}
	return a, nil
}

// crashLoad runs clients against addr until stop is closed and returns every
// complete answer.
func crashLoad(addr string, clients int, prefix string, stop <-chan struct{}) []answer {
	var mu sync.Mutex
	var got []answer
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a, err := crashCall(addr, fmt.Sprintf("%s-%d-%d", prefix, c, i))
				if err != nil {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond): // the gateway is gone or restarting
					}
					continue
				}
				mu.Lock()
				got = append(got, a)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return got
}

// TestCrashKillAudit kills the gateway with SIGKILL at random moments
// under load, restarts it on the same audit directory, and checks that
// every 2xx answer a client received has its request and outcome records
// (by receipt and by trace id) and that `fsb audit verify` passes.
func TestCrashKillAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the gateway as a process and kills it")
	}
	r := newCrashRig(t, filepath.Join(t.TempDir(), "audit"))
	var ok []answer
	const rounds = 4
	for round := range rounds {
		g := r.start()
		stop := make(chan struct{})
		res := make(chan []answer, 1)
		go func() { res <- crashLoad(g.addr, 16, fmt.Sprintf("r%d", round), stop) }()
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		if round < rounds-1 {
			g.kill() // SIGKILL with calls in flight: no deferred Close, no final checkpoint
		}
		close(stop)
		got := <-res
		if round == rounds-1 {
			g.kill()
		}
		n := 0
		for _, a := range got {
			if a.status/100 == 2 {
				ok = append(ok, a)
				n++
			} else if a.status != http.StatusServiceUnavailable {
				t.Errorf("round %d: unexpected status %d (%s)", round, a.status, a.problem)
			}
		}
		if n == 0 {
			t.Fatalf("round %d: no call succeeded: %s", round, g.out)
		}
		t.Logf("round %d: %d answers, %d 2xx, then SIGKILL", round, len(got), n)
	}

	var out, errb bytes.Buffer
	if code := run([]string{"audit", "verify", "-dir", r.auditDir, "-key", r.keyFile}, &out, &errb); code != 0 {
		t.Fatalf("fsb audit verify: exit %d\n%s%s", code, out.String(), errb.String())
	}
	t.Log(strings.TrimSpace(out.String()[strings.LastIndex(out.String(), "ok:"):]))

	s, err := audit.Open(audit.Options{Dir: r.auditDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	checkReceipts(t, s, ok)
	// The trace index finds both records too (a sample: a query each).
	for i := 0; i < len(ok); i += max(1, len(ok)/20) {
		page, err := s.Query(ctx, audit.Query{TraceID: ok[i].trace})
		if err != nil || len(page.Entries) != 2 {
			t.Fatalf("%s: query by trace id: %d records, %v", ok[i].trace, len(page.Entries), err)
		}
	}
	t.Logf("%d 2xx answers over %d SIGKILLs: every one has its request and outcome records", len(ok), rounds)
}

// TestCrashDiskFullAudit fills the audit store's file system: a real,
// small tmpfs mounted for the test (root only), filled with a file. Below
// the configured free space the gateway must refuse every call with
// serviceUnavailable without reaching a source, and serve again once the
// space is freed. (Making the directory unwritable with chmod shows
// nothing for a long while: the store appends to a segment file it already
// has open, and fails only when it next creates one, every 64 MiB.)
func TestCrashDiskFullAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the gateway as a process")
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	r := newCrashRig(t, filepath.Join(mnt, "audit"))
	conf := filepath.Join(t.TempDir(), "audit.yaml")
	if err := os.WriteFile(conf, []byte("minFreeSpace: 16MiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := r.start("-audit-config", conf)
	defer g.stop(t)

	expect := func(phase string, status int, problem string) {
		t.Helper()
		for i := range 20 {
			a, err := crashCall(g.addr, fmt.Sprintf("%s-%d", phase, i))
			if err != nil {
				t.Fatalf("%s: %v\n%s", phase, err, g.out)
			}
			if a.status != status || a.problem != problem {
				t.Fatalf("%s: status %d %q, want %d %q", phase, a.status, a.problem, status, problem)
			}
		}
	}
	expect("before", 200, "")

	// Fill the file system until less than 8 MiB is free.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(mnt, &st); err != nil {
			t.Fatal(err)
		}
		if st.Bavail*uint64(st.Bsize) < 8<<20 {
			break
		}
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	hits := r.hits.Load()
	expect("full", 503, "urn:problem-type:belgif:serviceUnavailable")
	if n := r.hits.Load() - hits; n != 0 {
		t.Fatalf("the sources were called %d times while the store could not write", n)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	expect("freed", 200, "")
	if r.hits.Load() == hits {
		t.Fatal("no source call after the space was freed")
	}
	g.stop(t)
	var out, errb bytes.Buffer
	if code := run([]string{"audit", "verify", "-dir", r.auditDir, "-key", r.keyFile}, &out, &errb); code != 0 {
		t.Fatalf("fsb audit verify: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// checkReceipts: each answer's receipt names its outcome record (same
// hash, trace and status), which links to the call's request record.
func checkReceipts(t *testing.T, s *audit.Store, answers []answer) {
	t.Helper()
	ctx := context.Background()
	for _, a := range answers {
		rc, err := audit.ParseReceipt(a.receipt)
		if err != nil {
			t.Fatalf("%s: 2xx without a valid receipt %q", a.trace, a.receipt)
		}
		o, err := s.Get(ctx, rc.Seq)
		if err != nil || o.Hash != rc.Hash || o.Record.Kind != audit.KindOutcome || o.Record.TraceIn != a.trace || o.Record.Status != a.status {
			t.Fatalf("%s: the outcome record of receipt %s: %+v %v", a.trace, a.receipt, o.Record, err)
		}
		q, err := s.Get(ctx, o.Record.Request)
		if err != nil || q.Record.Kind != audit.KindRequest || q.Record.TraceIn != a.trace || q.Record.Call != o.Record.Call {
			t.Fatalf("%s: the request record %d: %+v %v", a.trace, o.Record.Request, q.Record, err)
		}
	}
}
