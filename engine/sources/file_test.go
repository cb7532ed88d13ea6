package sources

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/connector/file"
	"github.com/openfsb/fsb/engine/connector/file/ftp"
	"github.com/openfsb/fsb/engine/connector/file/sftp"
	"github.com/openfsb/fsb/engine/connector/file/sftp/sftptest"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/plugin"
	"github.com/openfsb/fsb/engine/spec"
	"github.com/openfsb/fsb/engine/wasm"
	"github.com/openfsb/fsb/plugins/csv"
	sdk "github.com/openfsb/fsb/sdk/connector"
)

// The test binary is not fsb: run with this variable (the only one the
// connector process gets) it serves the FTP and SFTP drivers, as
// `fsb connector` does.
const serveVar = "FSB_SOURCES_TEST_SERVE=1"

func TestMain(m *testing.M) {
	if os.Getenv("FSB_SOURCES_TEST_SERVE") == "1" {
		sdk.Serve("sources-test", "0", ftp.Driver{}, sftp.Driver{})
		return
	}
	os.Exit(m.Run())
}

// selfConnector runs this test binary as the connector process.
func selfConnector() (plugin.Config, error) {
	cfg, err := plugin.Self("sources-test")
	cfg.Env = []string{serveVar}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return cfg, err
}

// nativeCSV is the csv codec without the sandbox, as a loaded plugin.
type nativeCSV struct{}

func (nativeCSV) Call(ctx context.Context, op string, in, cfg []byte) ([]byte, error) {
	return csv.Native{}.Decode(ctx, in, cfg)
}

const fileSources = `kind: Plugin
name: csv
module: csv.wasm
digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
limits: {maxInput: 1MiB}
config: {delimiter: ";"}
---
kind: Source
name: employers
protocol: sftp
sftp:
  host: files.invalid
  user: fsb
  password: {env: SFTP_PASSWORD}
  hostKeys: ["SHA256:uP3bdv6xk0pS2aW1fWz1ZqN2dYQ8k6Yf3o8mJmN7wVs"]
maxFileSize: 1MiB
cache: {ttl: -1}
operations:
  byNumber:
    kind: lookup
    dir: in
    pattern: "employers-*.csv"
    codec:
      plugin: csv
      config:
        fields:
          - {column: Ondernemingsnummer, name: enterpriseNumber}
          - {column: Werknemers, name: employees, type: integer}
    keys: [enterpriseNumber]
  files: {kind: list, dir: in}
---
kind: Source
name: archive
protocol: sftp
sftp:
  host: files.invalid
  user: fsb
  password: {env: SFTP_PASSWORD}
  hostKeys: ["SHA256:uP3bdv6xk0pS2aW1fWz1ZqN2dYQ8k6Yf3o8mJmN7wVs"]
  baseDir: /in
operations:
  raw: {kind: fetch, file: employers-1.csv}
`

