package main

import (
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
