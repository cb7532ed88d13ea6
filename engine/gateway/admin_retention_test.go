package gateway_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/gateway"
)

// TestAdminAuditRetention: the admin API prunes a running store by its
// retention policies and streams a backup of it; the backup restores to a
// store whose chain verifies with the same head; neither route answers
// without the admin token.
func TestAdminAuditRetention(t *testing.T) {
	ctx := context.Background()
	store, err := audit.Open(audit.Options{Dir: t.TempDir(), Signer: auditKey, SubjectKeys: []audit.Key{subjectKey},
		CheckpointEvery: 4, Logger: slog.New(slog.DiscardHandler),
		Services: map[string]audit.Policy{"old": {Retention: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	call := func(service string) {
		t.Helper()
		c, err := store.Begin(ctx, audit.Request{Organisation: testOrg, Service: service, Subject: "85010112345"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Finish(ctx, audit.Outcome{Status: 200, Response: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		call("old")
	}
	call("kept")
	time.Sleep(5 * time.Millisecond) // the "old" records pass their 1 ms retention
	// A call is answered before the checkpoint its record made due is
	// written (audit README, "Writing"); Prune touches only signed records.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if ck, ok := store.LastCheckpoint(); ok && ck.Seq >= 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the checkpoint at record 8 was never written")
		}
	}

	const token = "admin-token-0123456789"
	admin := gateway.NewAdmin(gateway.AdminConfig{Audit: store, Token: []byte(token)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go admin.App().Listener(ln)
	t.Cleanup(func() { _ = admin.App().ShutdownWithTimeout(5 * time.Second); ln.Close() })
	base := "http://" + ln.Addr().String() + gateway.AdminPath
	do := func(method, path, tok string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	for _, r := range [][2]string{{"POST", "/audit/prune"}, {"GET", "/audit/backup"}} {
		if st, _ := do(r[0], r[1], ""); st != 401 {
			t.Errorf("%s %s without the token: %d, want 401", r[0], r[1], st)
		}
	}

	st, body := do("POST", "/audit/prune", token)
	var rep audit.PruneReport
	if st != 200 || json.Unmarshal(body, &rep) != nil {
		t.Fatalf("prune: %d %s", st, body)
	}
	// The first six records (three "old" calls) go; the "kept" call stays.
	if rep.Deleted+rep.Redacted != 6 || rep.Deleted == 0 || rep.Anchor == nil {
		t.Fatalf("prune report %s", body)
	}
	page, err := store.Query(ctx, audit.Query{Service: "old"})
	if err != nil || len(page.Entries) != 0 {
		t.Fatalf("old records after prune: %d, %v", len(page.Entries), err)
	}
	pub := auditKey.Public().(ed25519.PublicKey)
	if v, err := audit.Verify(ctx, store, pub); err != nil || !v.OK() {
		t.Fatalf("verify after prune: %+v %v", v, err)
	}

	st, backup := do("GET", "/audit/backup", token)
	if st != 200 || len(backup) == 0 {
		t.Fatalf("backup: %d, %d bytes", st, len(backup))
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if err := audit.Restore(ctx, dir, bytes.NewReader(backup)); err != nil {
		t.Fatal(err)
	}
	restored, err := audit.Open(audit.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)}) // read-only
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	if restored.Head() != store.Head() {
		t.Fatalf("restored head %v, want %v", restored.Head(), store.Head())
	}
	if v, err := audit.Verify(ctx, restored, pub); err != nil || !v.OK() || v.Records != 2 {
		t.Fatalf("verify the restored store: %+v %v", v, err)
	}
	// A truncated backup is refused, never restored as a shorter chain.
	if err := audit.Restore(ctx, filepath.Join(t.TempDir(), "cut"), bytes.NewReader(backup[:len(backup)/2])); err == nil {
		t.Fatal("a truncated backup was restored")
	}
}
