package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretRead(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k.txt"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "open.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := Pos{File: filepath.Join(dir, "plugins.yaml"), Line: 3, Col: 5}
	env := func(k string) (string, bool) { return map[string]string{"K": "v"}[k], k == "K" }
	for _, tc := range []struct {
		s       *Secret
		want    string
		wantErr string
	}{
		{&Secret{Pos: doc, File: "k.txt"}, "s3cret", ""}, // relative to the document
		{&Secret{Pos: doc, File: filepath.Join(dir, "k.txt")}, "s3cret", ""},
		{&Secret{Pos: doc, File: "open.txt"}, "", "readable by everyone"},
		{&Secret{Pos: doc, File: "none.txt"}, "", filepath.Join(dir, "none.txt")},
		{&Secret{Pos: doc, Env: "K"}, "v", ""},
		{&Secret{Pos: doc, Env: "UNSET"}, "", "UNSET is not set"},
	} {
		got, err := tc.s.Read(env)
		switch {
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("%+v: %q, %v", tc.s, got, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%+v: err %v, want %q", tc.s, err, tc.wantErr)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}
