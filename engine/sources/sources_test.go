package sources

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/spec"
)

func load(t *testing.T, doc string) *spec.Set {
	t.Helper()
	set, err := spec.Load(map[string][]byte{"s.yaml": []byte(doc)})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

const source = `kind: Source
name: reg
protocol: rest
rest:
  baseUrl: http://127.0.0.1:1
  auth: %s
  operations: {get: {method: GET, path: /x}}
`

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	if err := os.WriteFile(good, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TOKEN": "s3cret-from-env"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		auth, header, errPart string
	}{
		{"{type: bearer, token: {env: TOKEN}}", "Bearer s3cret-from-env", ""},
		{"{type: bearer, token: {file: " + good + "}}", "Bearer s3cret-from-file", ""},
		{"{type: basic, username: u, password: {env: TOKEN}}", "Basic dTpzM2NyZXQtZnJvbS1lbnY=", ""},
		{"{type: bearer, token: {env: MISSING}}", "", "environment variable MISSING is not set"},
		{"{type: bearer, token: {file: " + open + "}}", "", "readable by everyone"},
		{"{type: bearer, token: {file: " + filepath.Join(dir, "nope") + "}}", "", "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.auth, func(t *testing.T) {
			set := load(t, strings.Replace(source, "%s", tc.auth, 1))
			cfg, err := restConfig(set.Sources["reg"], Options{LookupEnv: lookup})
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("error %v, want it to mention %q", err, tc.errPart)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Headers["Authorization"]; got != tc.header {
				t.Errorf("Authorization %q, want %q", got, tc.header)
			}
		})
	}
}

func TestOpenOverridesBaseURLAndReportsEveryFailure(t *testing.T) {
	set := load(t, strings.Replace(source, "%s", "{type: bearer, token: {env: A}}", 1)+
		"---\n"+strings.Replace(strings.Replace(source, "name: reg", "name: other", 1), "%s", "{type: bearer, token: {env: B}}", 1))
	_, err := Open(set, Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err == nil || !strings.Contains(err.Error(), "A is not set") || !strings.Contains(err.Error(), "B is not set") {
		t.Fatalf("want both sources' errors, got %v", err)
	}
	cfg, err := restConfig(set.Sources["reg"], Options{BaseURLs: map[string]string{"reg": "http://127.0.0.1:9"}, LookupEnv: func(string) (string, bool) { return "t", true }})
	if err != nil || cfg.BaseURL != "http://127.0.0.1:9" {
		t.Errorf("override: %v %q", err, cfg.BaseURL)
	}
}
