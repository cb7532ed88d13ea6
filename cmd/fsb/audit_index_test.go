package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/audit"
)

// TestAuditVerifyIndex: verify -index, offline and online. The fixture's
// index matches its log; an index copied in from another store of the same
// length (its subjects pseudonymised under another key, so its pairs name
// other people) fails with the records' range and what to do, while the
// chain — plain verify — still passes.
func TestAuditVerifyIndex(t *testing.T) {
	f, other := newAuditFixture(t), newAuditFixture(t)
	for _, s := range []*audit.Store{f.store, other.store} {
		if err := s.Close(); err != nil { // the index flushed into its files
			t.Fatal(err)
		}
	}
	offline := []string{"verify", "-dir", f.dir, "-pub", f.pubHex}
	if out, _ := auditCLI(t, 0, append(offline, "-index")...); !strings.Contains(out, "ok: the index matches the log for records 1–8 (") {
		t.Fatalf("verify -index: %s", out)
	}
	if err := os.RemoveAll(filepath.Join(f.dir, "index")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(f.dir, "index"), os.DirFS(filepath.Join(other.dir, "index"))); err != nil {
		t.Fatal(err)
	}
	const failed = "FAILED: the index does not match the log for records 1–"
	if out, _ := auditCLI(t, 1, append(offline, "-index")...); !strings.Contains(out, failed) || !strings.Contains(out, "delete the store's index directory") {
		t.Fatalf("verify -index, a foreign index: %s", out)
	}
	if out, _ := auditCLI(t, 0, offline...); strings.Contains(out, "index") {
		t.Fatalf("verify without -index: %s", out)
	}

	f.store = f.open(t) // the foreign index is as long as the log: kept
	f.serve(t)
	if out, _ := auditCLI(t, 1, append([]string{"verify", "-index"}, f.online()...)...); !strings.Contains(out, failed) {
		t.Fatalf("verify -index online: %s", out)
	}
}

// TestAuditVerifyIndexDamagedLog: with a record's bytes changed, verify
// -index names the record (the chain's report) rather than failing on the
// index check's walk of the log.
func TestAuditVerifyIndexDamagedLog(t *testing.T) {
	f := newAuditFixture(t)
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(f.dir, "log", "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no segment")
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(`"traceIn":"t-2"`))
	if i < 0 {
		t.Fatal("record of call 2 not found")
	}
	b[i+len(`"traceIn":"t-`)] = '9'
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, e := auditCLI(t, 1, "verify", "-dir", f.dir, "-pub", f.pubHex, "-index"); !strings.Contains(out, "FAILED at record 5") {
		t.Fatalf("verify -index, a record changed: %s%s", out, e)
	}
}
