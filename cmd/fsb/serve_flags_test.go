package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesBadSecurityFlags: a wrong security or audit setting stops
// fsb serve with a message naming the flag, never a panic.
func TestServeRefusesBadSecurityFlags(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.token")
	if err := os.WriteFile(open, []byte("0123456789abcdef0123"), 0o644); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.token")
	if err := os.WriteFile(short, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	flows := filepath.Join(dir, "flows")
	if err := os.MkdirAll(flows, 0o755); err != nil {
		t.Fatal(err)
	}
	doc := `kind: Source
name: reg
protocol: rest
rest:
  baseUrl: http://127.0.0.1:9
  operations:
    get: {method: GET, path: /x}
---
kind: Flow
name: x
version: 1.0.0
method: GET
path: /x/v1/x
steps:
  - id: r
    call: reg.get
output: steps.r.body
`
	if err := os.WriteFile(filepath.Join(flows, "x.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-audit-dir", filepath.Join(dir, "a1")}, "-audit-key"},
		{[]string{"-access-dir", filepath.Join(dir, "r1"), "-admin-addr", "127.0.0.1:0", "-admin-token-file", open}, "chmod 600"},
		{[]string{"-access-dir", filepath.Join(dir, "r2"), "-admin-addr", "127.0.0.1:0", "-admin-token-file", short}, "16"},
		{[]string{"-access-dir", filepath.Join(dir, "r"), "-client-ca", filepath.Join(dir, "none.pem")}, "-client-ca"},
		{[]string{"-tls-cert", filepath.Join(dir, "none.pem"), "-tls-key", filepath.Join(dir, "none-key.pem")}, "-tls-cert"},
	} {
		var stdout, stderr bytes.Buffer
		args := append(append([]string{"serve", "-addr", "127.0.0.1:0"}, tc.args...), flows)
		code := run(args, &stdout, &stderr)
		if code == 0 || strings.Contains(stderr.String(), "panic") || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q (want it to name %q)", tc.args, code, stderr.String(), tc.want)
		}
	}
}
