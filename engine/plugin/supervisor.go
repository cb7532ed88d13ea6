// Package plugin hosts native connectors: processes that run transports
// needing sockets the WebAssembly sandbox must not have (FTP, SFTP). It
// launches a connector with hashicorp/go-plugin — executable pinned by its
// SHA-256, no inherited environment, gRPC over automatic mutual TLS — and
// supervises it: a process that dies is restarted with exponential
// backoff, a call caught by the death fails at once with a clear error,
// calls made while it restarts wait for it within their deadline, and
// Close stops it. README.md beside this file states the guarantees.
//
// The package owns processes and the wire (github.com/openfsb/fsb/sdk/connector);
// it must not know about flows, sources or what a file means.
package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/openfsb/fsb/sdk/connector"
	"google.golang.org/grpc"
)

// Defaults of Config.
const (
	DefaultStartTimeout = 10 * time.Second
	DefaultMinBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultStableAfter  = 30 * time.Second
	// pollInterval is how often the supervisor looks whether the process
	// is still alive (go-plugin has no exit notification).
	pollInterval = 100 * time.Millisecond
)

// ErrClosed: the supervisor was closed.
var ErrClosed = errors.New("connector supervisor closed")

// Config describes one connector process.
type Config struct {
	// Name names the connector in logs and errors ("file-transports").
	Name string
	// Path is the executable; Args its arguments (not the program name).
	Path string
	Args []string
	// Checksum is the executable's SHA-256, hex ("sha256:" prefix
	// allowed). go-plugin refuses to launch a file that does not match,
	// before every start. Required: see Checksum and Self.
	Checksum string
	// Env is the whole environment of the process: the host's is never
	// inherited (secrets reach a connector through Endpoint, over the
	// authenticated channel). go-plugin adds its handshake variables.
	Env []string
	// StartTimeout bounds one launch, up to the handshake (default 10s).
	StartTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a restart; it
	// doubles after each failure (default 100ms, 30s) and starts over
	// once the process has stayed up StableAfter (default 30s).
	MinBackoff, MaxBackoff, StableAfter time.Duration
	// Logger receives the supervisor's events and the process's log
	// lines (default slog.Default()).
	Logger *slog.Logger
}

// Self returns a Config that runs this executable with args, its checksum
// taken now: if the binary on disk is replaced later (an upgrade), the
// connector refuses to start instead of running other code.
func Self(name string, args ...string) (Config, error) {
	exe, err := os.Executable()
	if err != nil {
		return Config{}, err
	}
	sum, err := Checksum(exe)
	if err != nil {
		return Config{}, err
	}
	return Config{Name: name, Path: exe, Args: args, Checksum: sum}, nil
}

// Checksum returns the SHA-256 of the file at path, hex.
func Checksum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// State is what a supervisor is doing.
type State string

// States.
const (
	StateStarting   State = "starting"
	StateRunning    State = "running"
	StateRestarting State = "restarting" // waiting out the backoff
	StateClosed     State = "closed"
)

// Stats describe a supervisor, for health and inspection.
type Stats struct {
	State    State
	PID      int // of the running process, 0 otherwise
	Starts   int // launches that succeeded
	Failures int // launches that failed and processes that died
	LastErr  string
	Info     connector.Info // as the running process described itself
}

// Supervisor runs one connector process and restarts it when it dies.
// Lock order: Supervisor.mu, then gen.mu; never the reverse.
type Supervisor struct {
	cfg      Config
	checksum []byte
	log      *slog.Logger

	mu        sync.Mutex
	cur       *gen          // nil while not running
	ready     chan struct{} // closed when cur is set or the supervisor closes
	nextStart time.Time     // while restarting
	stats     Stats
	closed    bool

	kick chan struct{} // a call saw the process fail: look now
	quit chan struct{}
	done chan struct{}
}

// gen is one process: one generation of the connector.
type gen struct {
	client  *goplugin.Client
	rpc     *connector.Client
	pid     int
	started time.Time

	dead atomic.Bool // a call saw it fail: it is replaced even if it still runs

	mu     sync.Mutex
	opened map[string]bool // endpoint ids opened in this process
}

// Start launches the connector and supervises it until Close. The first
// launch happens before Start returns: a wrong checksum, a missing
// executable or a process that does not answer the handshake is an error
// here, not a restart loop.
func Start(ctx context.Context, cfg Config) (*Supervisor, error) {
	if cfg.Name == "" || cfg.Path == "" {
		return nil, errors.New("plugin: a connector needs a name and a path")
	}
	sum, err := hex.DecodeString(strings.TrimPrefix(cfg.Checksum, "sha256:"))
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("plugin %s: checksum must be a hex SHA-256", cfg.Name)
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = DefaultStableAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Supervisor{
		cfg: cfg, checksum: sum, log: cfg.Logger.With("connector", cfg.Name),
		ready: make(chan struct{}), kick: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{}),
	}
	s.stats.State = StateStarting
	g, err := s.spawn(ctx)
	if err != nil {
		return nil, err
	}
	s.publish(g)
	go s.watch(g)
	return s, nil
}

