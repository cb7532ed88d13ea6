// Package sftp is the SFTP transport of file sources, as a driver of the
// native-connector SDK (github.com/openfsb/fsb/sdk/connector): password or
// key authentication, the server's host key pinned by its SHA-256
// fingerprint (an unknown key is refused, there is no trust on first use),
// every path confined to a base directory, links resolved by the server
// and checked against it too. It runs in the connector process (fsb
// connector), never in the engine, and knows nothing of flows.
package sftp

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openfsb/fsb/sdk/connector"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Config is one SFTP endpoint (JSON on the wire; secrets already read by
// the host).
type Config struct {
	Host string `json:"host"`
	Port int    `json:"port"` // default 22
	User string `json:"user"`
	// Password, or PrivateKey (PEM, OpenSSH or PKCS#8, with Passphrase
	// when it is encrypted), or both (key tried first).
	Password   string `json:"password"`
	PrivateKey string `json:"privateKey"`
	Passphrase string `json:"passphrase"`
	// HostKeys are the SHA-256 fingerprints the server's host key may have,
	// as `ssh-keygen -lf` prints them: "SHA256:base64". Required.
	HostKeys []string `json:"hostKeys"`
	// BaseDir confines every path (default: the login directory).
	BaseDir string `json:"baseDir"`
	// Timeout bounds connecting and each operation when the call's
	// context has no earlier deadline (default 10s).
	Timeout time.Duration `json:"timeout"`
}

// Driver speaks SFTP.
type Driver struct{}

// Protocol is "sftp".
func (Driver) Protocol() string { return "sftp" }

// Open checks the configuration; it connects on first use.
func (Driver) Open(_ context.Context, raw []byte) (connector.Store, error) {
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("%w: sftp: %v", connector.ErrConfig, err)
	}
	return New(cfg)
}

// New returns a store for cfg.
func New(cfg Config) (*Store, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: sftp: "+format, append([]any{connector.ErrConfig}, a...)...)
	}
	switch {
	case cfg.Host == "":
		return nil, bad("no host")
	case cfg.User == "":
		return nil, bad("no user")
	case cfg.Password == "" && cfg.PrivateKey == "":
		return nil, bad("neither password nor privateKey")
	case len(cfg.HostKeys) == 0:
		return nil, bad("no hostKeys: pin the server's host key fingerprint (ssh-keygen -lf)")
	case cfg.Port < 0 || cfg.Port > 65535:
		return nil, bad("port %d", cfg.Port)
	}
	for _, k := range cfg.HostKeys {
		if !strings.HasPrefix(k, "SHA256:") {
			return nil, bad("host key %q is not a SHA256: fingerprint", k)
		}
	}
	if cfg.Port == 0 {
		cfg.Port = 22
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	var auth []ssh.AuthMethod
	if cfg.PrivateKey != "" {
		var signer ssh.Signer
		var err error
		if cfg.Passphrase != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(cfg.PrivateKey), []byte(cfg.Passphrase))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(cfg.PrivateKey))
		}
		if err != nil {
			return nil, bad("privateKey: %v", err)
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if cfg.Password != "" {
		auth = append(auth, ssh.Password(cfg.Password))
	}
	s := &Store{cfg: cfg}
	s.ssh = &ssh.ClientConfig{
		User:            cfg.User,
		Auth:            auth,
		HostKeyCallback: s.checkHostKey,
		Timeout:         cfg.Timeout,
	}
	return s, nil
}

// Store is one SFTP endpoint over one SSH connection, opened on first use
// and again after it breaks.
type Store struct {
	cfg Config
	ssh *ssh.ClientConfig

	mu   sync.Mutex
	sess *session
}

// session is one SSH connection with its SFTP client.
type session struct {
	ssh  *ssh.Client
	sftp *sftp.Client
	base string // the base directory, resolved by the server
	done chan struct{}
}

func (s *session) close() {
	s.sftp.Close()
	s.ssh.Close()
}

func (s *Store) checkHostKey(_ string, _ net.Addr, key ssh.PublicKey) error {
	fp := ssh.FingerprintSHA256(key)
	for _, want := range s.cfg.HostKeys {
		if subtle.ConstantTimeCompare([]byte(fp), []byte(want)) == 1 {
			return nil
		}
	}
	return fmt.Errorf("%w: the server's %s key %s is not pinned", connector.ErrHostKey, key.Type(), fp)
}

func (s *Store) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(s.cfg.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(d) {
		return dl
	}
	return d
}

// session returns the live session, connecting when there is none.
func (s *Store) session(ctx context.Context) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess != nil {
		select {
		case <-s.sess.done:
			s.sess.close()
			s.sess = nil
		default:
			return s.sess, nil
		}
	}
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
	dctx, cancel := context.WithDeadline(ctx, s.deadline(ctx))
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, classify(ctx, "connect", err)
	}
	nc.SetDeadline(s.deadline(ctx))
	stop := context.AfterFunc(dctx, func() { nc.SetDeadline(time.Now()) })
	cc, chans, reqs, err := ssh.NewClientConn(nc, addr, s.ssh)
	stop()
	if err != nil {
		nc.Close()
		switch {
		case errors.Is(err, connector.ErrHostKey):
			return nil, fmt.Errorf("sftp connect: %w", err)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fmt.Errorf("%w: sftp login as %s: %v", connector.ErrAuth, s.cfg.User, err)
		}
		return nil, classify(ctx, "connect", err)
	}
	nc.SetDeadline(time.Time{})
	client := ssh.NewClient(cc, chans, reqs)
	sc, err := sftp.NewClient(client)
	if err != nil {
		client.Close()
		return nil, classify(ctx, "start sftp", err)
	}
	sess := &session{ssh: client, sftp: sc, done: make(chan struct{})}
	go func() { client.Wait(); close(sess.done) }()
	base := s.cfg.BaseDir
	if base == "" {
		base = "."
	}
	if sess.base, err = sc.RealPath(base); err != nil {
		sess.close()
		return nil, classify(ctx, "base directory", err)
	}
	s.sess = sess
	return sess, nil
}

