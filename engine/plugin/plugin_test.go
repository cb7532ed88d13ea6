package plugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector/file/sftp"
	"github.com/openfsb/fsb/engine/connector/file/sftp/sftptest"
	"github.com/openfsb/fsb/engine/plugin"
	"github.com/openfsb/fsb/sdk/connector"
	"github.com/openfsb/fsb/sdk/connector/connectortest"
)

// The test binary is its own connector: run with this variable (the only
// one it gets, since the host environment is not inherited) it serves.
const serveVar = "FSB_PLUGIN_TEST_SERVE=1"

func TestMain(m *testing.M) {
	if os.Getenv("FSB_PLUGIN_TEST_SERVE") == "1" {
		connector.Serve("plugin-test", "0.0.1", sftp.Driver{}, memDriver{})
		return
	}
	os.Exit(m.Run())
}

// memDriver serves files from its configuration, plus a few that misbehave.
type memDriver struct{}

func (memDriver) Protocol() string { return "mem" }

func (memDriver) Open(_ context.Context, cfg []byte) (connector.Store, error) {
	var files map[string]string
	if err := json.Unmarshal(cfg, &files); err != nil {
		return nil, fmt.Errorf("%w: %v", connector.ErrConfig, err)
	}
	return memStore(files), nil
}

type memStore map[string]string

func (m memStore) List(context.Context, string) ([]connector.FileInfo, error) {
	var out []connector.FileInfo
	for name, s := range m {
		out = append(out, connector.FileInfo{Name: name, Size: int64(len(s))})
	}
	return out, nil
}

func (m memStore) Open(ctx context.Context, name string) (io.ReadCloser, connector.FileInfo, error) {
	switch name {
	case "crash":
		os.Exit(7)
	case "hang":
		select {} // ignores its context: only the host's deadline ends the call
	case "env":
		s := strings.Join(os.Environ(), "\n")
		return io.NopCloser(strings.NewReader(s)), connector.FileInfo{Name: name, Size: int64(len(s))}, nil
	}
	s, ok := m[name]
	if !ok {
		return nil, connector.FileInfo{}, fmt.Errorf("%w: %s", connector.ErrNotFound, name)
	}
	return io.NopCloser(strings.NewReader(s)), connector.FileInfo{Name: name, Size: int64(len(s))}, nil
}

func (memStore) Check(context.Context) error { return nil }
func (memStore) Close() error                { return nil }

func start(t *testing.T, tune func(*plugin.Config)) *plugin.Supervisor {
	t.Helper()
	cfg, err := plugin.Self("test-connector")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Env = []string{serveVar}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		cfg.Logger = slog.Default()
	}
	if tune != nil {
		tune(&cfg)
	}
	s, err := plugin.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fetch(ctx context.Context, e *plugin.Endpoint, name string) (string, error) {
	rc, _, err := e.Fetch(ctx, name, 1<<20)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

func timeout(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	time.AfterFunc(d, cancel)
	return ctx
}

func TestChecksumRefused(t *testing.T) {
	cfg, err := plugin.Self("bad")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Checksum = strings.Repeat("00", 32)
	cfg.Env = []string{serveVar}
	if s, err := plugin.Start(context.Background(), cfg); err == nil {
		s.Close()
		t.Fatal("a connector with a wrong checksum was started")
	} else if !strings.Contains(err.Error(), "checksums did not match") {
		t.Errorf("error: %v", err)
	}
	cfg.Checksum = "not hex"
	if _, err := plugin.Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("malformed checksum: %v", err)
	}
}

func TestEnvironmentNotInherited(t *testing.T) {
	t.Setenv("FSB_TEST_HOST_SECRET", "do-not-leak")
	s := start(t, nil)
	e := s.Endpoint("mem", []byte(`{}`))
	env, err := fetch(timeout(10*time.Second), e, "env")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(env, "do-not-leak") || strings.Contains(env, "PATH=") {
		t.Errorf("the connector inherited the host's environment:\n%s", env)
	}
	if !strings.Contains(env, serveVar) || !strings.Contains(env, "PLUGIN_CLIENT_CERT=") {
		t.Errorf("missing the configured variable or the mTLS certificate:\n%s", env)
	}
	info, err := s.Info(timeout(5 * time.Second))
	if err != nil || info.Name != "plugin-test" || len(info.Protocols) != 2 {
		t.Errorf("info %+v %v", info, err)
	}
}

