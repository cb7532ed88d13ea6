// Package ftptest starts a real FTP server for tests: pyftpdlib, from
// Debian's python3-pyftpdlib (and python3-openssl for FTPS), on a free
// loopback port, serving one directory read-only. Without it a test is
// skipped, or fails when CI=true.
package ftptest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

//go:embed server.py
var script []byte

// Config says what to serve.
type Config struct {
	Dir            string
	User, Password string
	TLS            bool // explicit FTPS with a fresh self-signed certificate for 127.0.0.1
}

// Server is a running FTP server.
type Server struct {
	Host  string
	Port  int
	CAPEM string // the certificate to trust, with TLS
}

// Python returns a python3 that can import pyftpdlib (and, with tls,
// OpenSSL), or "".
func Python(tls bool) string {
	mods := "import pyftpdlib"
	if tls {
		mods += ", OpenSSL"
	}
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil && exec.Command(path, "-c", mods).Run() == nil {
			return path
		}
	}
	return ""
}

// Start starts a server that stops when the test ends. It skips the test
// when pyftpdlib is missing, and fails it instead under CI=true.
func Start(tb testing.TB, c Config) *Server {
	tb.Helper()
	py := Python(c.TLS)
	if py == "" {
		msg := "no python3 with pyftpdlib (apt-get install python3-pyftpdlib python3-openssl)"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg + ": required under CI=true")
		}
		tb.Skip(msg)
	}
	tmp := tb.TempDir()
	scriptPath := filepath.Join(tmp, "server.py")
	if err := os.WriteFile(scriptPath, script, 0o600); err != nil {
		tb.Fatal(err)
	}
	s := &Server{Host: "127.0.0.1"}
	certPath := ""
	if c.TLS {
		certPEM, keyPEM := selfSigned(tb)
		certPath = filepath.Join(tmp, "cert.pem")
		if err := os.WriteFile(certPath, append(certPEM, keyPEM...), 0o600); err != nil {
			tb.Fatal(err)
		}
		s.CAPEM = string(certPEM)
	}
	cmd := exec.Command(py, scriptPath, c.User, c.Password, c.Dir, certPath)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if s.Port, err = strconv.Atoi(strings.TrimSpace(l)); err != nil {
			tb.Fatalf("pyftpdlib did not start: %q", l)
		}
	case <-time.After(20 * time.Second):
		tb.Fatal("pyftpdlib did not start within 20s")
	}
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

func selfSigned(tb testing.TB) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}
