package config_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/config"
	"github.com/openfsb/fsb/engine/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func noEnv(string) (string, bool) { return "", false }

func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (go test -update to accept):\n--- got ---\n%s\n--- want ---\n%s", file, got, want)
	}
}

// TestExample: the documented example decodes to the golden model, is
// valid, and is the one README.md shows.
func TestExample(t *testing.T) {
	b, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Load("testdata/example.yaml", noEnv)
	if err != nil {
		for _, e := range err.(spec.ErrorList) {
			t.Error(e.Snippet())
		}
		t.FailNow()
	}
	out, _ := json.MarshalIndent(c, "", "  ")
	golden(t, "testdata/example.golden.json", append(out, '\n'))
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+string(b)+"```") {
		t.Error("README.md does not show testdata/example.yaml verbatim (copy it into the example block)")
	}
	for _, k := range config.AllKeys() {
		if !strings.Contains(string(readme), "`"+k.Path+"`") || !strings.Contains(string(readme), k.Env) {
			t.Errorf("README.md does not document %s (%s)", k.Path, k.Env)
		}
	}
}

// TestErrors: every mistake is reported at once, at its line and column,
// with what to do (golden).
func TestErrors(t *testing.T) {
	files, _ := filepath.Glob("testdata/errors/*.yaml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := config.Load(f, noEnv)
			var errs spec.ErrorList
			if !errors.As(err, &errs) {
				t.Fatalf("no error list: %v", err)
			}
			var b strings.Builder
			for _, e := range errs {
				b.WriteString(e.Snippet())
				b.WriteString("\n")
			}
			golden(t, strings.TrimSuffix(f, ".yaml")+".golden", []byte(b.String()))
		})
	}
}

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "fsb.yaml")
	if err := os.WriteFile(f, []byte("dataDir: data\naccess: {enabled: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(f, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listeners.Consumer.Addr != "127.0.0.1:8080" || c.Flows != filepath.Join(dir, "flows") ||
		c.Access.Dir != filepath.Join(dir, "data", "access") || c.WASM.CacheDir != filepath.Join(dir, "data", "wasm-cache") ||
		c.Tracing.Enabled || !c.Metrics.Enabled || c.Log.Format != "json" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{
		"FSB_LISTENERS_CONSUMER_ADDR": "0.0.0.0:9000",
		"FSB_TRUSTED_PROXIES":         "10.0.0.1, 10.0.0.0/8",
		"FSB_LOG_LEVEL":               "debug",
		"FSB_LIMITS_MAX_WAIT":         "5ms",
		"FSB_TRACING_HEADERS":         "api-key=abc,x=y",
		"FSB_KEYS_ADMIN_TOKEN":        "",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c, err := config.Load("testdata/example.yaml", lookup)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listeners.Consumer.Addr != "0.0.0.0:9000" || len(c.TrustedProxies) != 2 || c.Log.Level != "debug" ||
		c.Limits.MaxWait.D().Milliseconds() != 5 || c.Tracing.Headers["api-key"] != "abc" || c.Keys.AdminToken != "" {
		t.Errorf("overrides not applied: %+v", c)
	}
	env["FSB_LIMITS_GOGC"] = "lots"
	env["FSB_LOG_FORMAT"] = "xml"
	_, err = config.Load("testdata/example.yaml", lookup)
	if err == nil || !strings.Contains(err.Error(), "environment FSB_") {
		t.Fatalf("bad overrides: %v", err)
	}
	for _, want := range []string{"environment FSB_LIMITS_GOGC: overrides limits.gogc: expected a whole number", "environment FSB_LOG_FORMAT: log.format \"xml\""} {
		if !strings.Contains(fmtErrs(err), want) {
			t.Errorf("missing %q in\n%s", want, fmtErrs(err))
		}
	}
	if config.EnvName("keys.adminToken") != "FSB_KEYS_ADMIN_TOKEN" || config.EnvName("listeners.admin.clientCA") != "FSB_LISTENERS_ADMIN_CLIENT_CA" {
		t.Error("env names")
	}
}

func fmtErrs(err error) string {
	var errs spec.ErrorList
	if !errors.As(err, &errs) {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error() + "\n")
	}
	return b.String()
}

// TestCheck: Check loads the flows and reads the key files without serving.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	flows := filepath.Join(dir, "flows")
	if err := os.MkdirAll(flows, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("flows/set.yaml", `kind: Source
name: reg
protocol: rest
rest:
  baseUrl: http://127.0.0.1:1
  operations:
    get: {method: GET, path: /x}
---
kind: Flow
name: f
version: 1.0.0
method: GET
path: /f/v1/get
steps:
  - id: a
    call: reg.get
output: steps.a.body
`, 0o644)
	write("admin.token", "0123456789abcdef0123", 0o600)
	write("fsb.yaml", "flows: flows\ndataDir: data\nlisteners:\n  admin: {addr: 127.0.0.1:9090}\nkeys:\n  adminToken: admin.token\n", 0o644)
	c, err := config.Load(filepath.Join(dir, "fsb.yaml"), noEnv)
	if err != nil {
		t.Fatal(fmtErrs(err))
	}
	if err := c.Check(context.Background(), config.CheckOptions{}); err != nil {
		t.Fatalf("check: %s", fmtErrs(err))
	}
	write("flows/set.yaml", strings.Replace(mustRead(t, filepath.Join(flows, "set.yaml")), "reg.get", "reg.gte", 1), 0o644)
	if err := os.Chmod(filepath.Join(dir, "admin.token"), 0o644); err != nil {
		t.Fatal(err)
	}
	// ReadFiles (the command's reading) is reported at its key, unless
	// the key is at fault already.
	read := func(*config.Config) []*config.KeyError {
		return []*config.KeyError{{Key: "keys.adminToken", Err: errors.New("read twice")}, {Key: "flows", Err: errors.New("not PEM")}}
	}
	got := fmtErrs(c.Check(context.Background(), config.CheckOptions{ReadFiles: read}))
	for _, want := range []string{"fsb.yaml:6:15: keys.adminToken: ", "chmod 600", "flows/set.yaml:16:11: ", "fsb.yaml:1:8: flows: not PEM"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "read twice") {
		t.Errorf("a key at fault reported twice:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("Check wrote into dataDir: %v", err)
	}
	// A missing key file: where it was looked for and how to make one.
	if err := os.Remove(filepath.Join(dir, "admin.token")); err != nil {
		t.Fatal(err)
	}
	got = fmtErrs(c.CheckFiles(nil))
	if want := "keys.adminToken: " + filepath.Join(dir, "admin.token") + " does not exist: create it with `fsb audit secret -out " + filepath.Join(dir, "admin.token") + "`"; !strings.Contains(got, want) {
		t.Errorf("missing %q in\n%s", want, got)
	}
}

func mustRead(t *testing.T, f string) string {
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzDecode: the decoder never panics, and every error names the file.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	more, _ := filepath.Glob("testdata/errors/*.yaml")
	for _, s := range append(seeds, more...) {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Add([]byte("listeners: [a, b]\nlimits: {maxWait: -1s}\n"))
	f.Add([]byte("a: &x {b: 1}\nc: *x\n---\nd: 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := config.Decode("fsb.yaml", b)
		if err == nil {
			return
		}
		var errs spec.ErrorList
		if !errors.As(err, &errs) {
			t.Fatalf("not an ErrorList: %v", err)
		}
		for _, e := range errs {
			if e.Pos.File != "fsb.yaml" || e.Msg == "" {
				t.Fatalf("error without its file: %q", e.Error())
			}
			_ = e.Snippet()
		}
	})
}

// TestSetValidate: Set records where a value came from, so that Validate's
// errors name it; listeners may share port 0 (each gets a free port) but
// not a fixed address.
func TestSetValidate(t *testing.T) {
	for _, tc := range []struct {
		sets [][2]string // key, value
		want string      // "" valid
	}{
		{[][2]string{{"listeners.consumer.addr", "127.0.0.1:0"}, {"listeners.admin.addr", "127.0.0.1:0"}, {"keys.adminToken", "/k"}}, ""},
		{[][2]string{{"listeners.consumer.addr", "127.0.0.1:9000"}, {"listeners.admin.addr", "127.0.0.1:9000"}, {"keys.adminToken", "/k"}},
			`flag listeners.admin.addr: listeners.admin.addr "127.0.0.1:9000" is also listeners.consumer.addr`},
		{[][2]string{{"listeners.consumer.addr", "nowhere"}}, `flag listeners.consumer.addr: listeners.consumer.addr "nowhere" is not host:port`},
		{[][2]string{{"listeners.consumer.addr", "127.0.0.1:99999"}}, `flag listeners.consumer.addr: listeners.consumer.addr "127.0.0.1:99999": the port must be a number from 0 to 65535`},
		{[][2]string{{"listeners.consumer.addr", "127.0.0.1:-1"}}, `the port must be a number`},
		{[][2]string{{"listeners.consumer.addr", ":65535"}}, ""},
		{[][2]string{{"audit.config", "/a.yaml"}}, "flag audit.config: audit.config configures the audit trail"},
		{[][2]string{{"limits.maxWait", "soon"}}, `flag limits.maxWait: expected a duration`},
	} {
		c := config.Default()
		var err error
		for _, kv := range tc.sets {
			if err = c.Set(kv[0], kv[1], "flag "+kv[0]); err != nil {
				break
			}
		}
		if err == nil {
			err = c.Validate()
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.sets, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want %q", tc.sets, err, tc.want)
		}
	}
	if err := config.Default().Set("listeners.nope", "x", "flag -x"); err == nil {
		t.Error("Set accepted an unknown key")
	}
}
