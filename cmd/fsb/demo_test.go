package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDemoPKI checks the committed demo PKI: both leaves chain to the demo
// CA for their use, the server certificate names loopback, the consumer
// certificate names the demo organisation, and both stay valid for at least
// another year — so that renewing them (fsb demo pki) is an ordinary change
// long before the demo would refuse to start.
func TestDemoPKI(t *testing.T) {
	dir := filepath.Join(root, demoPKIDir)
	if _, err := checkDemoPKI(dir, time.Now().AddDate(1, 0, 0)); err != nil {
		t.Fatalf("%v\n(the demo certificates expire within a year)", err)
	}
	leaf := func(name string) *x509.Certificate {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	srv := leaf(demoServerCertFile)
	for _, h := range []string{"127.0.0.1", "::1", "localhost"} {
		if err := srv.VerifyHostname(h); err != nil {
			t.Error(err)
		}
	}
	cli := leaf(demoClientCertFile)
	orgID := slices.ContainsFunc(cli.Subject.Names, func(a pkix.AttributeTypeAndValue) bool {
		return a.Type.Equal(oidOrganizationIdentifier) && a.Value == "NTRBE-"+demoOrg
	})
	if !slices.Contains(cli.Subject.Organization, demoOrgName) || !orgID {
		t.Errorf("consumer certificate subject %s does not name %s (%s)", cli.Subject, demoOrgName, demoOrg)
	}

	// The command writes a consistent set, and no CA key.
	out := t.TempDir()
	var o, e bytes.Buffer
	if code := run([]string{"demo", "pki", "-out", out, "-years", "1"}, &o, &e); code != 0 {
		t.Fatalf("fsb demo pki: exit %d: %s", code, e.String())
	}
	if _, err := checkDemoPKI(out, time.Now().AddDate(0, 11, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := checkDemoPKI(out, time.Now().AddDate(1, 0, 1)); err == nil || !strings.Contains(err.Error(), "fsb demo pki -out") {
		t.Errorf("an expired set: %v, want the command that renews it", err)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(files) != 5 {
		t.Errorf("fsb demo pki wrote %v, want the CA certificate and two certificates with their keys", files)
	}
}

// TestDemoDataDir runs the demo twice on one -data-dir: the second run finds
// the consumer onboarded and its keys, and after it the trail verifies
// offline with the printed command.
func TestDemoDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	f := serveFlags{addr: "127.0.0.1:0", logLevel: "warn"}
	f.security.adminAddr = "127.0.0.1:0"
	for i, want := range []string{"connection tests passed", "onboarded in an earlier run"} {
		ctx, cancel := context.WithCancel(context.Background())
		var stdout, stderr syncBuffer
		done := make(chan int, 1)
		go func() { done <- runDemo(ctx, f, testDemoConfig(dir), &stdout, &stderr) }()
		waitDemo(t, &stdout, &stderr, done)
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, stderr.String())
		}
		out := stdout.String()
		if !strings.Contains(out, want) || strings.Contains(out, "removed when the demo stops") {
			t.Errorf("run %d lacks %q:\n%s", i, want, out)
		}
		if i == 1 {
			var verify []string
			for _, l := range strings.Split(out, "\n") {
				if _, cmd, ok := strings.Cut(l, "after Ctrl-C, offline: go run ./cmd/fsb "); ok {
					verify = shellWords(cmd)
				}
			}
			var o, e bytes.Buffer
			if verify == nil || run(verify, &o, &e) != 0 || !strings.Contains(o.String(), "ok: records 1–") {
				t.Errorf("offline verify %v: %s%s", verify, o.String(), e.String())
			}
		}
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("-data-dir was removed: %v", err)
	}
}

// TestDemoFlags: the demo refuses the security flags it sets itself.
func TestDemoFlags(t *testing.T) {
	var o, e bytes.Buffer
	if code := run([]string{"demo", "-tls-cert", "x.pem"}, &o, &e); code != 2 || !strings.Contains(e.String(), "-tls-cert") {
		t.Errorf("exit %d: %s", code, e.String())
	}
	e.Reset()
	if code := run([]string{"demo", "-h"}, &o, &e); code != 2 || strings.Contains(e.String(), "-audit-key") || !strings.Contains(e.String(), "-data-dir") {
		t.Errorf("-h: exit %d: %s", code, e.String())
	}
}
