package main

// Black-box review tests of three audit-trail features against
// engine/gateway/AUDIT.md and engine/audit/README.md: verify -index,
// signed redactions (prune, export, verify-export, backup, restore) and
// -accept-unsigned-redactions.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/audit"
)

const (
	bbIndexFailed = "FAILED: the index does not match the log for records "
	bbIndexFix    = "stop the server, delete the store's index directory, and start it again"
	bbNothingYet  = "ok: the index's files answer for no kept record yet (nothing to check)"
	bbUnsigned    = "records were redacted without a signature"
)

// bbCalls records one call (request and outcome) per service named.
func bbCalls(t *testing.T, s *audit.Store, services ...string) {
	t.Helper()
	ctx := context.Background()
	for i, svc := range services {
		c, err := s.Begin(ctx, audit.Request{Organisation: "0203201340", Service: svc, Subject: fmt.Sprint("7001011234", i%3), TraceIn: fmt.Sprint("bb-", svc, "-", i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Finish(ctx, audit.Outcome{Status: 200, Response: []byte(`{"ok":true}`)}); err != nil {
			t.Fatal(err)
		}
	}
}

func bbReport(t *testing.T, out string) audit.Report {
	t.Helper()
	i := strings.Index(out, "\n}\n")
	if i < 0 {
		t.Fatalf("no JSON report in %q", out)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(out[:i+2]), &rep); err != nil {
		t.Fatalf("report %q: %v", out[:i+2], err)
	}
	return rep
}

func bbSwapIndex(t *testing.T, dst, src string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(dst, "index")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dst, "index"), os.DirFS(filepath.Join(src, "index"))); err != nil {
		t.Fatal(err)
	}
}

// 1a. verify -index offline.
func TestAuditDocVerifyIndexOffline(t *testing.T) {
	f, other := newAuditFixture(t), newAuditFixture(t)
	for _, s := range []*audit.Store{f.store, other.store} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, keyArgs := range [][]string{{"-pub", f.pubHex}, {"-key", f.keyFile}} {
		args := append([]string{"verify", "-dir", f.dir, "-index"}, keyArgs...)
		out, _ := auditCLI(t, 0, args...)
		if !strings.Contains(out, "ok: records 1–8 verified") || !strings.Contains(out, "ok: the index matches the log for records 1–8 (") {
			t.Errorf("verify -index %v: %s", keyArgs, out)
		}
		if rep := bbReport(t, out); rep.Index == nil || rep.Index.From != 1 || rep.Index.Through != 8 || rep.Index.Pairs == 0 || rep.Index.Mismatch != nil {
			t.Errorf("index report %+v", rep.Index)
		}
	}
	// flag after, as the docs allow
	auditCLI(t, 0, "verify", "-index", "-dir", f.dir, "-pub", f.pubHex)

	// plain verify prints nothing about the index
	if out, _ := auditCLI(t, 0, "verify", "-dir", f.dir, "-pub", f.pubHex); strings.Contains(out, "index") {
		t.Errorf("verify without -index mentions the index: %s", out)
	}

	// A foreign index of the same length.
	bbSwapIndex(t, f.dir, other.dir)
	out, _ := auditCLI(t, 1, "verify", "-dir", f.dir, "-pub", f.pubHex, "-index")
	if !strings.Contains(out, bbIndexFailed+"1–") || !strings.Contains(out, bbIndexFix) {
		t.Errorf("foreign index: %s", out)
	}
	if !strings.Contains(out, "ok: records 1–8 verified") {
		t.Errorf("foreign index: the chain line missing: %s", out)
	}
	if out, _ := auditCLI(t, 0, "verify", "-dir", f.dir, "-pub", f.pubHex); strings.Contains(out, "FAILED") {
		t.Errorf("plain verify with a foreign index: %s", out)
	}

	// The documented remedy: delete the index directory, start it again.
	if err := os.RemoveAll(filepath.Join(f.dir, "index")); err != nil {
		t.Fatal(err)
	}
	s := f.open(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if out, _ := auditCLI(t, 0, "verify", "-dir", f.dir, "-pub", f.pubHex, "-index"); !strings.Contains(out, "ok: the index matches the log for records 1–8 (") {
		t.Errorf("after the rebuild: %s", out)
	}
}

// 1b. verify -index online.
func TestAuditDocVerifyIndexOnline(t *testing.T) {
	f := newAuditFixture(t)
	f.serve(t)
	// The fixture's records are only in memory: nothing in the index files.
	out, _ := auditCLI(t, 0, append([]string{"verify", "-index"}, f.online()...)...)
	if !strings.Contains(out, bbNothingYet) || !strings.Contains(out, "ok: records 1–8 verified") {
		t.Errorf("online -index, nothing flushed: %s", out)
	}
	if rep := bbReport(t, out); rep.Index == nil || rep.Index.From <= rep.Index.Through {
		t.Errorf("index report %+v", rep.Index)
	}
	auditCLI(t, 0, append([]string{"verify", "-index", "-pub", f.pubHex}, f.online()...)...)
	if out, _ := auditCLI(t, 0, append([]string{"verify"}, f.online()...)...); strings.Contains(out, "index") {
		t.Errorf("online verify without -index: %s", out)
	}
}

func TestAuditDocVerifyIndexOnlineFlushedAndForeign(t *testing.T) {
	f, other := newAuditFixture(t), newAuditFixture(t)
	for _, s := range []*audit.Store{f.store, other.store} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	f.store = f.open(t)
	f.serve(t)
	bbCalls(t, f.store, "person", "person") // 9–12 in memory only
	out, _ := auditCLI(t, 0, append([]string{"verify", "-index"}, f.online()...)...)
	if !strings.Contains(out, "ok: the index matches the log for records 1–8 (") || !strings.Contains(out, "ok: records 1–12 verified") {
		t.Errorf("online -index, flushed 1–8 and 4 more in memory: %s", out)
	}
	f.store.Close()

	g := newAuditFixture(t) // a fresh store, index swapped before it opens again
	g.store.Close()
	bbSwapIndex(t, g.dir, other.dir)
	g.store = g.open(t)
	g.serve(t)
	out, _ = auditCLI(t, 1, append([]string{"verify", "-index"}, g.online()...)...)
	if !strings.Contains(out, bbIndexFailed+"1–") || !strings.Contains(out, bbIndexFix) {
		t.Errorf("online foreign index: %s", out)
	}
	if out, _ := auditCLI(t, 0, append([]string{"verify"}, g.online()...)...); strings.Contains(out, "FAILED") {
		t.Errorf("online plain verify with a foreign index: %s", out)
	}
}

// bbDamage changes one byte inside the record of call t-2 (seq 5).
func bbDamage(t *testing.T, dir string) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "log", "*"))
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			continue
		}
		i := bytes.Index(b, []byte(`"traceIn":"t-2"`))
		if i < 0 {
			continue
		}
		b[i+len(`"traceIn":"t-`)] = '7'
		if err := os.WriteFile(seg, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("record of t-2 not found in %v", segs)
}

