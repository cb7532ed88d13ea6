package sftp_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector/file/sftp"
	"github.com/openfsb/fsb/engine/connector/file/sftp/sftptest"
	"github.com/openfsb/fsb/sdk/connector"
	"github.com/openfsb/fsb/sdk/connector/connectortest"
	"golang.org/x/crypto/ssh"
)

func server(t *testing.T, keys ...ssh.PublicKey) (*sftptest.Server, string) {
	dir := t.TempDir()
	connectortest.Populate(t, dir)
	srv, err := sftptest.Start(sftptest.Config{Dir: dir, User: "fsb", Password: "s3cret", Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, dir
}

func TestPassword(t *testing.T) {
	srv, _ := server(t)
	st, err := sftp.New(sftp.Config{Host: "127.0.0.1", Port: srv.Port(), User: "fsb", Password: "s3cret", HostKeys: []string{srv.HostKey}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	connectortest.Run(t, st)
}

func TestKey(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	srv, _ := server(t, sshPub)
	cfg := `{"host":"127.0.0.1","port":` + itoa(srv.Port()) + `,"user":"fsb","privateKey":` + quote(keyPEM) + `,"hostKeys":["` + srv.HostKey + `"],"baseDir":"sub"}`
	st, err := sftp.Driver{}.Open(context.Background(), []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	files, err := st.List(context.Background(), "")
	if err != nil || len(files) != 1 || files[0].Name != "c.txt" {
		t.Fatalf("list of base sub: %v %v", files, err)
	}
	// The base directory confines: its parent's files are out of reach.
	if _, _, err := st.Open(context.Background(), "../a.csv"); !errors.Is(err, connector.ErrOutsideBase) {
		t.Errorf("open ../a.csv: %v", err)
	}
}

func TestRefused(t *testing.T) {
	srv, _ := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, c := range map[string]struct {
		cfg  sftp.Config
		want error
	}{
		"unknown host key": {sftp.Config{User: "fsb", Password: "s3cret", HostKeys: []string{"SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}, connector.ErrHostKey},
		"wrong password":   {sftp.Config{User: "fsb", Password: "nope", HostKeys: []string{srv.HostKey}}, connector.ErrAuth},
		"no server":        {sftp.Config{Port: 1, User: "fsb", Password: "x", HostKeys: []string{srv.HostKey}}, connector.ErrUnavailable},
	} {
		c.cfg.Host = "127.0.0.1"
		if c.cfg.Port == 0 {
			c.cfg.Port = srv.Port()
		}
		st, err := sftp.New(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Check(ctx); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	for name, cfg := range map[string]string{
		"no host key": `{"host":"h","user":"u","password":"p"}`,
		"unknown key": `{"host":"h","user":"u","password":"p","hostKeys":["SHA256:x"],"extra":1}`,
		"md5 key":     `{"host":"h","user":"u","password":"p","hostKeys":["MD5:aa"]}`,
		"no secret":   `{"host":"h","user":"u","hostKeys":["SHA256:x"]}`,
	} {
		if _, err := (sftp.Driver{}).Open(ctx, []byte(cfg)); !errors.Is(err, connector.ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestLinkOutside: a link inside the base directory that points outside
// it is refused.
func TestLinkOutside(t *testing.T) {
	srv, dir := server(t)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o644)
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "sub", "link")); err != nil {
		t.Skip(err)
	}
	st, _ := sftp.New(sftp.Config{Host: "127.0.0.1", Port: srv.Port(), User: "fsb", Password: "s3cret", HostKeys: []string{srv.HostKey}, BaseDir: "sub"})
	defer st.Close()
	if rc, _, err := st.Open(context.Background(), "link"); err == nil {
		rc.Close()
		t.Fatal("a link out of the served directory was followed")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
