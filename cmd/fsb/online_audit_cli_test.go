package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/gateway"
)

// auditCLI runs fsb audit and checks its exit code; it returns stdout and
// stderr.
func auditCLI(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(append([]string{"audit"}, args...), &out, &errb); code != want {
		t.Fatalf("fsb audit %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// auditFixture is a signed store with records of two services, its key
// files, and (after serve) the admin API over it.
type auditFixture struct {
	dir, keyFile, subjectFile, tokenFile, pubHex string
	store                                        *audit.Store
	admin                                        string // base URL
}

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	keys := t.TempDir()
	f := &auditFixture{dir: filepath.Join(t.TempDir(), "audit"), keyFile: filepath.Join(keys, "audit.key"),
		subjectFile: filepath.Join(keys, "subject.key"), tokenFile: filepath.Join(keys, "admin.token")}
	out, _ := auditCLI(t, 0, "keygen", "-out", f.keyFile)
	f.pubHex = strings.TrimSpace(out)
	auditCLI(t, 0, "secret", "-out", f.subjectFile)
	auditCLI(t, 0, "secret", "-out", f.tokenFile)
	f.store = f.open(t)
	ctx := context.Background()
	for i, svc := range []string{"old", "old", "person", "person"} {
		c, err := f.store.Begin(ctx, audit.Request{Organisation: "0203201340", Service: svc, Subject: fmt.Sprint("8501011234", i%2), TraceIn: fmt.Sprint("t-", i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Finish(ctx, audit.Outcome{Status: 200, Response: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// open opens the fixture's store directory writable with its keys (closed
// when the test ends).
func (f *auditFixture) open(t *testing.T) *audit.Store {
	t.Helper()
	key, err := loadEd25519Key(f.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := loadSecret(f.subjectFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.Open(audit.Options{Dir: f.dir, Signer: key, SubjectKeys: []audit.Key{sk}, CheckpointEvery: 2,
		Logger: slog.New(slog.DiscardHandler), Services: map[string]audit.Policy{"old": {Retention: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// serve starts the admin API over the open store on loopback.
func (f *auditFixture) serve(t *testing.T) {
	t.Helper()
	tok, err := os.ReadFile(f.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	admin := gateway.NewAdmin(gateway.AdminConfig{Audit: f.store, Token: bytes.TrimSpace(tok)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go admin.App().Listener(ln)
	t.Cleanup(func() { _ = admin.App().ShutdownWithTimeout(5 * time.Second); ln.Close() })
	f.admin = "http://" + ln.Addr().String()
}

func (f *auditFixture) online() []string {
	return []string{"-admin", f.admin, "-admin-token-file", f.tokenFile}
}

// TestAuditOnline: proof with its flags after SEQ, verify-proof, verify
// -pub against the server's key, prune and backup through the admin API;
// the online backup restores and verifies.
func TestAuditOnline(t *testing.T) {
	f := newAuditFixture(t)
	f.serve(t)
	scratch := t.TempDir()

	// Flags after the positional argument, as the docs write them.
	proof, _ := auditCLI(t, 0, append([]string{"proof", "3"}, f.online()...)...)
	proofFile := filepath.Join(scratch, "proof.json")
	if err := os.WriteFile(proofFile, []byte(proof), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _ := auditCLI(t, 0, "verify-proof", "-pub", f.pubHex, proofFile); !strings.Contains(out, "ok: record 3 is in the chain") {
		t.Errorf("verify-proof: %s", out)
	}
	auditCLI(t, 0, "verify-proof", proofFile, "-pub", f.pubHex) // flags after FILE
	otherPub := strings.Repeat("ab", 32)
	if _, e := auditCLI(t, 1, "verify-proof", "-pub", otherPub, proofFile); !strings.Contains(e, "signature invalid") {
		t.Errorf("verify-proof with another key: %s", e)
	}
	var p audit.Proof
	if err := json.Unmarshal([]byte(proof), &p); err != nil {
		t.Fatal(err)
	}
	p.Digest[0] ^= 1
	b, _ := json.Marshal(p)
	tampered := filepath.Join(scratch, "tampered.json")
	os.WriteFile(tampered, b, 0o600)
	if _, e := auditCLI(t, 1, "verify-proof", "-pub", f.pubHex, tampered); !strings.Contains(e, "does not verify") {
		t.Errorf("verify-proof of a tampered proof: %s", e)
	}
	notProof := filepath.Join(scratch, "not.json")
	os.WriteFile(notProof, []byte(`{"seq":1,"extra":true}`), 0o600)
	if _, e := auditCLI(t, 1, "verify-proof", "-pub", f.pubHex, notProof); !strings.Contains(e, "not a proof") {
		t.Errorf("verify-proof of another document: %s", e)
	}

	// verify -pub online compares the server's key with the given one.
	if out, _ := auditCLI(t, 0, append([]string{"verify", "-pub", f.pubHex}, f.online()...)...); !strings.Contains(out, "ok: records 1–8") {
		t.Errorf("verify -pub: %s", out)
	}
	if _, e := auditCLI(t, 1, append([]string{"verify", "-pub", otherPub}, f.online()...)...); !strings.Contains(e, "not the -pub given") {
		t.Errorf("verify with another -pub: %s", e)
	}

	// prune through the admin API applies the server's retention.
	time.Sleep(2 * time.Millisecond) // the "old" records pass their 1 ms retention
	out, _ := auditCLI(t, 0, append([]string{"prune"}, f.online()...)...)
	var rep audit.PruneReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Deleted+rep.Redacted != 4 {
		t.Fatalf("prune -admin: %s (%v)", out, err)
	}

	// backup through the admin API: 0600, restorable, verifies.
	backup := filepath.Join(scratch, "audit.backup")
	auditCLI(t, 0, append([]string{"backup", "-out", backup}, f.online()...)...)
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	restored := filepath.Join(scratch, "restored")
	if out, _ := auditCLI(t, 0, "restore", backup, "-dir", restored, "-pub", f.pubHex); !strings.Contains(out, "ok: records") {
		t.Errorf("restore of the online backup: %s", out)
	}
	auditCLI(t, 1, append([]string{"backup", "-out", backup}, f.online()...)...) // exists: refused

	// The store is open (the server runs): offline forms say to use -admin.
	if _, e := auditCLI(t, 1, "backup", "-dir", f.dir, "-out", filepath.Join(scratch, "x")); !strings.Contains(e, "or use -admin") {
		t.Errorf("offline backup of a running store: %s", e)
	}
}

// TestAuditOnlineBackupCutShort: an answer cut short, mid-file or exactly
// at a file boundary (no end-of-archive marker), is refused and no file is
// left behind.
func TestAuditOnlineBackupCutShort(t *testing.T) {
	f := newAuditFixture(t)
	var full bytes.Buffer
	if err := f.store.Backup(context.Background(), &full); err != nil {
		t.Fatal(err)
	}
	b := full.Bytes()
	if !bytes.Equal(b[len(b)-1024:], make([]byte, 1024)) {
		t.Fatal("the backup does not end with the tar end marker")
	}
	scratch := t.TempDir()
	for _, tc := range []struct {
		name string
		body []byte
		want int
	}{
		{"whole", b, 0},
		{"half", b[:len(b)/2], 1},
		{"no end marker", b[:len(b)-1024], 1},
		{"one zero block", b[:len(b)-512], 1},
		{"empty", nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != gateway.AdminPath+"/audit/backup" {
					http.NotFound(w, r)
					return
				}
				w.Write(tc.body)
			}))
			defer srv.Close()
			out := filepath.Join(scratch, strings.ReplaceAll(tc.name, " ", "-"))
			_, e := auditCLI(t, tc.want, "backup", "-out", out, "-admin", srv.URL, "-admin-token-file", f.tokenFile)
			_, err := os.Stat(out)
			if tc.want == 0 && err != nil {
				t.Errorf("the whole backup was not kept: %v", err)
			}
			if tc.want != 0 && (err == nil || !strings.Contains(e, "cut short")) {
				t.Errorf("a cut backup: file %v, stderr %s", err, e)
			}
		})
	}
}

// TestAuditOfflineSubjectAndRestore: an offline subject query names
// -subject-key-file and works with it; a failed restore removes what it
// wrote (a directory it created, or the entries of an empty one) and says
// so, but never touches a directory that held something.
func TestAuditOfflineSubjectAndRestore(t *testing.T) {
	f := newAuditFixture(t)
	var full bytes.Buffer
	if err := f.store.Backup(context.Background(), &full); err != nil {
		t.Fatal(err)
	}
	f.store.Close()

	if _, e := auditCLI(t, 1, "query", "-dir", f.dir, "-subject", "85010112341"); !strings.Contains(e, "-subject-key-file") || strings.Contains(e, "Options.") {
		t.Errorf("subject query without a key: %s", e)
	}
	out, _ := auditCLI(t, 0, "query", "-dir", f.dir, "-subject", "85010112341", "-subject-key-file", f.subjectFile)
	if n := strings.Count(out, `"seq"`); n != 4 { // two calls, request and outcome each
		t.Errorf("subject query found %d records, want 4:\n%s", n, out)
	}

	scratch := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(scratch, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	whole := write("whole.backup", full.Bytes())
	cut := write("cut.backup", full.Bytes()[:full.Len()/2])

	// Truncated, into a directory that did not exist: it is gone again.
	created := filepath.Join(scratch, "new")
	if _, e := auditCLI(t, 1, "restore", cut, "-dir", created, "-pub", f.pubHex); !strings.Contains(e, "removed the partly restored") {
		t.Errorf("truncated restore: %s", e)
	}
	if _, err := os.Stat(created); !os.IsNotExist(err) {
		t.Errorf("the directory a failed restore created is still there: %v", err)
	}
	// Wrong key, into an empty directory: it stays, empty.
	empty := filepath.Join(scratch, "empty")
	os.Mkdir(empty, 0o755)
	out, e := auditCLI(t, 1, "restore", whole, "-dir", empty, "-pub", strings.Repeat("ab", 32))
	if !strings.Contains(out, "FAILED at record") || !strings.Contains(e, "removed the partly restored") {
		t.Errorf("restore with the wrong key: %s%s", out, e)
	}
	if ents, err := os.ReadDir(empty); err != nil || len(ents) != 0 {
		t.Errorf("the empty directory after a failed restore: %v %v", ents, err)
	}
	// A directory that held something is refused and left as it was.
	full2 := filepath.Join(scratch, "full")
	os.Mkdir(full2, 0o755)
	write("full/keep", []byte("x"))
	if _, e := auditCLI(t, 1, "restore", whole, "-dir", full2, "-pub", f.pubHex); strings.Contains(e, "removed") {
		t.Errorf("a non-empty directory: %s", e)
	}
	if _, err := os.Stat(filepath.Join(full2, "keep")); err != nil {
		t.Errorf("a failed restore touched a directory that held something: %v", err)
	}
	// And the whole backup restores into the emptied directory.
	auditCLI(t, 0, "restore", whole, "-dir", empty, "-pub", f.pubHex)
	auditCLI(t, 0, "verify", "-dir", empty, "-pub", f.pubHex)
	auditCLI(t, 0, "proof", "2", "-dir", empty) // flags after SEQ offline too
}