// drop closes sess if it is still the current one (after a timeout: the
// connection may be stuck, and closing it frees every call waiting on it).
func (s *Store) drop(sess *session) {
	s.mu.Lock()
	if s.sess == sess {
		s.sess = nil
	}
	s.mu.Unlock()
	sess.close()
}

// do runs fn on the session, giving up when ctx or the timeout ends.
func (s *Store) do(ctx context.Context, op string, fn func(*session) error) error {
	sess, err := s.session(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithDeadline(ctx, s.deadline(ctx))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn(sess) }()
	select {
	case err := <-done:
		if err != nil {
			return classify(ctx, op, err)
		}
		return nil
	case <-ctx.Done():
		s.drop(sess)
		return fmt.Errorf("sftp %s: %w", op, ctx.Err())
	}
}

func classify(ctx context.Context, op string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: sftp %s", connector.ErrNotFound, op)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: sftp %s", connector.ErrPermission, op)
	}
	for _, k := range []error{connector.ErrNotFound, connector.ErrOutsideBase, connector.ErrAuth, connector.ErrHostKey,
		connector.ErrUnavailable, connector.ErrPermission, context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, k) {
			return err
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("sftp %s: %w", op, ctx.Err())
	}
	var se *sftp.StatusError
	if errors.As(err, &se) {
		return fmt.Errorf("sftp %s: %v", op, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("sftp %s: %w", op, context.DeadlineExceeded)
	}
	return fmt.Errorf("%w: sftp %s: %v", connector.ErrUnavailable, op, err)
}

// resolve confines name to the base directory, then asks the server where
// it really is (links followed) and checks that is inside too.
func resolve(sess *session, name string) (string, error) {
	full, err := connector.Confine(sess.base, name)
	if err != nil {
		return "", err
	}
	real, err := sess.sftp.RealPath(full)
	if err != nil {
		return "", err
	}
	if !connector.Within(sess.base, real) {
		return "", fmt.Errorf("%w: %q resolves outside it", connector.ErrOutsideBase, name)
	}
	return real, nil
}

// List lists the regular files of dir.
func (s *Store) List(ctx context.Context, dir string) ([]connector.FileInfo, error) {
	var out []connector.FileInfo
	err := s.do(ctx, "list", func(sess *session) error {
		full, err := resolve(sess, dir)
		if err != nil {
			return err
		}
		entries, err := sess.sftp.ReadDirContext(ctx, full)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Mode().IsRegular() {
				out = append(out, connector.FileInfo{Name: e.Name(), Size: e.Size(), ModTime: e.ModTime().UTC()})
			}
		}
		return nil
	})
	return out, err
}

// Open opens the file for reading.
func (s *Store) Open(ctx context.Context, name string) (io.ReadCloser, connector.FileInfo, error) {
	var f *sftp.File
	var info connector.FileInfo
	var sess *session
	err := s.do(ctx, "open", func(ss *session) error {
		sess = ss
		full, err := resolve(ss, name)
		if err != nil {
			return err
		}
		if full == ss.base {
			return fmt.Errorf("%w: no file name", connector.ErrNotFound)
		}
		fh, err := ss.sftp.Open(full)
		if err != nil {
			return err
		}
		st, err := fh.Stat()
		if err == nil && !st.Mode().IsRegular() {
			err = fmt.Errorf("%w: %s is not a regular file", connector.ErrNotFound, name)
		}
		if err != nil {
			fh.Close()
			return err
		}
		f = fh
		info = connector.FileInfo{Name: path.Base(full), Size: st.Size(), ModTime: st.ModTime().UTC()}
		return nil
	})
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, connector.FileInfo{}, err
	}
	r := &reader{s: s, sess: sess, f: f, ctx: ctx}
	r.stop = context.AfterFunc(ctx, func() { s.drop(sess) })
	return r, info, nil
}

// reader reads a remote file; when the call's context ends, the session
// is dropped, which fails a read stuck on it.
type reader struct {
	s    *Store
	sess *session
	f    *sftp.File
	ctx  context.Context
	stop func() bool
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	if err != nil && err != io.EOF {
		err = classify(r.ctx, "read", err)
	}
	return n, err
}

func (r *reader) Close() error {
	r.stop()
	return r.f.Close()
}

// Check connects and resolves the base directory.
func (s *Store) Check(ctx context.Context) error {
	return s.do(ctx, "check", func(sess *session) error {
		_, err := sess.sftp.Stat(sess.base)
		return err
	})
}

// Close closes the connection.
func (s *Store) Close() error {
	s.mu.Lock()
	sess := s.sess
	s.sess = nil
	s.mu.Unlock()
	if sess != nil {
		sess.close()
	}
	return nil
}

var _ connector.Driver = Driver{}
var _ connector.Store = (*Store)(nil)
