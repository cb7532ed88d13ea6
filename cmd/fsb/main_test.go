package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const root = "../.."

// TestValidateGolden runs `fsb validate` on each broken flow set under
// testdata/validate and compares what it prints with the .golden file.
func TestValidateGolden(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(root, "testdata/validate/*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range dirs {
		if info, err := os.Stat(dir); err != nil || !info.IsDir() {
			continue
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"validate", dir}, &stdout, &stderr)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if stdout.Len() != 0 {
				t.Errorf("unexpected stdout: %s", stdout.String())
			}
			got := strings.ReplaceAll(stderr.String(), filepath.Clean(root)+"/", "")
			golden := dir + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/fsb -run Golden -update)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
			// every error line names file:line:col
			for _, line := range strings.Split(got, "\n") {
				if strings.HasPrefix(line, "testdata/") && !regexp.MustCompile(`^testdata/\S+\.yaml:\d+:\d+: `).MatchString(line) {
					t.Errorf("error line without file:line:col: %q", line)
				}
			}
		})
	}
	if n < 5 {
		t.Fatalf("only %d broken flow sets found", n)
	}
}

func TestValidateDemoFlows(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"validate", filepath.Join(root, "flows")}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !regexp.MustCompile(`^ok: 3 sources, \d+ flows, 2 plugins, \d+ tests in \d+ files\n$`).MatchString(stdout.String()) {
		t.Errorf("summary: %q", stdout.String())
	}
}

func TestTestCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"test", "-run", "^enterprise/", filepath.Join(root, "flows")}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "7 passed, 0 failed") {
		t.Errorf("output: %s", stdout.String())
	}

	// a failing test prints a diff and exits 1
	dir := t.TempDir()
	for _, f := range []string{"sources.yaml", "enterprise.yaml"} {
		b, err := os.ReadFile(filepath.Join(root, "flows", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	failing := `kind: Test
name: wrong expectation
flow: enterprise
request: {path: /enterprises/v1/enterprises/0912345673}
mocks:
  - call: enterpriseRegister.getEnterprise
    body: {name: Actual}
expect:
  status: 200
  body: {name: Expected}
`
	if err := os.WriteFile(filepath.Join(dir, "x_test.yaml"), []byte(failing), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if code := run([]string{"test", dir}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stdout.String())
	}
	for _, want := range []string{"FAIL  enterprise/wrong expectation", `-   "name": "Expected"`, `+   "name": "Actual"`, "0 passed, 1 failed"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	if code := run([]string{"frobnicate"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemo starts the demo as `fsb demo` does and runs every curl command it
// prints, with the real curl, against the real gateway and mock sources.
func TestDemo(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is required under CI=true")
		}
		t.Skip("curl not installed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	f := serveFlags{addr: "127.0.0.1:0", logLevel: "warn"}
	go func() {
		done <- runDemo(ctx, f, filepath.Join(root, "flows"), filepath.Join(root, "testdata/demo"), &stdout, &stderr, slog.New(slog.NewTextHandler(&stderr, nil)))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "Ctrl-C") {
		if time.Now().After(deadline) {
			t.Fatalf("demo did not start: %s %s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var cmds []string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "curl ") {
			cmds = append(cmds, l)
		}
	}
	if len(cmds) < 5 {
		t.Fatalf("demo printed %d curl commands:\n%s", len(cmds), stdout.String())
	}
	wants := []string{
		`"vat":{"available":true,"active":true,"employees":48}`, // three sources combined
		`"vat":{"available":false}`,                             // optional step degraded
		`unknownInput`,
		`{"pseudonym":"hmac:demo1:mSLWAJCj9sc1hyPeCfSzbA","birthYear":1968,"gender":"M","postalCode":"9000","nationality":"BE"}`, // DemoMaskKey
		`{"status":"UP"}`,
	}
	for i, c := range cmds {
		out, err := exec.Command("sh", "-c", strings.Replace(c, "curl", curl+" --max-time 10", 1)+" -i").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
		if !strings.Contains(string(out), "Belgov-Trace-Id: ") {
			t.Errorf("%s: no trace id:\n%s", c, out)
		}
		if i < len(wants) && !strings.Contains(string(out), wants[i]) {
			t.Errorf("%s: answer lacks %s:\n%s", c, wants[i], out)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("demo exited %d: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop on cancel")
	}
}
