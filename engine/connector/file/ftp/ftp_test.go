package ftp_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector/file/ftp"
	"github.com/openfsb/fsb/engine/connector/file/ftp/ftptest"
	"github.com/openfsb/fsb/sdk/connector"
	"github.com/openfsb/fsb/sdk/connector/connectortest"
)

func start(t *testing.T, tls bool) *ftptest.Server {
	dir := t.TempDir()
	connectortest.Populate(t, dir)
	return ftptest.Start(t, ftptest.Config{Dir: dir, User: "fsb", Password: "s3cret", TLS: tls})
}

func TestPlain(t *testing.T) {
	t.Parallel()
	srv := start(t, false)
	st, err := ftp.New(ftp.Config{Host: srv.Host, Port: srv.Port, User: "fsb", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	connectortest.Run(t, st)
}

func TestExplicitTLS(t *testing.T) {
	t.Parallel()
	srv := start(t, true)
	cfg := `{"host":"127.0.0.1","port":` + strconv.Itoa(srv.Port) + `,"user":"fsb","password":"s3cret","tls":"explicit","caPem":` + strconv.Quote(srv.CAPEM) + `}`
	st, err := ftp.Driver{}.Open(context.Background(), []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	connectortest.Run(t, st)

	// The same server refuses plain FTP, and a client that does not trust
	// its certificate refuses the server.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	plain, _ := ftp.New(ftp.Config{Host: srv.Host, Port: srv.Port, User: "fsb", Password: "s3cret"})
	if err := plain.Check(ctx); err == nil {
		t.Error("plain login to a TLS-only server succeeded")
	}
	untrusted, _ := ftp.New(ftp.Config{Host: srv.Host, Port: srv.Port, User: "fsb", Password: "s3cret", TLS: "explicit"})
	if err := untrusted.Check(ctx); err == nil {
		t.Error("an untrusted certificate was accepted")
	}
}

func TestBaseDirAndLogin(t *testing.T) {
	t.Parallel()
	srv := start(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, _ := ftp.New(ftp.Config{Host: srv.Host, Port: srv.Port, User: "fsb", Password: "s3cret", BaseDir: "/sub"})
	defer st.Close()
	files, err := st.List(ctx, "")
	if err != nil || len(files) != 1 || files[0].Name != "c.txt" {
		t.Fatalf("list of /sub: %v %v", files, err)
	}
	if _, _, err := st.Open(ctx, "../a.csv"); !errors.Is(err, connector.ErrOutsideBase) {
		t.Errorf("open ../a.csv: %v", err)
	}
	bad, _ := ftp.New(ftp.Config{Host: srv.Host, Port: srv.Port, User: "fsb", Password: "wrong"})
	if err := bad.Check(ctx); !errors.Is(err, connector.ErrAuth) {
		t.Errorf("wrong password: %v, want ErrAuth", err)
	}
	down, _ := ftp.New(ftp.Config{Host: "127.0.0.1", Port: 1, User: "fsb", Password: "x"})
	if err := down.Check(ctx); !errors.Is(err, connector.ErrUnavailable) {
		t.Errorf("no server: %v, want ErrUnavailable", err)
	}
	for name, cfg := range map[string]string{
		"no host": `{"user":"u"}`, "bad tls": `{"host":"h","tls":"implicit"}`, "unknown key": `{"host":"h","passive":true}`,
	} {
		if _, err := (ftp.Driver{}).Open(ctx, []byte(cfg)); !errors.Is(err, connector.ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
