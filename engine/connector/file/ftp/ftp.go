// Package ftp is the FTP transport of file sources, as a driver of the
// native-connector SDK (github.com/openfsb/fsb/sdk/connector): plain FTP or
// explicit FTPS (AUTH TLS, then PROT P for data), passive mode only, every
// path confined to a base directory. It runs in the connector process
// (fsb connector), never in the engine, and knows nothing of flows.
package ftp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jlaffaye/ftp"
	"github.com/openfsb/fsb/sdk/connector"
)

// Config is one FTP endpoint (JSON on the wire; secrets already read by
// the host).
type Config struct {
	Host     string `json:"host"`
	Port     int    `json:"port"` // default 21
	User     string `json:"user"` // default "anonymous"
	Password string `json:"password"`
	// TLS is "" (plain FTP) or "explicit" (AUTH TLS on the control
	// connection, PROT P on data connections).
	TLS string `json:"tls"`
	// CAPEM is the PEM of the CAs that the server's certificate must chain
	// to; empty means the system roots.
	CAPEM      string `json:"caPem"`
	ServerName string `json:"serverName"` // default Host
	// BaseDir confines every path (default "/").
	BaseDir string `json:"baseDir"`
	// Timeout bounds connecting and each command when the call's context
	// has no earlier deadline (default 10s).
	Timeout time.Duration `json:"timeout"`
	// MaxConns bounds the connections to the server (default 4).
	MaxConns int `json:"maxConns"`
	// DisableEPSV uses PASV only (for servers or NATs that break EPSV).
	DisableEPSV bool `json:"disableEpsv"`
}

// Driver speaks FTP.
type Driver struct{}

// Protocol is "ftp".
func (Driver) Protocol() string { return "ftp" }

// Open checks the configuration; it connects on first use.
func (Driver) Open(_ context.Context, raw []byte) (connector.Store, error) {
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("%w: ftp: %v", connector.ErrConfig, err)
	}
	return New(cfg)
}

// New returns a store for cfg.
func New(cfg Config) (*Store, error) {
	if cfg.Host == "" {
		return nil, fmt.Errorf("%w: ftp: no host", connector.ErrConfig)
	}
	if cfg.Port == 0 {
		cfg.Port = 21
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("%w: ftp: port %d", connector.ErrConfig, cfg.Port)
	}
	if cfg.User == "" {
		cfg.User = "anonymous"
	}
	if cfg.BaseDir == "" {
		cfg.BaseDir = "/"
	}
	cfg.BaseDir = path.Clean("/" + cfg.BaseDir)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 4
	}
	s := &Store{cfg: cfg, sem: make(chan struct{}, cfg.MaxConns)}
	switch cfg.TLS {
	case "", "none":
	case "explicit":
		tc := &tls.Config{
			ServerName:         cmpOr(cfg.ServerName, cfg.Host),
			MinVersion:         tls.VersionTLS12,
			ClientSessionCache: tls.NewLRUClientSessionCache(16),
		}
		if cfg.CAPEM != "" {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(cfg.CAPEM)) {
				return nil, fmt.Errorf("%w: ftp: caPem holds no certificate", connector.ErrConfig)
			}
			tc.RootCAs = pool
		}
		s.tls = tc
	default:
		return nil, fmt.Errorf("%w: ftp: tls %q (want \"\" or \"explicit\")", connector.ErrConfig, cfg.TLS)
	}
	return s, nil
}

// Store is one FTP endpoint: a small pool of logged-in connections.
type Store struct {
	cfg  Config
	tls  *tls.Config
	sem  chan struct{} // one token per connection in use
	mu   sync.Mutex
	idle []*conn
}

// conn is a logged-in control connection and the sockets it dialed, so
// that a cancelled call can cut them.
type conn struct {
	c        *ftp.ServerConn
	mu       sync.Mutex
	socks    []net.Conn
	ctx      context.Context // of the call using it: data connections are dialed within it
	lastUsed time.Time
}

// use binds the connection to the call's context.
func (c *conn) use(ctx context.Context) {
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
}

func (c *conn) callCtx() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctx
}

func (c *conn) track(nc net.Conn) {
	c.mu.Lock()
	// Keep the control socket and the latest data socket.
	if len(c.socks) >= 2 {
		c.socks = c.socks[:1]
	}
	c.socks = append(c.socks, nc)
	c.mu.Unlock()
}

func (c *conn) deadline(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.socks {
		s.SetDeadline(t)
	}
}

func (c *conn) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.socks {
		s.Close()
	}
}

func (s *Store) addr() string { return net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)) }