// TestFileSources: two sftp sources through one supervised connector
// process (this test binary), the codec's config merged over the plugin's,
// the server's address and host key from BaseURLs, a killed process
// survived, and Close stopping the process with the last source.
func TestFileSources(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "in"), 0o755)
	os.WriteFile(filepath.Join(dir, "in", "employers-1.csv"), []byte("Ondernemingsnummer;Werknemers\n0912345673;48\n0923456784;7\n"), 0o644)
	srv, err := sftptest.Start(sftptest.Config{Dir: dir, User: "fsb", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	set, err := spec.Load(map[string][]byte{"s.yaml": []byte(fileSources)})
	if err != nil {
		t.Fatal(err)
	}
	at := fmt.Sprintf("sftp://127.0.0.1:%d?hostKey=%s", srv.Port(), url.QueryEscape(srv.HostKey))
	conns, err := Open(set, Options{
		Connector: selfConnector,
		BaseURLs:  map[string]string{"employers": at, "archive": at},
		LookupEnv: func(k string) (string, bool) { return "pw", k == "SFTP_PASSWORD" },
		Plugins:   map[string]flow.Plugin{"csv": nativeCSV{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	a, b := conns["employers"].(*fileSource), conns["archive"].(*fileSource)
	if a.transports != b.transports {
		t.Fatal("two file sources, two connector processes")
	}
	sup := a.transports.sup
	call := func(c connector.Connector, op string, q map[string]string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := c.Call(ctx, &connector.Request{Operation: op, Query: q})
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		return string(resp.Body)
	}
	if got := call(a, "byNumber", map[string]string{"enterpriseNumber": "0912345673"}); !strings.Contains(got, `"records":[{"enterpriseNumber":"0912345673","employees":48}]`) {
		t.Errorf("lookup: %s", got)
	}
	if got := call(b, "raw", nil); !strings.Contains(got, `"content":"T25k`) {
		t.Errorf("fetch in baseDir: %s", got)
	}
	syscall.Kill(sup.Stats().PID, syscall.SIGKILL)
	if got := call(a, "files", nil); !strings.Contains(got, `"name":"employers-1.csv"`) {
		t.Errorf("list after the process was killed: %s", got)
	}
	if st := sup.Stats(); st.Starts != 2 {
		t.Errorf("stats after a kill: %+v", st)
	}
	a.Close()
	a.Close() // twice: released once
	if st := sup.Stats(); st.State == plugin.StateClosed {
		t.Fatal("the process stopped while a file source still uses it")
	}
	Close(conns)
	if st := sup.Stats(); st.State != plugin.StateClosed {
		t.Errorf("the process outlived its sources: %+v", st)
	}
}

// TestFileSourceErrors: what stops a file source from opening is said at
// once, without a secret's value, and nothing is left running.
func TestFileSourceErrors(t *testing.T) {
	set, err := spec.Load(map[string][]byte{"s.yaml": []byte(fileSources)})
	if err != nil {
		t.Fatal(err)
	}
	plugins := map[string]flow.Plugin{"csv": nativeCSV{}}
	_, err = Open(set, Options{Plugins: plugins, LookupEnv: func(string) (string, bool) { return "s3cret", true }})
	if err == nil || !strings.Contains(err.Error(), "none is configured (sources.Options.Connector)") {
		t.Errorf("no connector: %v", err)
	}
	_, err = Open(set, Options{Connector: selfConnector, Plugins: plugins, LookupEnv: func(string) (string, bool) { return "", false }})
	if err == nil || !strings.Contains(err.Error(), "password: environment variable SFTP_PASSWORD is not set") {
		t.Errorf("no password: %v", err)
	}
	_, err = Open(set, Options{Connector: selfConnector, LookupEnv: func(string) (string, bool) { return "s3cret", true }})
	if err == nil || !strings.Contains(err.Error(), `codec plugin "csv" is not loaded`) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("no codec: %v", err)
	}
}

// TestDefaultsAgree: spec's copies of the defaults it checks against.
func TestDefaultsAgree(t *testing.T) {
	if spec.DefaultFileMaxSize != file.DefaultMaxFileSize || spec.DefaultPluginMaxInput != wasm.DefaultMaxInput {
		t.Error("engine/spec's file defaults differ from engine/connector/file's or engine/wasm's")
	}
}

func TestParseFileServer(t *testing.T) {
	fs, err := parseFileServer("sftp://127.0.0.1:2222?hostKey=SHA256%3Aabc&hostKey=SHA256%3Adef", "sftp")
	if err != nil || fs.host != "127.0.0.1" || fs.port != 2222 || len(fs.hostKeys) != 2 || fs.hostKeys[1] != "SHA256:def" {
		t.Errorf("%+v %v", fs, err)
	}
	for _, bad := range []string{"http://127.0.0.1:21", "ftp://u:pw@127.0.0.1:21", "ftp://127.0.0.1:21/dir", "ftp://127.0.0.1:21?hostKey=SHA256%3Aabc", "ftp://:21"} {
		if _, err := parseFileServer(bad, "ftp"); err == nil || strings.Contains(err.Error(), "pw") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
