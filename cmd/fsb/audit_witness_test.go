package main

// Witnesses of the audit chain through the CLI and the admin API: fsb audit
// witness, verify -witness, POST /admin/v1/audit/verify with checkpoints.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/gateway"
)

// wdAdmin calls an admin API path raw, as curl -sf with a bearer token would.
func wdAdmin(t *testing.T, f *auditFixture, method, path string, body []byte) (*http.Response, []byte) {
	t.Helper()
	tok, _ := os.ReadFile(f.tokenFile)
	req, _ := http.NewRequest(method, f.admin+gateway.AdminPath+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// wdEmpty serves an empty store (no checkpoint yet) with f's token.
func wdEmpty(t *testing.T, f *auditFixture) *auditFixture {
	t.Helper()
	key, err := loadEd25519Key(f.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.Open(audit.Options{Dir: filepath.Join(t.TempDir(), "empty"), Signer: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := &auditFixture{tokenFile: f.tokenFile, store: s, keyFile: f.keyFile}
	e.serve(t)
	return e
}

func wdWrite(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// wdForge signs a checkpoint at seq over head with the store's own key.
func wdForge(t *testing.T, f *auditFixture, seq uint64, head audit.Hash) string {
	t.Helper()
	key, err := loadEd25519Key(f.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ck := audit.Checkpoint{Seq: seq, Head: head, Time: time.Now().UTC()}
	ck.Signature = ed25519.Sign(key, audit.CheckpointMessage(ck.Seq, ck.Head, ck.Time))
	b, _ := json.Marshal(ck)
	return wdWrite(t, "forged.json", b)
}

// TestWitnessDocUsage: audit -h names -witness (repeatable) and the witness command.
func TestWitnessDocUsage(t *testing.T) {
	_, e := auditCLI(t, 0, "-h")
	for _, want := range []string{"(-witness FILE, repeatable: checkpoints kept outside the store",
		"witness        append the running server's last signed checkpoint to -out (JSON Lines; -pub HEX checks its"} {
		if !strings.Contains(e, want) {
			t.Errorf("usage lacks %q:\n%s", want, e)
		}
	}
}

// TestWitnessDocWitnessCommand: one JSON line per call, mode 0600; -dir and
// a missing -out refused; nothing kept before the first checkpoint.
func TestWitnessDocWitnessCommand(t *testing.T) {
	f := newAuditFixture(t)
	f.serve(t)
	file := filepath.Join(t.TempDir(), "witness.jsonl")
	usage := "usage: fsb audit witness -out FILE -admin URL -admin-token-file FILE [-pub HEX]"
	if _, e := auditCLI(t, 1, append([]string{"witness", "-out", file, "-dir", f.dir}, f.online()...)...); !strings.Contains(e, usage) {
		t.Errorf("witness -dir: %s", e)
	}
	if _, e := auditCLI(t, 1, append([]string{"witness"}, f.online()...)...); !strings.Contains(e, usage) {
		t.Errorf("witness without -out: %s", e)
	}
	empty := wdEmpty(t, f)
	if _, e := auditCLI(t, 1, append([]string{"witness", "-out", file}, empty.online()...)...); !strings.Contains(e, "the store has signed no checkpoint yet") {
		t.Errorf("witness before the first checkpoint: %s", e)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a file was left by refused witness calls: %v", err)
	}
	for i := 0; i < 3; i++ {
		out, _ := auditCLI(t, 0, append([]string{"witness", "-out", file, "-pub", f.pubHex}, f.online()...)...)
		if !strings.Contains(out, "kept the checkpoint at record 8") {
			t.Errorf("witness %d: %s", i, out)
		}
	}
	b, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || !strings.HasSuffix(string(b), "\n") {
		t.Fatalf("want 3 JSON lines, got %q", b)
	}
	for _, l := range lines {
		var ck audit.Checkpoint
		if err := json.Unmarshal([]byte(l), &ck); err != nil || ck.Seq != 8 || len(ck.Signature) == 0 {
			t.Errorf("line %q: %+v %v", l, ck, err)
		}
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	if out, _ := auditCLI(t, 0, append([]string{"verify", "-witness", file}, f.online()...)...); !strings.Contains(out, "ok: the chain holds the witnessed checkpoints, the last at record 8") {
		t.Errorf("verify -witness: %s", out)
	}
}

// TestWitnessDocCurlHead: raw GET /admin/v1/audit/head bodies appended
// without newlines (one from before the first checkpoint), and a proof,
// serve as witnesses online, offline and in POST /audit/verify's body.
func TestWitnessDocCurlHead(t *testing.T) {
	f := newAuditFixture(t)
	f.serve(t)
	empty := wdEmpty(t, f)
	var curl bytes.Buffer
	for _, src := range []*auditFixture{empty, f} {
		resp, b := wdAdmin(t, src, "GET", "/audit/head", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("head: %d %s", resp.StatusCode, b)
		}
		curl.Write(b)
	}
	ctx := context.Background()
	c, _ := f.store.Begin(ctx, audit.Request{Organisation: "0203201340", Service: "person", Subject: "85010112340"})
	if _, err := c.Finish(ctx, audit.Outcome{Status: 200}); err != nil {
		t.Fatal(err)
	}
	f.store.Checkpoint(ctx)
	_, b := wdAdmin(t, f, "GET", "/audit/head", nil)
	curl.Write(b)
	curlFile := wdWrite(t, "curl.jsonl", curl.Bytes())
	proof, _ := auditCLI(t, 0, append([]string{"proof", "3"}, f.online()...)...)
	proofFile := wdWrite(t, "proof.json", []byte(proof))

	want := "ok: the chain holds the witnessed checkpoints, the last at record 10"
	if out, _ := auditCLI(t, 0, append([]string{"verify", "-witness", curlFile, "-witness", proofFile}, f.online()...)...); !strings.Contains(out, want) {
		t.Errorf("online, curl + proof: %s", out)
	}
	if out, _ := auditCLI(t, 0, append([]string{"verify", "-witness", proofFile}, f.online()...)...); !strings.Contains(out, "the last at record 4") {
		t.Errorf("online, a proof's checkpoint: %s", out)
	}
	cp := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(cp, os.DirFS(f.dir)); err != nil {
		t.Fatal(err)
	}
	if out, _ := auditCLI(t, 0, "verify", "-dir", cp, "-pub", f.pubHex, "-witness", curlFile); !strings.Contains(out, want) {
		t.Errorf("offline, curl: %s", out)
	}
	for _, body := range [][]byte{curl.Bytes(), append(append([]byte("["), bytes.Join([][]byte{b, b}, []byte(","))...), ']')} {
		resp, rb := wdAdmin(t, f, "POST", "/audit/verify", body)
		var rep audit.Report
		if err := json.Unmarshal(rb, &rep); resp.StatusCode != 200 || err != nil || rep.Witnessed != 10 || !rep.OK() {
			t.Errorf("POST /audit/verify: %d %s", resp.StatusCode, rb)
		}
	}
	// A head answer from before the first checkpoint is passed over, but a
	// file that holds no checkpoint at all is refused (nothing to check).
	_, preBody := wdAdmin(t, empty, "GET", "/audit/head", nil)
	preFile := wdWrite(t, "pre.json", preBody)
	if _, e := auditCLI(t, 1, append([]string{"verify", "-witness", preFile, "-witness", proofFile}, f.online()...)...); !strings.Contains(e, "pre.json: audit: witness: no checkpoint in it") {
		t.Errorf("a witness file with no checkpoint: %s", e)
	}
}

// TestWitnessDocRefused: a value that is no checkpoint is refused naming
// it; online, a bad body is a Belgif badRequest problem.
func TestWitnessDocRefused(t *testing.T) {
	f := newAuditFixture(t)
	f.serve(t)
	_, head := wdAdmin(t, f, "GET", "/audit/head", nil)
	bad := wdWrite(t, "bad.jsonl", append(append(head, '\n'), []byte(`{"seq":1,"foo":"bar"}`+"\n")...))
	for _, args := range [][]string{append([]string{"verify", "-witness", bad}, f.online()...), {"verify", "-dir", "/nonexistent", "-pub", f.pubHex, "-witness", bad}} {
		_, e := auditCLI(t, 1, args...)
		if !strings.Contains(e, bad) || !strings.Contains(e, "value 2") || !strings.Contains(e, "neither a signed checkpoint") {
			t.Errorf("not a checkpoint: %s", e)
		}
	}
	other := filepath.Join(t.TempDir(), "other.key")
	auditCLI(t, 0, "keygen", "-out", other)
	foreign := wdForge(t, &auditFixture{keyFile: other}, 8, audit.Hash{})
	fb, _ := os.ReadFile(foreign)
	for _, body := range [][]byte{[]byte(`{"seq":1}`), []byte(`not json`), fb} {
		resp, b := wdAdmin(t, f, "POST", "/audit/verify", body)
		var p struct {
			Type   string `json:"type"`
			Status int    `json:"status"`
			Issues []struct{ Type, In string }
		}
		json.Unmarshal(b, &p)
		if resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") ||
			p.Type != "urn:problem-type:belgif:badRequest" || p.Status != 400 || len(p.Issues) != 1 || p.Issues[0].In != "body" {
			t.Errorf("POST /audit/verify %q: %d %s %s", body, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	}
}

// TestWitnessDocPrune: after prune, a checkpoint below the anchor is
// skipped, one at the anchor's predecessor is checked against the anchor;
// altered is reported after the last witnessed checkpoint that held.
func TestWitnessDocPrune(t *testing.T) {
	f := newAuditFixture(t)
	f.serve(t)
	p1, _ := auditCLI(t, 0, append([]string{"proof", "1"}, f.online()...)...)
	p3, _ := auditCLI(t, 0, append([]string{"proof", "3"}, f.online()...)...)
	w2, w4 := wdWrite(t, "p1.json", []byte(p1)), wdWrite(t, "p3.json", []byte(p3))
	bogus := audit.Hash{1, 2, 3}
	forged2, forged4, forged6 := wdForge(t, f, 2, bogus), wdForge(t, f, 4, bogus), wdForge(t, f, 6, bogus)
	if out, _ := auditCLI(t, 1, append([]string{"verify", "-witness", w2, "-witness", forged6}, f.online()...)...); !strings.Contains(out, "FAILED at record 3: altered") {
		t.Errorf("altered after the last witnessed checkpoint that held: %s", out)
	}
	auditCLI(t, 1, append([]string{"verify", "-witness", forged2}, f.online()...)...) // checked before the prune
	time.Sleep(2 * time.Millisecond)
	out, _ := auditCLI(t, 0, append([]string{"prune"}, f.online()...)...)
	var rep audit.PruneReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Anchor == nil || rep.Anchor.Seq != 5 {
		t.Fatalf("prune: %s %v", out, err)
	}
	if out, _ := auditCLI(t, 0, append([]string{"verify", "-witness", w2, "-witness", w4}, f.online()...)...); !strings.Contains(out, "the last at record 4") {
		t.Errorf("after prune, real checkpoints 2 and 4: %s", out)
	}
	if out, _ := auditCLI(t, 0, append([]string{"verify", "-witness", forged2}, f.online()...)...); strings.Contains(out, "witnessed checkpoints") || !strings.Contains(out, "ok: records 5–8") {
		t.Errorf("below the anchor is skipped: %s", out)
	}
	if out, _ := auditCLI(t, 1, append([]string{"verify", "-witness", forged4}, f.online()...)...); !strings.Contains(out, ": altered (") {
		t.Errorf("at the anchor's predecessor is checked: %s", out)
	}
}

// TestAuditWitness: a witness keeps the server's signed head (fsb audit
// witness, or the GET /admin/audit/head answer as curl saves it); verify
// -witness checks that the chain still holds it, online and offline. A
// copy of the store cut back to before a witnessed checkpoint verifies on
// its own and fails with the witness; a checkpoint another key signed is
// refused, by the witness command and by verify.
func TestAuditWitness(t *testing.T) {
	f := newAuditFixture(t)
	f.serve(t)
	scratch := t.TempDir()
	witnessFile := filepath.Join(scratch, "witness.jsonl")
	keep := func() {
		t.Helper()
		out, _ := auditCLI(t, 0, append([]string{"witness", "-out", witnessFile, "-pub", f.pubHex}, f.online()...)...)
		if !strings.Contains(out, "kept the checkpoint at record ") {
			t.Errorf("witness: %s", out)
		}
	}
	ctx := context.Background()
	if _, err := f.store.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	keep()
	b, err := os.ReadFile(witnessFile)
	if err != nil {
		t.Fatal(err)
	}
	first := wdWrite(t, "head-1.json", b) // a copy of the witness file as it was
	cut := filepath.Join(scratch, "cut")  // the files as whoever cuts the newest records leaves them
	if err := os.CopyFS(cut, os.DirFS(f.dir)); err != nil {
		t.Fatal(err)
	}
	c, err := f.store.Begin(ctx, audit.Request{Organisation: "0203201340", Service: "person", Subject: "85010112340"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Finish(ctx, audit.Outcome{Status: 200}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	keep()
	second := witnessFile // both checkpoints, one JSON line each
	if b, _ := os.ReadFile(second); strings.Count(string(b), "\n") != 2 {
		t.Fatalf("witness file: %q", b)
	}
	if fi, err := os.Stat(second); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("witness file mode: %v %v", fi, err)
	}

	out, _ := auditCLI(t, 0, append([]string{"verify", "-witness", first, "-witness", second}, f.online()...)...)
	if !strings.Contains(out, "the chain holds the witnessed checkpoints, the last at record 10") {
		t.Errorf("online verify -witness: %s", out)
	}
	if out, _ := auditCLI(t, 0, "verify", "-dir", cut, "-pub", f.pubHex); !strings.Contains(out, "ok: records 1–8") {
		t.Errorf("the cut copy alone: %s", out)
	}
	out, _ = auditCLI(t, 1, "verify", "-dir", cut, "-pub", f.pubHex, "-witness", second)
	if !strings.Contains(out, "FAILED at record 9: removed") || !strings.Contains(out, "covers records up to 10") {
		t.Errorf("the cut copy with the witness: %s", out)
	}

	// A checkpoint signed by another key is no witness of this store.
	otherPub := strings.Repeat("ab", 32)
	if _, e := auditCLI(t, 1, append([]string{"witness", "-out", filepath.Join(scratch, "x.jsonl"), "-pub", otherPub}, f.online()...)...); !strings.Contains(e, "not signed by the -pub given") {
		t.Errorf("witness -pub of another key: %s", e)
	}
	if _, err := os.Stat(filepath.Join(scratch, "x.jsonl")); !os.IsNotExist(err) {
		t.Errorf("a checkpoint another key signed was kept: %v", err)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	ck := audit.Checkpoint{Seq: 2, Time: time.Now().UTC()}
	ck.Signature = ed25519.Sign(other, audit.CheckpointMessage(ck.Seq, ck.Head, ck.Time))
	b, _ = json.Marshal(ck)
	foreign := wdWrite(t, "foreign.json", b)
	if _, e := auditCLI(t, 1, append([]string{"verify", "-witness", foreign}, f.online()...)...); !strings.Contains(e, "not signed by this store's key") {
		t.Errorf("online, a foreign witness: %s", e)
	}
	if _, e := auditCLI(t, 1, "verify", "-dir", cut, "-pub", f.pubHex, "-witness", foreign); !strings.Contains(e, "not signed by this store's key") {
		t.Errorf("offline, a foreign witness: %s", e)
	}
	notWitness := wdWrite(t, "not.json", []byte(`{"seq":1}`))
	if _, e := auditCLI(t, 1, "verify", "-dir", cut, "-pub", f.pubHex, "-witness", notWitness); !strings.Contains(e, "neither a signed checkpoint") {
		t.Errorf("a file that holds no checkpoint: %s", e)
	}
}