// 1c. a record's bytes changed: the chain's FAILED line, not an index error.
func TestAuditDocVerifyIndexDamagedRecord(t *testing.T) {
	f := newAuditFixture(t)
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	bbDamage(t, f.dir)
	out, e := auditCLI(t, 1, "verify", "-dir", f.dir, "-pub", f.pubHex, "-index")
	if !strings.Contains(out, "FAILED at record 5") || strings.Contains(out+e, bbIndexFailed) || strings.Contains(e, "index") {
		t.Errorf("offline damaged record: out %s err %s", out, e)
	}
	if strings.Contains(out, "ok: the index") {
		t.Errorf("offline damaged record reported an index ok: %s", out)
	}
	// same without -index
	if out, _ := auditCLI(t, 1, "verify", "-dir", f.dir, "-pub", f.pubHex); !strings.Contains(out, "FAILED at record 5") {
		t.Errorf("plain verify of a damaged record: %s", out)
	}

	// Online: the server over the damaged store.
	key, _ := loadEd25519Key(f.keyFile)
	s, err := audit.Open(audit.Options{Dir: f.dir, Signer: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Logf("the damaged store does not open for a server (%v); online form not checked", err)
		return
	}
	defer s.Close()
	f.store = s
	f.serve(t)
	out, e = auditCLI(t, 1, append([]string{"verify", "-index"}, f.online()...)...)
	if !strings.Contains(out, "FAILED at record 5") || strings.Contains(out, bbIndexFailed) {
		t.Errorf("online damaged record -index: out %s err %s", out, e)
	}
}

// 1d. Nothing in the index files offline: a copy taken while the store ran
// (as after a crash before any index flush), and an empty store.
func TestAuditDocVerifyIndexNothingYetOffline(t *testing.T) {
	f := newAuditFixture(t)
	crashed := filepath.Join(t.TempDir(), "crashed")
	if err := os.CopyFS(crashed, os.DirFS(f.dir)); err != nil {
		t.Fatal(err)
	}
	f.store.Close()
	out, e := auditCLI(t, 0, "verify", "-dir", crashed, "-pub", f.pubHex, "-index")
	t.Logf("crash copy, first verify -index:\n%s%s", out, e)
	if !strings.Contains(out, "ok: records 1–8 verified") || !(strings.Contains(out, bbNothingYet) || strings.Contains(out, "ok: the index matches the log")) {
		t.Errorf("crash copy: %s", out)
	}
	out2, _ := auditCLI(t, 0, "verify", "-dir", crashed, "-pub", f.pubHex, "-index")
	t.Logf("crash copy, second verify -index:\n%s", out2)

	empty := filepath.Join(t.TempDir(), "empty")
	key, _ := loadEd25519Key(f.keyFile)
	s, err := audit.Open(audit.Options{Dir: empty, Signer: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	code := run([]string{"audit", "verify", "-dir", empty, "-pub", f.pubHex, "-index"}, new(bytes.Buffer), new(bytes.Buffer))
	var o, eb bytes.Buffer
	run([]string{"audit", "verify", "-dir", empty, "-pub", f.pubHex, "-index"}, &o, &eb)
	t.Logf("empty store verify -index: exit %d\n%s%s", code, o.String(), eb.String())
	if code != 0 || !strings.Contains(o.String(), bbNothingYet) {
		t.Errorf("empty store verify -index: exit %d\n%s%s", code, o.String(), eb.String())
	}
}

// pruneFixture: records 1–4 "old", 5–8 "person" (the fixture), then 9–10
// old, 11–12 person, 13–14 old: pruning "old" deletes 1–4 behind an
// anchor and redacts 9, 10, 13, 14.
func bbPruneFixture(t *testing.T) *auditFixture {
	f := newAuditFixture(t)
	bbCalls(t, f.store, "old", "person", "old")
	return f
}

func bbCheckPruned(t *testing.T, out string) {
	t.Helper()
	var rep audit.PruneReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("prune report %q: %v", out, err)
	}
	if rep.Deleted != 4 || rep.Redacted != 4 || rep.Anchor == nil {
		t.Errorf("prune report: %s", out)
	}
}

// bbSignedRedactionsAfterPrune: verify, export (whole and slices),
// verify-export, offline forms on dir.
func bbVerifyPrunedOffline(t *testing.T, f *auditFixture, dir string) {
	t.Helper()
	bbVerifyPruned(t, f, dir, "ok: the index matches the log for records")
}

// bbVerifyPruned: as above, wantIndex the index line expected.
func bbVerifyPruned(t *testing.T, f *auditFixture, dir, wantIndex string) {
	t.Helper()
	out, _ := auditCLI(t, 0, "verify", "-dir", dir, "-pub", f.pubHex, "-index")
	rep := bbReport(t, out)
	if rep.First != 5 || rep.Last != 14 || rep.Redacted != 4 || rep.UnsignedRedactions != 0 || !rep.Anchored || strings.Contains(out, "FAILED") || strings.Contains(out, "without a signature") {
		t.Errorf("verify after prune: %s", out)
	}
	if !strings.Contains(out, "ok: records 5–14 verified") || !strings.Contains(out, wantIndex) {
		t.Errorf("verify after prune: %s", out)
	}
}

func bbExports(t *testing.T, f *auditFixture, where []string) {
	t.Helper()
	scratch := t.TempDir()
	for _, tc := range []struct {
		name               string
		from, to           uint64
		first, last, redac uint64
	}{
		{"whole", 0, 0, 5, 14, 4},
		{"slice-with-redactions", 9, 12, 9, 12, 2},
		{"slice-redacted-only", 13, 14, 13, 14, 2},
		{"slice-one-kept", 6, 6, 6, 6, 0},
		{"slice-from-anchor", 5, 10, 5, 10, 2},
	} {
		file := filepath.Join(scratch, tc.name+".jsonl")
		args := append([]string{"export", "-out", file}, where...)
		if tc.from != 0 {
			args = append(args, "-from", fmt.Sprint(tc.from))
		}
		if tc.to != 0 {
			args = append(args, "-to", fmt.Sprint(tc.to))
		}
		auditCLI(t, 0, args...)
		out, e := auditCLI(t, 0, "verify-export", "-pub", f.pubHex, file)
		rep := bbReport(t, out)
		if rep.First != tc.first || rep.Last != tc.last || rep.Redacted != tc.redac || rep.UnsignedRedactions != 0 || strings.Contains(out, "FAILED") {
			t.Errorf("%s: verify-export: %s%s", tc.name, out, e)
		}
		if !strings.Contains(out, fmt.Sprintf("ok: records %d–%d verified", tc.first, tc.last)) {
			t.Errorf("%s: verify-export ok line: %s", tc.name, out)
		}
		// flags after FILE
		auditCLI(t, 0, "verify-export", file, "-pub", f.pubHex)
	}
}

// 2a. Signed redactions, offline prune.
func TestAuditDocSignedRedactionsOffline(t *testing.T) {
	f := bbPruneFixture(t)
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "audit.yaml")
	if err := os.WriteFile(conf, []byte("services:\n  old: {retention: 1h}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := auditCLI(t, 0, "prune", "-dir", f.dir, "-key", f.keyFile, "-config", conf, "-now", time.Now().Add(24*time.Hour).Format(time.RFC3339))
	bbCheckPruned(t, out)
	bbVerifyPrunedOffline(t, f, f.dir)
	// A second prune changes nothing and still verifies.
	out, _ = auditCLI(t, 0, "prune", "-dir", f.dir, "-key", f.keyFile, "-config", conf, "-now", time.Now().Add(24*time.Hour).Format(time.RFC3339))
	t.Logf("second prune: %s", out)
	bbVerifyPrunedOffline(t, f, f.dir)

	bbExports(t, f, []string{"-dir", f.dir})

	// backup / restore of the pruned store.
	backup := filepath.Join(t.TempDir(), "audit.backup")
	auditCLI(t, 0, "backup", "-dir", f.dir, "-out", backup)
	restored := filepath.Join(t.TempDir(), "restored")
	out, _ = auditCLI(t, 0, "restore", "-dir", restored, "-pub", f.pubHex, backup)
	if !strings.Contains(out, "ok: records 5–14 verified") || strings.Contains(out, "without a signature") {
		t.Errorf("restore of a pruned store: %s", out)
	}
	// A backup holds the log, checkpoints and anchor, not the index: the
	// restored store's index files answer for nothing until it runs.
	bbVerifyPruned(t, f, restored, bbNothingYet)
	key, _ := loadEd25519Key(f.keyFile)
	s, err := audit.Open(audit.Options{Dir: restored, Signer: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	bbVerifyPrunedOffline(t, f, restored)
	// restore with -key as well
	restored2 := filepath.Join(t.TempDir(), "restored2")
	auditCLI(t, 0, "restore", backup, "-dir", restored2, "-key", f.keyFile)
}

// 2b. Signed redactions, online prune, export, backup.
func TestAuditDocSignedRedactionsOnline(t *testing.T) {
	f := bbPruneFixture(t)
	f.serve(t)
	time.Sleep(5 * time.Millisecond) // "old" records pass their 1 ms retention
	out, _ := auditCLI(t, 0, append([]string{"prune"}, f.online()...)...)
	bbCheckPruned(t, out)
	out, _ = auditCLI(t, 0, append([]string{"verify", "-pub", f.pubHex, "-index"}, f.online()...)...)
	rep := bbReport(t, out)
	if rep.First != 5 || rep.Last != 14 || rep.Redacted != 4 || rep.UnsignedRedactions != 0 || strings.Contains(out, "FAILED") {
		t.Errorf("online verify after prune: %s", out)
	}
	bbExports(t, f, f.online())

	backup := filepath.Join(t.TempDir(), "audit.backup")
	auditCLI(t, 0, append([]string{"backup", "-out", backup}, f.online()...)...)
	restored := filepath.Join(t.TempDir(), "restored")
	out, _ = auditCLI(t, 0, "restore", "-dir", restored, "-pub", f.pubHex, backup)
	if !strings.Contains(out, "ok: records 5–") || strings.Contains(out, "without a signature") {
		t.Errorf("restore of an online backup of a pruned store: %s", out)
	}
	out, _ = auditCLI(t, 0, "verify", "-dir", restored, "-pub", f.pubHex, "-index")
	if r := bbReport(t, out); r.Redacted != 4 || r.UnsignedRedactions != 0 || !strings.Contains(out, bbNothingYet) {
		t.Errorf("verify restored: %s", out)
	}

	// After the server stops, offline forms over the same store.
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	bbVerifyPrunedOffline(t, f, f.dir)
}

// 2c. A redaction's signature changed in an export: altered, not accepted
// by -accept-unsigned-redactions either.
func TestAuditDocRedactionSignatureTampered(t *testing.T) {
	f := bbPruneFixture(t)
	f.store.Close()
	conf := filepath.Join(t.TempDir(), "audit.yaml")
	os.WriteFile(conf, []byte("services:\n  old: {retention: 1h}\n"), 0o600)
	auditCLI(t, 0, "prune", "-dir", f.dir, "-key", f.keyFile, "-config", conf, "-now", time.Now().Add(24*time.Hour).Format(time.RFC3339))
	file := filepath.Join(t.TempDir(), "all.jsonl")
	auditCLI(t, 0, "export", "-dir", f.dir, "-out", file)
	b, _ := os.ReadFile(file)
	lines := bytes.Split(b, []byte("\n"))
	var red []int
	for i, l := range lines {
		if bytes.Contains(l, []byte(`"type":"redacted"`)) {
			red = append(red, i)
		}
	}
	if len(red) != 4 {
		t.Fatalf("%d redacted lines in the export:\n%s", len(red), b)
	}
	type stub map[string]any
	parse := func(l []byte) stub {
		var m stub
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if sig, _ := parse(lines[red[0]])["signature"].(string); sig == "" {
		t.Fatalf("a redaction made by prune carries no signature: %s", lines[red[0]])
	}
	variant := func(name string, edit func(m stub)) string {
		m := parse(lines[red[0]])
		edit(m)
		nl, _ := json.Marshal(m)
		ls := append([][]byte(nil), lines...)
		ls[red[0]] = nl
		p := filepath.Join(t.TempDir(), name+".jsonl")
		os.WriteFile(p, bytes.Join(ls, []byte("\n")), 0o600)
		return p
	}
	other := parse(lines[red[1]])["signature"]
	// Another record's signature, a changed service: not signed by the key.
	for _, tc := range []struct {
		name string
		edit func(m stub)
	}{
		{"swapped-signature", func(m stub) { m["signature"] = other }},
		{"service-changed", func(m stub) { m["service"] = "person" }},
	} {
		file := variant(tc.name, tc.edit)
		for _, extra := range [][]string{nil, {"-accept-unsigned-redactions"}} {
			out, e := auditCLI(t, 1, append([]string{"verify-export", "-pub", f.pubHex, file}, extra...)...)
			if !strings.Contains(out, fmt.Sprintf("FAILED at record %d: altered", seqOf(parse(lines[red[0]])))) {
				t.Errorf("%s %v: %s%s", tc.name, extra, out, e)
			}
		}
	}
	// No signature: an unsigned redaction (as by hand).
	file = variant("unsigned", func(m stub) { delete(m, "signature") })
	out, _ := auditCLI(t, 1, "verify-export", "-pub", f.pubHex, file)
	if !strings.Contains(out, "FAILED: 1 "+bbUnsigned) {
		t.Errorf("unsigned stub: %s", out)
	}
	out, _ = auditCLI(t, 0, "verify-export", "-pub", f.pubHex, file, "-accept-unsigned-redactions")
	if !strings.Contains(out, "ok: 1 records redacted without a signature, accepted") {
		t.Errorf("unsigned stub accepted: %s", out)
	}
}

func seqOf(m map[string]any) uint64 {
	f, _ := m["seq"].(float64)
	return uint64(f)
}

// 3. -accept-unsigned-redactions on a migrated Badger store.
func bbBadger(t *testing.T) (dir, pub string, key ed25519.PrivateKey) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "audit")
	if err := os.CopyFS(dir, os.DirFS("../../engine/audit/testdata/badger-v1")); err != nil {
		t.Fatal(err)
	}
	key = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub = fmt.Sprintf("%x", []byte(key.Public().(ed25519.PublicKey)))
	return dir, pub, key
}

func TestAuditDocAcceptUnsignedOffline(t *testing.T) {
	dir, pub, _ := bbBadger(t)
	verify := []string{"verify", "-dir", dir, "-pub", pub}
	out, _ := auditCLI(t, 1, verify...)
	if !strings.Contains(out, "FAILED: 8 "+bbUnsigned) || !strings.Contains(out, "-accept-unsigned-redactions") {
		t.Errorf("verify migrated: %s", out)
	}
	out, _ = auditCLI(t, 0, append(verify, "-accept-unsigned-redactions")...)
	if !strings.Contains(out, "ok: records 3–27 verified") || !strings.Contains(out, "ok: 8 records redacted without a signature, accepted") {
		t.Errorf("verify -accept: %s", out)
	}
	// with -index too
	out, _ = auditCLI(t, 0, append(verify, "-accept-unsigned-redactions", "-index")...)
	if !strings.Contains(out, "ok: the index") {
		t.Errorf("verify -accept -index: %s", out)
	}
	t.Logf("verify -accept -index on migrated:\n%s", out)

	// export + verify-export
	scratch := t.TempDir()
	whole := filepath.Join(scratch, "whole.jsonl")
	auditCLI(t, 0, "export", "-dir", dir, "-out", whole)
	out, _ = auditCLI(t, 1, "verify-export", "-pub", pub, whole)
	if !strings.Contains(out, "FAILED: 8 "+bbUnsigned) {
		t.Errorf("verify-export migrated: %s", out)
	}
	out, _ = auditCLI(t, 0, "verify-export", "-pub", pub, whole, "-accept-unsigned-redactions")
	if !strings.Contains(out, "ok: 8 records redacted without a signature, accepted") {
		t.Errorf("verify-export -accept: %s", out)
	}
	// slice
	slice := filepath.Join(scratch, "slice.jsonl")
	auditCLI(t, 0, "export", "-dir", dir, "-out", slice, "-from", "3", "-to", "12")
	var o, e bytes.Buffer
	code := run([]string{"audit", "verify-export", "-pub", pub, slice}, &o, &e)
	t.Logf("verify-export slice 3–12 without flag: exit %d\n%s%s", code, o.String(), e.String())
	rep := bbReport(t, o.String())
	if rep.UnsignedRedactions > 0 && code != 1 {
		t.Errorf("slice with unsigned redactions passed without the flag")
	}
	auditCLI(t, 0, "verify-export", "-pub", pub, slice, "-accept-unsigned-redactions")

	// backup + restore
	backup := filepath.Join(scratch, "audit.backup")
	auditCLI(t, 0, "backup", "-dir", dir, "-out", backup)
	restored := filepath.Join(scratch, "restored")
	out, e2 := auditCLI(t, 1, "restore", "-dir", restored, "-pub", pub, backup)
	if !strings.Contains(out, "FAILED: 8 "+bbUnsigned) || !strings.Contains(e2, "removed the partly restored files from "+restored) {
		t.Errorf("restore migrated without flag: %s%s", out, e2)
	}
	if _, err := os.Stat(restored); err == nil {
		t.Errorf("a failed restore left %s", restored)
	}
	out, _ = auditCLI(t, 0, "restore", "-dir", restored, "-pub", pub, backup, "-accept-unsigned-redactions")
	if !strings.Contains(out, "ok: 8 records redacted without a signature, accepted") {
		t.Errorf("restore -accept: %s", out)
	}
}

func TestAuditDocAcceptUnsignedOnline(t *testing.T) {
	dir, pub, key := bbBadger(t)
	s, err := audit.Open(audit.Options{Dir: dir, Signer: key, Logger: slog.New(slog.DiscardHandler),
		Services: map[string]audit.Policy{"svc0": {Retention: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok := filepath.Join(t.TempDir(), "tok")
	auditCLI(t, 0, "secret", "-out", tok)
	f := &auditFixture{dir: dir, store: s, tokenFile: tok, pubHex: pub}
	f.serve(t)
	out, _ := auditCLI(t, 1, append([]string{"verify", "-pub", pub}, f.online()...)...)
	if !strings.Contains(out, "FAILED: 8 "+bbUnsigned) {
		t.Errorf("online verify migrated: %s", out)
	}
	out, _ = auditCLI(t, 0, append([]string{"verify", "-pub", pub, "-accept-unsigned-redactions", "-index"}, f.online()...)...)
	if !strings.Contains(out, "ok: 8 records redacted without a signature, accepted") {
		t.Errorf("online verify -accept: %s", out)
	}
	// online export of the migrated store
	file := filepath.Join(t.TempDir(), "e.jsonl")
	auditCLI(t, 0, append([]string{"export", "-out", file}, f.online()...)...)
	auditCLI(t, 1, "verify-export", "-pub", pub, file)
	auditCLI(t, 0, "verify-export", "-pub", pub, file, "-accept-unsigned-redactions")

	// Prune of a migrated store: its own redactions are signed; the old
	// ones stay unsigned.
	var o, e bytes.Buffer
	code := run(append([]string{"audit", "prune"}, f.online()...), &o, &e)
	t.Logf("online prune of the migrated store: exit %d\n%s%s", code, o.String(), e.String())
	o.Reset()
	e.Reset()
	code = run(append([]string{"audit", "verify", "-pub", pub, "-accept-unsigned-redactions"}, f.online()...), &o, &e)
	t.Logf("verify after: exit %d\n%s%s", code, o.String(), e.String())
	if code != 0 {
		t.Errorf("verify -accept after pruning a migrated store: exit %d\n%s%s", code, o.String(), e.String())
	}
}

// The index after an offline prune: the kept records still checked, then
// a writable open continues it.
func TestAuditDocIndexAfterOfflinePrune(t *testing.T) {
	f := bbPruneFixture(t)
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	ls := func(when string) {
		ents, _ := os.ReadDir(filepath.Join(f.dir, "index"))
		var names []string
		for _, e := range ents {
			fi, _ := e.Info()
			names = append(names, fmt.Sprintf("%s(%d)", e.Name(), fi.Size()))
		}
		t.Logf("%s: index dir %v", when, names)
	}
	ls("before prune")
	out, _ := auditCLI(t, 0, "verify", "-dir", f.dir, "-pub", f.pubHex, "-index")
	t.Logf("before prune: %s", out[strings.LastIndex(out, "}\n")+2:])
	conf := filepath.Join(t.TempDir(), "audit.yaml")
	os.WriteFile(conf, []byte("services:\n  old: {retention: 1h}\n"), 0o600)
	auditCLI(t, 0, "prune", "-dir", f.dir, "-key", f.keyFile, "-config", conf, "-now", time.Now().Add(24*time.Hour).Format(time.RFC3339))
	ls("after prune")
	out, _ = auditCLI(t, 0, "verify", "-dir", f.dir, "-pub", f.pubHex, "-index")
	if !strings.Contains(out, "ok: the index matches the log for records 5–14 (") {
		t.Errorf("verify -index after offline prune: %s", out)
	}
	s := f.open(t)
	bbCalls(t, s, "person")
	s.Close()
	ls("after a writable open+close")
	out, _ = auditCLI(t, 0, "verify", "-dir", f.dir, "-pub", f.pubHex, "-index")
	if !strings.Contains(out, "ok: the index matches the log for records 5–16 (") {
		t.Errorf("verify -index after reopen: %s", out)
	}
	out, _ = auditCLI(t, 0, "query", "-dir", f.dir, "-subject", "70010112341", "-subject-key-file", f.subjectFile)
	t.Logf("query subject: %d records", strings.Count(out, `"seq"`))
	if strings.Count(out, `"seq"`) == 0 {
		t.Errorf("subject query after prune: %s", out)
	}
}

// A foreign index in a pruned store: the kept records' pairs differ.
func TestAuditDocVerifyIndexForeignAfterPrune(t *testing.T) {
	f, other := bbPruneFixture(t), bbPruneFixture(t)
	f.store.Close()
	other.store.Close()
	conf := filepath.Join(t.TempDir(), "audit.yaml")
	os.WriteFile(conf, []byte("services:\n  old: {retention: 1h}\n"), 0o600)
	auditCLI(t, 0, "prune", "-dir", f.dir, "-key", f.keyFile, "-config", conf, "-now", time.Now().Add(24*time.Hour).Format(time.RFC3339))
	bbSwapIndex(t, f.dir, other.dir)
	var o, e bytes.Buffer
	code := run([]string{"audit", "verify", "-dir", f.dir, "-pub", f.pubHex, "-index"}, &o, &e)
	if code != 1 || !strings.Contains(o.String(), bbIndexFailed) || !strings.Contains(o.String(), bbIndexFix) {
		t.Errorf("foreign index in a pruned store: exit %d\n%s%s", code, o.String(), e.String())
	}
}

// A run file with one byte flipped (checksums broken): exit 1 naming the
// file (README: the check's scan fails as corrupt, naming the file), the
// chain's own report kept.
func TestAuditDocVerifyIndexCorruptRun(t *testing.T) {
	f := newAuditFixture(t)
	f.store.Close()
	runs, _ := filepath.Glob(filepath.Join(f.dir, "index", "*.run"))
	if len(runs) != 1 {
		t.Fatalf("runs %v", runs)
	}
	b, _ := os.ReadFile(runs[0])
	b[len(b)/2] ^= 0xff
	os.WriteFile(runs[0], b, 0o600)
	var o, e bytes.Buffer
	code := run([]string{"audit", "verify", "-dir", f.dir, "-pub", f.pubHex, "-index"}, &o, &e)
	t.Logf("corrupt run: exit %d\n%s%s", code, o.String(), e.String())
	if code != 1 || !strings.Contains(o.String(), "ok: records 1–8 verified") || !strings.Contains(o.String(), "FAILED: the index could not be checked") || !strings.Contains(o.String(), filepath.Base(runs[0])) {
		t.Errorf("corrupt run: exit %d\n%s%s", code, o.String(), e.String())
	}
}