func TestSFTPThroughProcess(t *testing.T) {
	dir := t.TempDir()
	connectortest.Populate(t, dir)
	srv, err := sftptest.Start(sftptest.Config{Dir: dir, User: "fsb", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s := start(t, nil)
	cfg, _ := json.Marshal(sftp.Config{Host: "127.0.0.1", Port: srv.Port(), User: "fsb", Password: "pw", HostKeys: []string{srv.HostKey}})
	e := s.Endpoint("sftp", cfg)
	ctx := timeout(20 * time.Second)
	files, err := e.List(ctx, "")
	if err != nil || len(files) != 3 {
		t.Fatalf("list: %v %v", files, err)
	}
	got, err := fetch(ctx, e, "big.bin")
	if err != nil || got != string(connectortest.Files["big.bin"]) {
		t.Fatalf("fetch big.bin: %d bytes, %v", len(got), err)
	}
	if _, err := fetch(ctx, e, "../x"); !errors.Is(err, connector.ErrOutsideBase) {
		t.Errorf("fetch ../x: %v", err)
	}
	if _, err := fetch(ctx, e, "missing"); !errors.Is(err, connector.ErrNotFound) {
		t.Errorf("fetch missing: %v", err)
	}
	// Refused before a byte is sent.
	if _, _, err := e.Fetch(ctx, "big.bin", 1000); !errors.Is(err, connector.ErrTooLarge) {
		t.Errorf("fetch over the limit: %v", err)
	}
	bad := s.Endpoint("sftp", []byte(`{"host":"127.0.0.1"}`))
	if err := bad.Open(ctx); !errors.Is(err, connector.ErrConfig) {
		t.Errorf("bad config: %v", err)
	}
	if err := s.Endpoint("gopher", nil).Open(ctx); !errors.Is(err, connector.ErrConfig) {
		t.Errorf("unknown protocol: %v", err)
	}
}

// TestKilledMidRun: the process is killed while a file streams; the read
// fails at once with a clear error, and the next call succeeds on a new
// process.
func TestKilledMidRun(t *testing.T) {
	dir := t.TempDir()
	connectortest.Populate(t, dir)
	srv, err := sftptest.Start(sftptest.Config{Dir: dir, User: "fsb", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s := start(t, nil)
	cfg, _ := json.Marshal(sftp.Config{Host: "127.0.0.1", Port: srv.Port(), User: "fsb", Password: "pw", HostKeys: []string{srv.HostKey}})
	e := s.Endpoint("sftp", cfg)
	rc, _, err := e.Fetch(timeout(20*time.Second), "big.bin", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	pid := s.Stats().PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	_, err = io.Copy(io.Discard, rc)
	// The first 64 KiB chunks may already be buffered; what matters is
	// that the read ends, with an error, promptly.
	if err == nil {
		t.Fatal("reading from a killed connector succeeded")
	}
	if !errors.Is(err, connector.ErrPluginDown) || !strings.Contains(err.Error(), "restarted") {
		t.Errorf("error is not the clear one: %v", err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("the failed read took %v", d)
	}
	got, err := fetch(timeout(20*time.Second), e, "a.csv")
	if err != nil || got != string(connectortest.Files["a.csv"]) {
		t.Fatalf("the call after the restart: %q, %v", got, err)
	}
	st := s.Stats()
	if st.Starts != 2 || st.Failures != 1 || st.PID == pid || st.State != plugin.StateRunning {
		t.Errorf("stats after one restart: %+v", st)
	}
}

// TestCrashDuringCall: the connector dies inside a call: that call fails
// with ErrPluginDown, promptly, and the next succeeds.
func TestCrashDuringCall(t *testing.T) {
	s := start(t, nil)
	e := s.Endpoint("mem", []byte(`{"a.txt":"hello"}`))
	begin := time.Now()
	if _, err := fetch(timeout(20*time.Second), e, "crash"); !errors.Is(err, connector.ErrPluginDown) {
		t.Fatalf("crash: %v", err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("the crashed call took %v", d)
	}
	if got, err := fetch(timeout(20*time.Second), e, "a.txt"); err != nil || got != "hello" {
		t.Fatalf("after the crash: %q %v", got, err)
	}
}

// TestHangEndsAtDeadline: a connector that never answers cannot hold a
// call past its deadline.
func TestHangEndsAtDeadline(t *testing.T) {
	s := start(t, nil)
	e := s.Endpoint("mem", []byte(`{}`))
	begin := time.Now()
	_, err := fetch(timeout(300*time.Millisecond), e, "hang")
	if err == nil {
		t.Fatal("no error")
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("a hung call lasted %v (deadline 300ms): %v", d, err)
	}
	if got, err := fetch(timeout(5*time.Second), e, "env"); err != nil || got == "" {
		t.Errorf("after a hung call: %v", err)
	}
}

// TestBackoff: while the supervisor waits out a backoff longer than a
// call's deadline, the call fails at once saying so; a call with time to
// wait gets the restarted process.
func TestBackoff(t *testing.T) {
	s := start(t, func(c *plugin.Config) { c.MinBackoff = 1500 * time.Millisecond })
	e := s.Endpoint("mem", []byte(`{"a":"b"}`))
	syscall.Kill(s.Stats().PID, syscall.SIGKILL)
	for s.Stats().State != plugin.StateRestarting {
		time.Sleep(10 * time.Millisecond)
	}
	begin := time.Now()
	_, err := fetch(timeout(200*time.Millisecond), e, "a")
	if !errors.Is(err, connector.ErrPluginDown) || !strings.Contains(err.Error(), "restarting") {
		t.Errorf("during backoff: %v", err)
	}
	if d := time.Since(begin); d > 100*time.Millisecond {
		t.Errorf("the refused call waited %v", d)
	}
	if got, err := fetch(timeout(20*time.Second), e, "a"); err != nil || got != "b" {
		t.Errorf("after the backoff: %q %v", got, err)
	}
}

func TestClose(t *testing.T) {
	s := start(t, nil)
	pid := s.Stats().PID
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("process %d still runs after Close", pid)
	}
	_, err := fetch(timeout(time.Second), s.Endpoint("mem", []byte(`{}`)), "x")
	if !errors.Is(err, plugin.ErrClosed) {
		t.Errorf("call after Close: %v", err)
	}
}
