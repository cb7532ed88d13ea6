package file_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/connector/file"
	"github.com/openfsb/fsb/engine/connector/file/ftp"
	"github.com/openfsb/fsb/engine/connector/file/ftp/ftptest"
	"github.com/openfsb/fsb/engine/connector/file/sftp"
	"github.com/openfsb/fsb/engine/connector/file/sftp/sftptest"
	"github.com/openfsb/fsb/engine/plugin"
	"github.com/openfsb/fsb/plugins/csv"
)

// supervisor starts this test binary as the connector process.
func supervisor(tb testing.TB) *plugin.Supervisor {
	tb.Helper()
	cfg, err := plugin.Self("file-test")
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Env = []string{serveVar}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := plugin.Start(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// dataDir holds in/people-1.csv.
func dataDir(tb testing.TB, content string) string {
	dir := tb.TempDir()
	os.MkdirAll(filepath.Join(dir, "in"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "in", "people-1.csv"), []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func sftpServer(tb testing.TB, dir string) *sftptest.Server {
	srv, err := sftptest.Start(sftptest.Config{Dir: dir, User: "fsb", Password: "pw"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	return srv
}

func lookupOps() map[string]file.Operation {
	return map[string]file.Operation{
		"byssin": {Kind: file.Lookup, Dir: "in", Pattern: "people-*.csv", Codec: csv.Native{}, CodecConfig: csvCfg, Keys: []string{"ssin"}},
		"list":   {Kind: file.List, Dir: "in"},
	}
}

// TestSFTPThroughProcess: a lookup over SFTP through the supervised
// connector process, surviving the process being killed between calls.
func TestSFTPThroughProcess(t *testing.T) {
	srv := sftpServer(t, dataDir(t, people))
	sup := supervisor(t)
	cfg, _ := json.Marshal(sftp.Config{Host: "127.0.0.1", Port: srv.Port(), User: "fsb", Password: "pw", HostKeys: []string{srv.HostKey}})
	c, err := file.New(file.Config{Source: "people", Store: sup.Endpoint("sftp", cfg), Cache: file.CacheConfig{TTL: -1}, Operations: lookupOps()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	status, body, err := call(t, c, "byssin", map[string]string{"ssin": "90010100123"})
	if err != nil || status != 200 || !strings.Contains(body, `"name":"Marie","city":"Liège"`) {
		t.Fatalf("lookup: %d %s %v", status, body, err)
	}
	syscall.Kill(sup.Stats().PID, syscall.SIGKILL)
	status, body, err = call(t, c, "byssin", map[string]string{"ssin": "85073003328"})
	if err != nil || status != 200 || !strings.Contains(body, `"Jan bis"`) {
		t.Fatalf("lookup after the process was killed: %d %s %v", status, body, err)
	}
	if st := sup.Stats(); st.Starts != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestFTPThroughProcess: the same over plain FTP and explicit FTPS
// (pyftpdlib), with a wrong password a clear error.
func TestFTPThroughProcess(t *testing.T) {
	dir := dataDir(t, people)
	sup := supervisor(t)
	for _, tls := range []bool{false, true} {
		srv := ftptest.Start(t, ftptest.Config{Dir: dir, User: "fsb", Password: "pw", TLS: tls})
		fc := ftp.Config{Host: srv.Host, Port: srv.Port, User: "fsb", Password: "pw"}
		if tls {
			fc.TLS, fc.CAPEM = "explicit", srv.CAPEM
		}
		cfg, _ := json.Marshal(fc)
		c, err := file.New(file.Config{Source: "people", Store: sup.Endpoint("ftp", cfg), Operations: lookupOps()})
		if err != nil {
			t.Fatal(err)
		}
		status, body, err := call(t, c, "byssin", map[string]string{"ssin": "90010100123"})
		if err != nil || status != 200 || !strings.Contains(body, `"Marie"`) {
			t.Fatalf("tls=%v: lookup: %d %s %v", tls, status, body, err)
		}
		if status, body, err := call(t, c, "list", nil); err != nil || !strings.Contains(body, `"people-1.csv"`) {
			t.Errorf("tls=%v: list: %d %s %v", tls, status, body, err)
		}
	}
	srv := ftptest.Start(t, ftptest.Config{Dir: dir, User: "fsb", Password: "pw"})
	cfg, _ := json.Marshal(ftp.Config{Host: srv.Host, Port: srv.Port, User: "fsb", Password: "wrong"})
	c, _ := file.New(file.Config{Source: "people", Store: sup.Endpoint("ftp", cfg), Operations: lookupOps()})
	_, _, err := call(t, c, "list", nil)
	if err == nil || !strings.Contains(err.Error(), "authentication with the file server failed") || strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("wrong password: %v", err)
	}
	var ce *connector.Error
	if !errorsAs(err, &ce) {
		t.Errorf("not a connector.Error: %T", err)
	}
	_ = time.Second
}
