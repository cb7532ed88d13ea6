package main

import (
	"bytes"
	"context"
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

// TestAuditBackupRestorePrune: `fsb audit backup` of a stopped store,
// `restore` into a new directory (which verifies the chain it brought
// back), the restored store continues the chain, and `prune` with a
// configuration file deletes the expired records behind a signed anchor
// while the chain still verifies.
func TestAuditBackupRestorePrune(t *testing.T) {
	dir, keys := t.TempDir(), t.TempDir()
	keyFile, subjectFile := filepath.Join(keys, "audit.key"), filepath.Join(keys, "subject.key")
	cli := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(append([]string{"audit"}, args...), &out, &errb); code != want {
			t.Fatalf("fsb audit %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errb.String())
		}
		return out.String()
	}
	cli(0, "keygen", "-out", keyFile)
	cli(0, "secret", "-out", subjectFile)
	key, err := loadEd25519Key(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := loadSecret(subjectFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	write := func(dir string, n int, service string) audit.Receipt {
		t.Helper()
		s, err := audit.Open(audit.Options{Dir: dir, Signer: key, SubjectKeys: []audit.Key{sk}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var rc audit.Receipt
		for i := range n {
			c, err := s.Begin(ctx, audit.Request{Organisation: "0203201340", Service: service, Subject: fmt.Sprint("8501011234", i%3), TraceIn: fmt.Sprint("t-", i)})
			if err != nil {
				t.Fatal(err)
			}
			if rc, err = c.Finish(ctx, audit.Outcome{Status: 200, Response: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
		}
		return rc
	}
	last := write(dir, 20, "person")

	backup := filepath.Join(t.TempDir(), "audit.backup")
	if out := cli(0, "backup", "-dir", dir, "-out", backup); !strings.Contains(out, fmt.Sprint("through ", last.Seq)) {
		t.Errorf("backup: %s", out)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if out := cli(0, "restore", "-dir", restored, "-key", keyFile, backup); !strings.Contains(out, fmt.Sprintf("ok: records 1–%d verified, signed through %d", last.Seq, last.Seq)) {
		t.Errorf("restore: %s", out)
	}
	cli(1, "restore", "-dir", restored, "-key", keyFile, backup) // not empty: refused

	// The restored store continues the chain; its records are the originals.
	next := write(restored, 5, "enterprise")
	if next.Seq != last.Seq+10 {
		t.Errorf("the restored store continued at %d, want %d", next.Seq, last.Seq+10)
	}
	cli(0, "verify", "-dir", restored, "-key", keyFile)

	// Retention: person records expire after an hour, enterprise ones are
	// kept. Pruned a day from now, the 40 person records at the start go
	// behind an anchor; the 10 enterprise ones stay; the chain verifies.
	conf := filepath.Join(t.TempDir(), "audit.yaml")
	if err := os.WriteFile(conf, []byte("services:\n  person: {retention: 1h}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := cli(0, "prune", "-dir", restored, "-key", keyFile, "-config", conf, "-now", time.Now().Add(24*time.Hour).Format(time.RFC3339))
	var rep audit.PruneReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Deleted != last.Seq || rep.Anchor == nil {
		t.Fatalf("prune: %s (%v)", out, err)
	}
	if out := cli(0, "verify", "-dir", restored, "-key", keyFile); !strings.Contains(out, fmt.Sprintf("ok: records %d–%d verified", last.Seq+1, next.Seq)) {
		t.Errorf("verify after prune: %s", out)
	}
}

func TestAuditConfig(t *testing.T) {
	dir := t.TempDir()
	bodyKey := filepath.Join(dir, "body.key")
	var out, errb bytes.Buffer
	if code := run([]string{"audit", "secret", "-out", bodyKey}, &out, &errb); code != 0 {
		t.Fatal(errb.String())
	}
	write := func(s string) string {
		name := filepath.Join(dir, fmt.Sprintf("c%d.yaml", time.Now().UnixNano()))
		if err := os.WriteFile(name, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return name
	}
	c, err := loadAuditConfig(write(`retention: 10y
minFreeSpace: 64MiB
bodyKeyFile: body.key
services:
  person: {retention: 180d, storeBodies: true}
  enterprise: {subjectInClear: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	o := c.options("/x", nil)
	year := 365 * 24 * time.Hour
	if o.Default.Retention != 10*year || o.Services["person"].Retention != 180*24*time.Hour || !o.Services["person"].StoreBodies ||
		o.Services["enterprise"].Retention != 10*year || !o.Services["enterprise"].SubjectInClear ||
		o.MinFreeSpace != 64<<20 || len(o.BodyKeys) != 1 || len(o.BodyKeys[0].Secret) != 32 || c.pruneEvery != time.Hour {
		t.Errorf("options: %+v, prune every %v", o, c.pruneEvery)
	}
	for _, bad := range []string{
		"retention: forever\n",
		"services:\n  person: {retention: -1h}\n",
		"services:\n  person: {storeBodies: true}\n", // no body key
		"minFreeSpace: lots\n",
		"pruneEvery: 1s\n",
		"retentoin: 1y\n", // unknown key
	} {
		if _, err := loadAuditConfig(write(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// TestStoppablePruner: stopping the pruner cancels a running prune and
// waits for it; one that does not stop (stuck in a write or sync) is
// waited for at most the bound, then reported, and the shutdown goes on.
func TestStoppablePruner(t *testing.T) {
	t.Run("stops", func(t *testing.T) {
		stopped := make(chan struct{})
		stop := stoppable(func(ctx context.Context) { <-ctx.Done(); close(stopped) }, time.Minute,
			func() { t.Error("a pruner that stops was reported late") })
		stop()
		select {
		case <-stopped:
		default:
			t.Fatal("stop returned before the pruner stopped")
		}
	})
	t.Run("stuck", func(t *testing.T) {
		unstick := make(chan struct{})
		defer close(unstick)
		lateCalls := 0
		stop := stoppable(func(ctx context.Context) { <-unstick }, 50*time.Millisecond, func() { lateCalls++ })
		start := time.Now()
		stop()
		if took := time.Since(start); took < 50*time.Millisecond || took > 5*time.Second {
			t.Fatalf("stop took %v, want the 50ms bound", took)
		}
		if lateCalls != 1 {
			t.Fatalf("late called %d times, want once", lateCalls)
		}
	})
}
