// Package connectortest checks that a native connector's Store behaves as
// the engine expects: the same suite runs against every driver (FTP, SFTP,
// yours) with a real server behind it.
package connectortest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/openfsb/fsb/sdk/connector"
)

// Files is what Populate writes and the suite expects to find.
var Files = map[string][]byte{
	"a.csv":     []byte("id,name\n1,Jan\n2,Marie\n"),
	"b.csv":     []byte("id,name\n3,Piet\n"),
	"sub/c.txt": []byte("inside a sub-directory\n"),
	"big.bin":   bytes.Repeat([]byte("0123456789abcdef"), 16<<10), // 256 KiB
}

// Populate writes Files under dir.
func Populate(tb testing.TB, dir string) {
	tb.Helper()
	for name, b := range Files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// Run runs the suite against st, whose base directory was populated.
func Run(t *testing.T, st connector.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Run("check", func(t *testing.T) {
		if err := st.Check(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("list", func(t *testing.T) {
		for dir, want := range map[string][]string{"": {"a.csv", "b.csv", "big.bin"}, ".": {"a.csv", "b.csv", "big.bin"}, "sub": {"c.txt"}} {
			files, err := st.List(ctx, dir)
			if err != nil {
				t.Fatalf("list %q: %v", dir, err)
			}
			var names []string
			for _, f := range files {
				names = append(names, f.Name)
				if full := filepath.ToSlash(filepath.Join(dir, f.Name)); int64(len(Files[full])) != f.Size {
					t.Errorf("list %q: %s size %d, want %d", dir, f.Name, f.Size, len(Files[full]))
				}
				if f.ModTime.IsZero() || time.Since(f.ModTime) > 24*time.Hour {
					t.Errorf("list %q: %s modTime %v", dir, f.Name, f.ModTime)
				}
			}
			sort.Strings(names)
			if !equal(names, want) {
				t.Errorf("list %q: %v, want %v", dir, names, want)
			}
		}
	})
	t.Run("open", func(t *testing.T) {
		for _, name := range []string{"a.csv", "sub/c.txt", "big.bin", "./a.csv"} {
			got, info, err := read(ctx, st, name)
			if err != nil {
				t.Fatalf("open %q: %v", name, err)
			}
			want := Files[filepath.ToSlash(filepath.Clean(name))]
			if !bytes.Equal(got, want) || info.Size != int64(len(want)) || info.Name != filepath.Base(name) {
				t.Errorf("open %q: %d bytes, info %+v; want %d bytes", name, len(got), info, len(want))
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		for name, want := range map[string]error{
			"missing.csv":     connector.ErrNotFound,
			"sub/missing.csv": connector.ErrNotFound,
			"sub":             connector.ErrNotFound,
			"../a.csv":        connector.ErrOutsideBase,
			"sub/../../a.csv": connector.ErrOutsideBase,
			"/etc/passwd":     connector.ErrOutsideBase,
			"a\\..\\b":        connector.ErrOutsideBase,
			"a.csv\r\nDELE x": connector.ErrOutsideBase,
		} {
			rc, _, err := st.Open(ctx, name)
			if err == nil {
				rc.Close()
			}
			if !errors.Is(err, want) {
				t.Errorf("open %q: %v, want %v", name, err, want)
			}
		}
		if _, err := st.List(ctx, "../.."); !errors.Is(err, connector.ErrOutsideBase) {
			t.Errorf("list ../..: %v", err)
		}
		if _, err := st.List(ctx, "nodir"); !errors.Is(err, connector.ErrNotFound) {
			t.Errorf("list nodir: %v, want ErrNotFound", err)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := []string{"big.bin", "a.csv"}[i%2]
				got, _, err := read(ctx, st, name)
				if err == nil && !bytes.Equal(got, Files[name]) {
					err = errors.New(name + ": wrong content")
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})
	t.Run("a context per call", func(t *testing.T) {
		// Pooled connections outlive the call that opened them: later
		// calls, each with its own context ended after it, still work.
		for range 3 {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := st.List(cctx, "")
			if err == nil {
				_, _, err = read(cctx, st, "a.csv")
			}
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if rc, _, err := st.Open(cctx, "a.csv"); err == nil {
			rc.Close()
			t.Error("open with a cancelled context succeeded")
		}
		// The store still works afterwards.
		if _, _, err := read(ctx, st, "a.csv"); err != nil {
			t.Errorf("after a cancelled call: %v", err)
		}
	})
}

func read(ctx context.Context, st connector.Store, name string) ([]byte, connector.FileInfo, error) {
	rc, info, err := st.Open(ctx, name)
	if err != nil {
		return nil, info, err
	}
	b, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return b, info, err
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
