// Package sftptest runs an in-process SFTP server on loopback for tests
// and the demo: github.com/pkg/sftp's request server over
// golang.org/x/crypto/ssh, serving one directory read-only (through
// os.Root, so neither ".." nor a link leaves it), with password and
// public-key logins and a fresh ed25519 host key.
package sftptest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"sync"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Config says what to serve and who may log in.
type Config struct {
	Dir      string // served read-only as "/"
	User     string
	Password string          // "" disables password logins
	Keys     []ssh.PublicKey // authorized keys
	Addr     string          // default 127.0.0.1:0
}

// Server is a running SFTP server.
type Server struct {
	Addr    string // host:port it listens on
	HostKey string // its host key's SHA256 fingerprint, as ssh-keygen -lf prints it
	Signer  ssh.Signer

	ln    net.Listener
	root  *os.Root
	cfg   *ssh.ServerConfig
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Start listens and serves until Close.
func Start(c Config) (*Server, error) {
	root, err := os.OpenRoot(c.Dir)
	if err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	sc := &ssh.ServerConfig{}
	if c.Password != "" {
		sc.PasswordCallback = func(m ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if m.User() == c.User && subtle.ConstantTimeCompare(pw, []byte(c.Password)) == 1 {
				return nil, nil
			}
			return nil, errors.New("wrong user or password")
		}
	}
	if len(c.Keys) > 0 {
		sc.PublicKeyCallback = func(m ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			for _, want := range c.Keys {
				if m.User() == c.User && subtle.ConstantTimeCompare(k.Marshal(), want.Marshal()) == 1 {
					return nil, nil
				}
			}
			return nil, errors.New("key not authorized")
		}
	}
	sc.AddHostKey(signer)
	addr := c.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		root.Close()
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String(), HostKey: ssh.FingerprintSHA256(signer.PublicKey()), Signer: signer,
		ln: ln, root: root, cfg: sc, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Port is the port the server listens on.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Close stops the server and cuts its connections.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.root.Close()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
			nc.Close()
		}()
	}
}

func (s *Server) serve(nc net.Conn) {
	_, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			return
		}
		go func() {
			for req := range creqs {
				ok := req.Type == "subsystem" && len(req.Payload) >= 4 && string(req.Payload[4:]) == "sftp"
				req.Reply(ok, nil)
				if ok {
					srv := sftp.NewRequestServer(ch, handlers(s.root))
					srv.Serve()
					srv.Close()
					ch.Close()
				}
			}
		}()
	}
}

// fsys serves a directory read-only.
type fsys struct{ root *os.Root }

func handlers(root *os.Root) sftp.Handlers {
	f := fsys{root}
	return sftp.Handlers{FileGet: f, FilePut: f, FileCmd: f, FileList: f}
}

func local(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return p[1:]
}

func (f fsys) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	return f.root.Open(local(r.Filepath))
}

func (f fsys) Filewrite(*sftp.Request) (io.WriterAt, error) {
	return nil, sftp.ErrSSHFxPermissionDenied
}

func (f fsys) Filecmd(*sftp.Request) error { return sftp.ErrSSHFxPermissionDenied }

func (f fsys) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	switch r.Method {
	case "List":
		d, err := f.root.Open(local(r.Filepath))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		entries, err := d.ReadDir(-1)
		if err != nil {
			return nil, err
		}
		var infos lister
		for _, e := range entries {
			if info, err := e.Info(); err == nil {
				infos = append(infos, info)
			}
		}
		return infos, nil
	case "Stat":
		info, err := f.root.Stat(local(r.Filepath))
		if err != nil {
			return nil, err
		}
		return lister{info}, nil
	case "Lstat":
		info, err := f.root.Lstat(local(r.Filepath))
		if err != nil {
			return nil, err
		}
		return lister{info}, nil
	}
	return nil, fmt.Errorf("%s: %w", r.Method, fs.ErrPermission)
}

type lister []os.FileInfo

func (l lister) ListAt(out []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(out, l[off:])
	if n+int(off) >= len(l) {
		return n, io.EOF
	}
	return n, nil
}
