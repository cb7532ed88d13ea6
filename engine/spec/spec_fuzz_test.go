package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary YAML to the loader: it must never panic, and
// every error it reports must name the file and a line within it.
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"../../flows/*.yaml", "../../testdata/validate/*/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte("kind: Flow\nname: [\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("kind: Source\nrest: &a {baseUrl: *a}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		set, err := Load(map[string][]byte{"f.yaml": b})
		if err == nil {
			if set == nil {
				t.Fatal("nil set without error")
			}
			return
		}
		var list ErrorList
		if !errors.As(err, &list) {
			t.Fatalf("error is not an ErrorList: %v", err)
		}
		lines := strings.Count(string(b), "\n") + 1
		for _, e := range list {
			if e.Pos.File != "f.yaml" || e.Pos.Line < 1 || e.Pos.Line > lines {
				t.Fatalf("error outside the file (%d lines): %v", lines, e)
			}
			_ = e.Snippet()
		}
	})
}