// get takes a connection: an idle one that still answers, or a new one.
func (s *Store) get(ctx context.Context) (*conn, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for {
		s.mu.Lock()
		var c *conn
		if n := len(s.idle); n > 0 {
			c, s.idle = s.idle[n-1], s.idle[:n-1]
		}
		s.mu.Unlock()
		if c == nil {
			break
		}
		if time.Since(c.lastUsed) < 15*time.Second {
			return c, nil
		}
		c.use(ctx)
		c.deadline(s.opDeadline(ctx))
		if c.c.NoOp() == nil {
			return c, nil
		}
		c.cut()
	}
	c, err := s.dial(ctx)
	if err != nil {
		<-s.sem
		return nil, err
	}
	return c, nil
}

func (s *Store) opDeadline(ctx context.Context) time.Time {
	d := time.Now().Add(s.cfg.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(d) {
		return dl
	}
	return d
}

func (s *Store) dial(ctx context.Context) (*conn, error) {
	c := &conn{ctx: ctx}
	dl := s.opDeadline(ctx)
	first := true
	dialer := &net.Dialer{Timeout: s.cfg.Timeout}
	dialFunc := func(network, address string) (net.Conn, error) {
		// The connection outlives the call that dialed it: a data
		// connection is dialed within the call that uses it.
		ctx := c.callCtx()
		dctx, cancel := context.WithDeadline(ctx, s.opDeadline(ctx))
		defer cancel()
		nc, err := dialer.DialContext(dctx, network, address)
		if err != nil {
			return nil, err
		}
		nc.SetDeadline(s.opDeadline(ctx))
		if !first && s.tls != nil {
			// jlaffaye/ftp leaves data connections plain when a dial
			// function is set: wrap them ourselves (PROT P was sent).
			nc = tls.Client(nc, s.tls)
		}
		first = false
		c.track(nc)
		return nc, nil
	}
	opts := []ftp.DialOption{
		ftp.DialWithContext(ctx),
		ftp.DialWithTimeout(s.cfg.Timeout),
		ftp.DialWithDialFunc(dialFunc),
		ftp.DialWithDisabledEPSV(s.cfg.DisableEPSV),
		ftp.DialWithShutTimeout(s.cfg.Timeout),
	}
	if s.tls != nil {
		opts = append(opts, ftp.DialWithExplicitTLS(s.tls))
	}
	stop := context.AfterFunc(ctx, c.cut)
	defer stop()
	fc, err := ftp.Dial(s.addr(), opts...)
	if err != nil {
		return nil, classify(ctx, "connect", err)
	}
	c.c = fc
	c.deadline(dl)
	if err := fc.Login(s.cfg.User, s.cfg.Password); err != nil {
		fc.Quit()
		var te *textproto.Error
		if errors.As(err, &te) && (te.Code == ftp.StatusNotLoggedIn || te.Code == ftp.StatusUserOK) {
			return nil, fmt.Errorf("%w: ftp login as %s: %v", connector.ErrAuth, s.cfg.User, err)
		}
		return nil, classify(ctx, "login", err)
	}
	return c, nil
}

// put gives a connection back; a failed one is closed.
func (s *Store) put(c *conn, failed bool) {
	defer func() { <-s.sem }()
	if failed {
		c.cut()
		return
	}
	c.lastUsed = time.Now()
	s.mu.Lock()
	s.idle = append(s.idle, c)
	s.mu.Unlock()
}

// with runs fn on a connection, cutting it if ctx ends.
func (s *Store) with(ctx context.Context, fn func(*ftp.ServerConn) error) error {
	c, err := s.get(ctx)
	if err != nil {
		return err
	}
	c.use(ctx)
	c.deadline(s.opDeadline(ctx))
	stop := context.AfterFunc(ctx, c.cut)
	err = fn(c.c)
	broken := !stop() || (err != nil && !isReply(err))
	s.put(c, broken)
	return err
}

// classified: err already carries a sentinel (or the context's end).
func classified(err error) bool {
	for _, k := range []error{connector.ErrNotFound, connector.ErrOutsideBase, connector.ErrAuth,
		connector.ErrUnavailable, connector.ErrPermission, context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

func isReply(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te)
}

// classify maps an FTP failure to a connector sentinel.
func classify(ctx context.Context, op string, err error) error {
	if classified(err) {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("ftp %s: %w", op, ctx.Err())
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		switch te.Code {
		case ftp.StatusFileUnavailable, ftp.StatusBadFileName:
			return fmt.Errorf("%w: ftp %s: %v", connector.ErrNotFound, op, err)
		case ftp.StatusBadArguments:
			if op != "list" {
				break
			}
			// pyftpdlib answers a missing directory with 501.
			return fmt.Errorf("%w: ftp %s: %v", connector.ErrNotFound, op, err)
		case ftp.StatusNotLoggedIn:
			return fmt.Errorf("%w: ftp %s: %v", connector.ErrAuth, op, err)
		case ftp.StatusNotAvailable, ftp.StatusHostUnavailable:
			return fmt.Errorf("%w: ftp %s: %v", connector.ErrUnavailable, op, err)
		}
		return fmt.Errorf("ftp %s: %v", op, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("ftp %s: %w", op, context.DeadlineExceeded)
	}
	return fmt.Errorf("%w: ftp %s: %v", connector.ErrUnavailable, op, err)
}

// List lists the regular files of dir.
func (s *Store) List(ctx context.Context, dir string) ([]connector.FileInfo, error) {
	full, err := connector.Confine(s.cfg.BaseDir, dir)
	if err != nil {
		return nil, err
	}
	var out []connector.FileInfo
	err = s.with(ctx, func(c *ftp.ServerConn) error {
		entries, err := c.List(full)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Type != ftp.EntryTypeFile || e.Name == "" || strings.ContainsAny(e.Name, "/\\") {
				continue
			}
			out = append(out, connector.FileInfo{Name: e.Name, Size: int64(e.Size), ModTime: e.Time.UTC()})
		}
		return nil
	})
	if err != nil {
		return nil, classify(ctx, "list", err)
	}
	return out, nil
}

// Open stats the file and opens it for reading. The connection stays
// taken until the reader is closed.
func (s *Store) Open(ctx context.Context, name string) (io.ReadCloser, connector.FileInfo, error) {
	full, err := connector.Confine(s.cfg.BaseDir, name)
	if err != nil {
		return nil, connector.FileInfo{}, err
	}
	if full == s.cfg.BaseDir {
		return nil, connector.FileInfo{}, fmt.Errorf("%w: no file name", connector.ErrNotFound)
	}
	c, err := s.get(ctx)
	if err != nil {
		return nil, connector.FileInfo{}, err
	}
	c.use(ctx)
	c.deadline(s.opDeadline(ctx))
	stop := context.AfterFunc(ctx, c.cut)
	info, err := stat(c.c, full)
	if err != nil {
		stop()
		s.put(c, !isReply(err))
		return nil, connector.FileInfo{}, classify(ctx, "stat", err)
	}
	resp, err := c.c.Retr(full)
	if err != nil {
		stop()
		s.put(c, !isReply(err))
		return nil, connector.FileInfo{}, classify(ctx, "retr", err)
	}
	return &reader{s: s, c: c, resp: resp, stop: stop, ctx: ctx}, info, nil
}

// stat reads a file's size and time: MLST where the server has it, SIZE
// and MDTM otherwise.
func stat(c *ftp.ServerConn, full string) (connector.FileInfo, error) {
	info := connector.FileInfo{Name: path.Base(full)}
	e, err := c.GetEntry(full)
	if err == nil {
		if e.Type != ftp.EntryTypeFile {
			return info, &textproto.Error{Code: ftp.StatusFileUnavailable, Msg: "not a regular file"}
		}
		info.Size, info.ModTime = int64(e.Size), e.Time.UTC()
		return info, nil
	}
	var te *textproto.Error
	switch {
	case errors.As(err, &te) && (te.Code == ftp.StatusFileUnavailable || te.Code == ftp.StatusBadFileName):
		return info, err
	case !isReply(err) && err.Error() != "invalid response":
		return info, err // the connection failed
	}
	// No MLST: SIZE and MDTM.
	size, err := c.FileSize(full)
	if err != nil {
		return info, err
	}
	info.Size = size
	if c.IsGetTimeSupported() {
		if t, err := c.GetTime(full); err == nil {
			info.ModTime = t.UTC()
		}
	}
	return info, nil
}

type reader struct {
	s      *Store
	c      *conn
	resp   *ftp.Response
	stop   func() bool
	ctx    context.Context
	once   sync.Once
	failed bool
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.resp.Read(p)
	if err != nil && err != io.EOF {
		r.failed = true
		err = classify(r.ctx, "read", err)
	}
	return n, err
}

func (r *reader) Close() error {
	var err error
	r.once.Do(func() {
		err = r.resp.Close()
		live := r.stop()
		r.s.put(r.c, r.failed || err != nil || !live)
	})
	return err
}

// Check connects and logs in.
func (s *Store) Check(ctx context.Context) error {
	if err := s.with(ctx, func(c *ftp.ServerConn) error { return c.NoOp() }); err != nil {
		return classify(ctx, "check", err)
	}
	return nil
}

// Close closes the idle connections.
func (s *Store) Close() error {
	s.mu.Lock()
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	for _, c := range idle {
		c.c.Quit()
		c.cut()
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

var _ connector.Driver = Driver{}
var _ connector.Store = (*Store)(nil)
