package modules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
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
	_, err = Load(context.Background(), host, set, Options{})
	if err == nil {
		t.Fatal("loaded a module whose digest does not match and one that does not exist")
	}
	var list spec.ErrorList
	if !errors.As(err, &list) || len(list) != 2 {
		t.Fatalf("want a spec.ErrorList of 2, got %v", err)
	}
	for i, want := range []string{`p.yaml:4:9: plugin "wrongDigest": digest mismatch`, `p.yaml:8:9: plugin "missing": read module`} {
		if !strings.Contains(list[i].Error(), want) {
			t.Errorf("error %d = %v, want %q", i, list[i], want)
		}
	}
}

// TestSecrets: a plugin's secrets reach the guest in the configuration of
// every call (echo.wat answers its configuration to an input starting with
// $), are never written in a plan, and an unreadable one refuses the load
// without its value in the error — unless flow tests ask for test values.
func TestSecrets(t *testing.T) {
	dir, digest := echoModule(t)
	doc := `kind: Plugin
name: echo
module: echo.wasm
digest: ` + digest + `
secrets:
  key: {env: ECHO_KEY}
  token: {env: ECHO_TOKEN}
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

	env := map[string]string{"ECHO_KEY": `k"1`, "ECHO_TOKEN": "t2"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	plugins, err := Load(context.Background(), host, set, Options{LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ config, want string }{
		{`{}`, `{"key":"k\"1","token":"t2"}`},
		{``, `{"key":"k\"1","token":"t2"}`},
		{`{"paths":["a"]}`, `{"key":"k\"1","token":"t2","paths":["a"]}`},
	} {
		out, err := plugins["echo"].Call(context.Background(), "transform", []byte("$"), []byte(tc.config))
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != tc.want {
			t.Errorf("config %q: the guest saw %s, want %s", tc.config, out, tc.want)
		}
	}

	delete(env, "ECHO_TOKEN")
	if _, err := Load(context.Background(), host, set, Options{LookupEnv: lookup}); err == nil ||
		!strings.Contains(err.Error(), "ECHO_TOKEN is not set") || strings.Contains(err.Error(), `k"1`) {
		t.Errorf("err = %v: want ECHO_TOKEN named and no secret value", err)
	}
	plugins, err = Load(context.Background(), host, set, Options{LookupEnv: lookup, TestSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	out, err := plugins["echo"].Call(context.Background(), "transform", []byte("$"), nil)
	if err != nil || string(out) != `{"key":"test-secret-key","token":"test-secret-token"}` { // set or not
		t.Errorf("test secrets: %s, %v", out, err)
	}
}

// echoModule compiles testdata/wasm/echo.wat into a temporary directory as
// echo.wasm and returns the directory and the module's digest.
func echoModule(t *testing.T) (dir, digest string) {
	tool, err := exec.LookPath("wat2wasm")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("wat2wasm not found: apt-get install wabt")
		}
		t.Skip("wat2wasm not found")
	}
	dir = t.TempDir()
	bin := filepath.Join(dir, "echo.wasm")
	if out, err := exec.Command(tool, "../../testdata/wasm/echo.wat", "-o", bin).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return dir, "sha256:" + hex.EncodeToString(sum[:])
}

// TestUnknownOperation: a transform step naming an operation its module
// does not export is refused at load, at the step's op.
func TestUnknownOperation(t *testing.T) {
	dir, digest := echoModule(t)
	doc := `kind: Plugin
name: echo
module: echo.wasm
digest: ` + digest + `
---
kind: Flow
name: f
version: 1.0.0
method: GET
path: /f/v1/x
steps:
  - id: enc
    transform: {plugin: echo, op: encrypt, input: '{"a": 1}'}
output: steps.enc.body
`
	set, err := spec.Load(map[string][]byte{filepath.Join(dir, "p.yaml"): []byte(doc)})
	if err != nil {
		t.Fatal(err)
	}
	_, closeAll, err := Open(context.Background(), set, Options{CacheDir: filepath.Join(t.TempDir(), "cache")})
	if err == nil {
		closeAll()
		t.Fatal("loaded a flow calling an operation the module lacks")
	}
	if want := `/p.yaml:13:35: step "enc": plugin "echo" exports no operation "encrypt" (it has transform)`; !strings.HasSuffix(err.Error(), want) {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
}
