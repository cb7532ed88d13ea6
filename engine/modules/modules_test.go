package modules

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/spec"
	"github.com/openfsb/fsb/engine/wasm"
)

func TestLoadRefuses(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := `kind: Plugin
name: wrongDigest
module: m.wasm
digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
---
kind: Plugin
name: missing
module: nope.wasm
digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
`
	set, err := spec.Load(map[string][]byte{filepath.Join(dir, "p.yaml"): []byte(doc)})
	if err != nil {
		t.Fatal(err)
	}
	host, err := wasm.NewHost(context.Background(), wasm.HostConfig{CacheDir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	_, err = Load(context.Background(), host, set)
	if err == nil {
		t.Fatal("loaded a module whose digest does not match and one that does not exist")
	}
	for _, want := range []string{`plugin "wrongDigest"`, "digest", `plugin "missing"`, "p.yaml:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
