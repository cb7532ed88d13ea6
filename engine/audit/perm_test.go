package audit

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkPrivate fails for every directory under root (root included) that
// is not 0700 and every file that is not 0600: the records hold
// pseudonymised personal data and purposes. It returns the files seen.
func checkPrivate(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			rel, _ := filepath.Rel(root, p)
			files = append(files, rel)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestFilesArePrivate: every directory the store creates is 0700 and every
// file 0600 — segments, sidecars, checkpoints, anchor, lock, index runs,
// torn tails, a restored copy — and a writable Open closes a directory an
// older version left open to others.
func TestFilesArePrivate(t *testing.T) {
	smallSegments(t, 4096)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "audit")
	if err := os.Mkdir(dir, 0o755); err != nil { // as an operator, or an older version, made it
		t.Fatal(err)
	}
	opt := testOptions(dir)
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}}
	opt.IndexFlushEntries = 16 // index runs on disk
	s := openStore(t, opt)
	for i := range 40 {
		call(t, s, i)
	}
	pr, err := s.Prune(ctx, time.Now().Add(2*time.Hour))
	if err != nil || pr.Deleted == 0 || pr.Redacted == 0 {
		t.Fatalf("prune: %+v %v", pr, err)
	}
	call(t, s, 40)
	var backup bytes.Buffer
	if err := s.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn tail, cut and saved aside by the next writable Open.
	segs := segFiles(t, dir)
	f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0, 0, 1, 0, 9, 9}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s = openStore(t, opt)
	call(t, s, 41)
	if _, err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()

	files := checkPrivate(t, dir)
	for _, want := range []string{"audit.lock", "checkpoints", "anchor", ".torn-", ".idx", ".seg", "index" + string(filepath.Separator)} {
		if !strings.Contains(strings.Join(files, "\n"), want) {
			t.Errorf("no file %q was checked: %v", want, files)
		}
	}

	// Restored into an empty directory that exists, with the default mode.
	restored := filepath.Join(t.TempDir(), "restored")
	if err := os.Mkdir(restored, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Restore(ctx, restored, bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, restored)
	r := openStore(t, testOptions(restored))
	call(t, r, 42)
	r.Close()
	checkPrivate(t, restored)
}
