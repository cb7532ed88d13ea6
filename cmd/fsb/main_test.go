package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfsb/fsb/cmd/fsb/internal/mocksrc"
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
	if !regexp.MustCompile(`^ok: 5 sources, \d+ flows, 4 plugins, \d+ tests in \d+ files\n$`).MatchString(stdout.String()) {
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

// TestDemo starts the demo as `fsb demo` does (a fresh data directory, TLS,
// access, audit, the consumer onboarded through the admin API), runs every
// curl command it prints with the real curl, and every fsb audit command it
// prints in process, and checks the answers.
func TestDemo(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is required under CI=true")
		}
		t.Skip("curl not installed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	f := serveFlags{addr: "127.0.0.1:0", logLevel: "warn"}
	f.security.adminAddr = "127.0.0.1:0"
	go func() { done <- runDemo(ctx, f, testDemoConfig(""), &stdout, &stderr) }()
	waitDemo(t, &stdout, &stderr, done)
	out := stdout.String()
	dataDir := regexp.MustCompile(`data directory: (\S+) `).FindStringSubmatch(out)
	if dataDir == nil || !strings.HasPrefix(dataDir[1], os.TempDir()) {
		t.Fatalf("no fresh data directory under %s:\n%s", os.TempDir(), out)
	}
	for _, secret := range []string{"audit.key", "subject.key", "admin.token"} {
		b, err := os.ReadFile(filepath.Join(dataDir[1], secret))
		if err != nil {
			t.Fatal(err)
		}
		if k := strings.TrimSpace(string(b)); strings.Contains(out, k) || strings.Contains(stderr.String(), k) {
			t.Errorf("the demo printed the content of %s", secret)
		}
	}

	curls, fsbs := demoCommands(out)
	// The metrics curl (admin listener, admin token) is run after the calls.
	var metricsCurl string
	for i, c := range curls {
		if strings.Contains(c, "Authorization: Bearer") {
			metricsCurl = c
			curls = slices.Delete(curls, i, i+1)
			break
		}
	}
	// The first calls (demoCalls) and the last ones (demoAccessCalls) are
	// checked here; calls other files add to demoCalls must answer 200.
	head := [][]string{
		{"HTTP/1.1 200", `"vat":{"available":true,"active":true,"employees":48}`}, // three sources combined
		{"HTTP/1.1 200", `"vat":{"available":false}`},                             // optional step degraded
		{"HTTP/1.1 400", `unknownInput`},
		{"HTTP/1.1 200", `{"pseudonym":"hmac:demo1:mSLWAJCj9sc1hyPeCfSzbA","birthYear":1968,"gender":"M","postalCode":"9000","nationality":"BE"}`}, // DemoMaskKey
		{"HTTP/1.1 200", `{"status":"UP"}`},
	}
	tail := [][]string{
		{"HTTP/1.1 200", "\r\n\r\n" + `{"name":"Marc Vandaele","address":{"municipality":"Gent"}}`, "Openfsb-Audit-Receipt: seq="}, // minimised by the grant
		{"HTTP/1.1 403", `"type":"urn:problem-type:belgif:missingPermission"`},
		{"HTTP/1.1 401", `"type":"urn:problem-type:belgif:noAccessToken"`},
		{"HTTP/1.1 200", `"kind":"request"`, `"kind":"outcome"`, `"traceIn":"demo-person-1"`, `"released":["name","address.municipality"]`},
	}
	if len(curls) != len(demoCalls)+len(demoAccessCalls) || len(demoAccessCalls) != len(tail) {
		t.Fatalf("demo printed %d curl commands, want %d:\n%s", len(curls), len(demoCalls)+len(demoAccessCalls), out)
	}
	for i, c := range curls {
		want := []string{"HTTP/1.1 200"}
		switch {
		case i < len(head):
			want = head[i]
		case i >= len(curls)-len(tail):
			want = tail[i-(len(curls)-len(tail))]
		case strings.Contains(c, "/supplierCheck/"): // demo_sources.go: REST, SOAP (VIES) and a CSV record over SFTP
			want = []string{"HTTP/1.1 200", `"vat":{"checked":true,"valid":true,"registeredName":"SRL BOULANGERIE DU PARC"},"socialSecurity":{"checked":true,"employer":true,"quarter":"2025Q1","employees":4,"debt":1250.4,"source":"employers-2025Q1.csv"}`}
		}
		for _, flag := range []string{"--cacert ", "https://127.0.0.1:"} {
			if !strings.Contains(c, flag) {
				t.Errorf("%s: lacks %s", c, flag)
			}
		}
		got, err := exec.Command("sh", "-c", strings.Replace(c, "curl", curl+" --max-time 10", 1)+" -i").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c, err, got)
		}
		if !strings.Contains(c, "/audit/v1/") && !strings.Contains(string(got), "Belgov-Trace-Id: ") {
			t.Errorf("%s: no trace id:\n%s", c, got)
		}
		for _, w := range want {
			if !strings.Contains(string(got), w) {
				t.Errorf("%s: answer lacks %s:\n%s", c, w, got)
			}
		}
	}

	// The metrics, as printed: the first call above is counted, by service,
	// consumer organisation and status.
	if metricsCurl == "" {
		t.Fatalf("the demo printed no metrics curl:\n%s", out)
	}
	got, err := exec.Command("sh", "-c", strings.Replace(metricsCurl, "curl", curl+" --max-time 10", 1)).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", metricsCurl, err, got)
	}
	m := regexp.MustCompile(`(?m)^fsb_requests_total\{consumer="` + demoOrg + `",service="enterpriseProfile",status="200"\} (\d+)$`).FindSubmatch(got)
	if m == nil || string(m[1]) == "0" {
		t.Errorf("%s: no fsb_requests_total of enterpriseProfile, status 200:\n%s", metricsCurl, got)
	}

	// The fsb audit commands, in process, as go run ./cmd/fsb would run them.
	fsbWants := [][]string{
		{`"kind":"request"`, `"kind":"outcome"`, `"org":"0888777643"`, `"purpose":"socialAssistance"`, `"endUser":"demo-officer-1"`,
			`"legalBasis":"law: Law of 8 August 1983`, `"released":["name","address.municipality"]`, `"source":"personRegister"`},
		{`"service":"person"`, `"service":"personResearch"`, `"purpose":"statisticalResearch"`,
			`"service":"enterpriseProfile"`, `"purpose":"supplierCheck"`, `"through":["personRegister.getPerson"]`,
			`"environment":"test"`}, // the onboarding's connection tests, on the test endpoints
		{"ok: records 1–"},
		{"kept the checkpoint at record "}, // a witness keeps the signed head (in the data directory here)
		{"ok: records 1–", "ok: the chain holds the witnessed checkpoints, the last at record "},
	}
	if len(fsbs) != len(fsbWants) {
		t.Fatalf("demo printed %d fsb commands, want %d:\n%s", len(fsbs), len(fsbWants), out)
	}
	for i, args := range fsbs {
		var o, e bytes.Buffer
		if code := run(args, &o, &e); code != 0 {
			t.Fatalf("fsb %s: exit %d\n%s%s", strings.Join(args, " "), code, o.String(), e.String())
		}
		for _, w := range fsbWants[i] {
			if !strings.Contains(o.String(), w) {
				t.Errorf("fsb %s: output lacks %s:\n%s", strings.Join(args, " "), w, o.String())
			}
		}
		if i == 1 && strings.Count(o.String(), `"environment":"test"`) >= strings.Count(o.String(), "\n") {
			t.Errorf("fsb %s: every consultation marked a test, the demo's own calls too:\n%s", strings.Join(args, " "), o.String())
		}
		if i == 0 && strings.Count(o.String(), "\n") != 2 {
			t.Errorf("fsb %s: want the request and the outcome record:\n%s", strings.Join(args, " "), o.String())
		}
		if strings.Contains(o.String(), mocksrc.ExampleSSIN) {
			t.Errorf("fsb %s: the data subject in clear:\n%s", strings.Join(args, " "), o.String())
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
	if _, err := os.Stat(dataDir[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the fresh data directory %s is still there: %v", dataDir[1], err)
	}
}

// testDemoConfig is the demo's configuration from cmd/fsb.
func testDemoConfig(dir string) demoConfig {
	return demoConfig{flows: filepath.Join(root, "flows"), data: filepath.Join(root, "testdata/demo"),
		pki: filepath.Join(root, demoPKIDir), dir: dir}
}

// waitDemo waits until the demo has printed its commands, or has failed.
func waitDemo(t *testing.T, stdout, stderr *syncBuffer, done chan int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stdout.String(), "Ctrl-C") {
		select {
		case code := <-done:
			t.Fatalf("demo exited %d: %s %s", code, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not start: %s %s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// demoCommands returns the curl commands the demo printed (continuation
// lines joined) and its fsb commands as argument lists.
func demoCommands(out string) (curls []string, fsbs [][]string) {
	out = regexp.MustCompile(`\\\n\s*`).ReplaceAllString(out, "")
	for _, line := range strings.Split(out, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(l, "curl "):
			curls = append(curls, l)
		case strings.HasPrefix(l, "go run ./cmd/fsb "):
			fsbs = append(fsbs, shellWords(strings.TrimPrefix(l, "go run ./cmd/fsb ")))
		}
	}
	return curls, fsbs
}

// shellWords splits a command line as a POSIX shell does for the words
// shellQuote writes: plain, single-quoted, and \' between quotes.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	in, quoted, escaped := false, false, false
	for _, r := range s {
		switch {
		case escaped:
			w.WriteRune(r)
			escaped = false
		case !quoted && r == '\\':
			escaped, in = true, true
		case quoted && r == '\'':
			quoted = false
		case quoted:
			w.WriteRune(r)
		case r == '\'':
			quoted, in = true, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}