// spawn launches one process and checks it answers.
func (s *Supervisor) spawn(ctx context.Context) (*gen, error) {
	cmd := exec.Command(s.cfg.Path, s.cfg.Args...)
	cmd.Env = append([]string{}, s.cfg.Env...)
	logw := &logWriter{log: s.log}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  connector.Handshake,
		Plugins:          goplugin.PluginSet{connector.PluginName: &connector.Plugin{}},
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		// A fresh hash each launch: SecureConfig.Check writes into it,
		// and a reused one would sum two files together.
		SecureConfig: &goplugin.SecureConfig{Checksum: s.checksum, Hash: sha256.New()},
		SkipHostEnv:  true,
		AutoMTLS:     true,
		StartTimeout: s.cfg.StartTimeout,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "plugin", Output: logw, Level: hclog.Info, JSONFormat: true,
		}),
		Stderr:          logw,
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16 << 20))},
	})
	fail := func(err error) (*gen, error) {
		client.Kill()
		return nil, fmt.Errorf("plugin %s: start: %w", s.cfg.Name, err)
	}
	proto, err := client.Client()
	if err != nil {
		return fail(err)
	}
	raw, err := proto.Dispense(connector.PluginName)
	if err != nil {
		return fail(err)
	}
	rpc, ok := raw.(*connector.Client)
	if !ok {
		return fail(fmt.Errorf("dispensed %T", raw))
	}
	ictx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	info, err := rpc.Info(ictx)
	if err != nil {
		return fail(err)
	}
	g := &gen{client: client, rpc: rpc, pid: info.PID, started: time.Now(), opened: map[string]bool{}}
	s.mu.Lock()
	s.stats.Info = info
	s.mu.Unlock()
	s.log.Info("connector started", "pid", info.PID, "protocols", info.Protocols)
	return g, nil
}

func (s *Supervisor) publish(g *gen) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = g
	s.stats.State, s.stats.PID = StateRunning, g.pid
	s.stats.Starts++
	close(s.ready)
}

// watch waits for the process g to die, then restarts it with backoff,
// until Close.
func (s *Supervisor) watch(g *gen) {
	defer close(s.done)
	failures := 0
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		// Running: look at the process every tick, or when a call says
		// it failed.
		for !g.client.Exited() && !g.dead.Load() {
			select {
			case <-s.quit:
				g.client.Kill()
				return
			case <-tick.C:
			case <-s.kick:
			}
		}
		lived := time.Since(g.started)
		s.down(g)
		s.log.Error("connector process failed", "pid", g.pid, "after", lived.Round(time.Millisecond), "exited", g.client.Exited())
		g.client.Kill() // reaps and cleans up (and ends one that broke its connection)
		if lived >= s.cfg.StableAfter {
			failures = 0
		}
		for {
			failures++
			wait := backoff(s.cfg.MinBackoff, s.cfg.MaxBackoff, failures)
			s.mu.Lock()
			s.stats.State, s.stats.PID = StateRestarting, 0
			s.stats.Failures++
			s.nextStart = time.Now().Add(wait)
			s.mu.Unlock()
			select {
			case <-s.quit:
				return
			case <-time.After(wait):
			}
			s.mu.Lock()
			s.stats.State = StateStarting
			s.mu.Unlock()
			ng, err := s.spawn(context.Background())
			if err == nil {
				g = ng
				s.publish(g)
				break
			}
			s.log.Error("connector restart failed", "error", err, "attempt", failures)
			s.mu.Lock()
			s.stats.LastErr = err.Error()
			s.mu.Unlock()
		}
	}
}

// backoff is min·2^(n-1), capped.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// acquire returns the running process, waiting for a restart while ctx
// allows. It never waits past ctx's deadline, nor when the restart is
// due after it.
func (s *Supervisor) acquire(ctx context.Context) (*gen, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.StartTimeout+s.cfg.MaxBackoff)
		defer cancel()
	}
	for {
		s.mu.Lock()
		g, ready, next, closed, lastErr := s.cur, s.ready, s.nextStart, s.closed, s.stats.LastErr
		s.mu.Unlock()
		switch {
		case closed:
			return nil, fmt.Errorf("%w: %w", connector.ErrPluginDown, ErrClosed)
		case g != nil:
			return g, nil
		}
		if dl, ok := ctx.Deadline(); ok && next.After(dl) {
			msg := fmt.Sprintf("connector %s is restarting (next attempt in %s)", s.cfg.Name, time.Until(next).Round(time.Millisecond))
			if lastErr != "" {
				msg += "; last failure: " + lastErr
			}
			return nil, fmt.Errorf("%w: %s", connector.ErrPluginDown, msg)
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: connector %s did not come back before the deadline: %w", connector.ErrPluginDown, s.cfg.Name, ctx.Err())
		}
	}
}

// down takes g out of service: calls from now on wait for its successor.
func (s *Supervisor) down(g *gen) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == g && !s.closed {
		s.cur = nil
		s.ready = make(chan struct{})
		s.stats.State = StateRestarting
	}
}

// retire is called when a call on g failed at the transport: g is taken
// out of service at once, so that the next call waits for a new process
// rather than failing on the broken one, and the watcher replaces it.
func (s *Supervisor) retire(g *gen) {
	g.dead.Store(true)
	s.down(g)
	s.suspect()
}

// suspect tells the watcher to look at the process now.
func (s *Supervisor) suspect() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Stats returns what the supervisor is doing.
func (s *Supervisor) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Info asks the running process to describe itself.
func (s *Supervisor) Info(ctx context.Context) (connector.Info, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	g, err := s.acquire(ctx)
	if err != nil {
		return connector.Info{}, err
	}
	return g.rpc.Info(ctx)
}

// Close stops the process (gracefully, then by force after 2s) and ends
// supervision; calls waiting for a restart fail with ErrClosed.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.stats.State, s.stats.PID = StateClosed, 0
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	s.log.Info("connector stopped")
	return nil
}

// bound gives a context that only a deadline ends a Done channel, so that
// waits on it end at the deadline (the flow executor passes such contexts).
func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && ctx.Done() == nil {
		return context.WithDeadline(context.Background(), dl)
	}
	return context.WithCancel(ctx)
}

// logWriter folds the process's log lines into the host's log.
type logWriter struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimSpace(string(w.buf[:i])); line != "" {
			w.log.Info("connector log", "line", line)
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a line without end: do not grow without bound
		w.log.Info("connector log", "line", string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}
