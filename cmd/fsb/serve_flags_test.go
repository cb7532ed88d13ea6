package main

import (
	"bytes"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestServeRefusesBadSecurityFlags: a wrong security or audit setting stops
// fsb serve with a message naming the flag, never a panic.
func TestServeRefusesBadSecurityFlags(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.token")
	writeFile(t, open, "0123456789abcdef0123", 0o644)
	short := filepath.Join(dir, "short.token")
	writeFile(t, short, "abc", 0o600)
	flows := writeFlows(t, dir, "http://127.0.0.1:9")
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

// TestSetProcs: the audit trail adds one P to the runtime's choice (unless
// a CPU limit made that choice), once however often a server starts;
// without it the choice stands; an explicit GOMAXPROCS always wins.
func TestSetProcs(t *testing.T) {
	t.Setenv("GOMAXPROCS", "") // unset for setProcs
	t.Cleanup(func() { runtime.GOMAXPROCS(defaultProcs) })
	more := defaultProcs + 1
	if defaultProcs != runtime.NumCPU() {
		more = defaultProcs // under a CPU limit: never above it
	}
	for _, step := range []struct {
		audit bool
		want  int
	}{{true, more}, {true, more}, {false, defaultProcs}, {true, more}} {
		setProcs(step.audit)
		if got := runtime.GOMAXPROCS(0); got != step.want {
			t.Fatalf("audit %t: GOMAXPROCS %d, want %d", step.audit, got, step.want)
		}
	}
	runtime.GOMAXPROCS(defaultProcs)
	t.Setenv("GOMAXPROCS", strconv.Itoa(defaultProcs))
	setProcs(true)
	if got := runtime.GOMAXPROCS(0); got != defaultProcs {
		t.Fatalf("GOMAXPROCS set: %d, want it left at %d", got, defaultProcs)
	}
}
