package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPluginCommands builds the SDK example with `fsb plugin build`,
// inspects it and runs it on an input, as a plugin author would.
func TestPluginCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go plugin for wasm")
	}
	wasmFile := filepath.Join(t.TempDir(), "upper.wasm")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"plugin", "build", "-o", wasmFile, filepath.Join(root, "sdk/example")}, &stdout, &stderr); code != 0 {
		t.Fatalf("build exit %d: %s", code, stderr.String())
	}
	digest := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(stdout.String())
	if digest == "" {
		t.Fatalf("build printed no digest: %s", stdout.String())
	}

	stdout.Reset()
	if code := run([]string{"plugin", "inspect", wasmFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("inspect exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{digest, "abi_version    () -> (i32)", "transform      (i32, i32) -> (i64)", "fsb.config", "verdict  accepted: ABI version 1"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("inspect lacks %q:\n%s", want, stdout.String())
		}
	}

	input := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(input, []byte(`{"name":"zon","city":"gent"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if code := run([]string{"plugin", "run", "-input", input, "-config", `{"fields":["name"]}`, wasmFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("run exit %d: %s", code, stderr.String())
	}
	if got := strings.TrimSpace(stdout.String()); got != `{"name":"ZON","city":"gent"}` {
		t.Errorf("run printed %s", got)
	}

	// a module that is not a plugin is refused, saying why
	bad := filepath.Join(t.TempDir(), "bad.wasm")
	if err := os.WriteFile(bad, []byte("\x00asm\x01\x00\x00\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if code := run([]string{"plugin", "inspect", bad}, &stdout, &stderr); code != 1 || !strings.Contains(stdout.String(), "refused") {
		t.Errorf("empty module: exit %d\n%s", code, stdout.String())
	}
}

// TestInspectConnector: fsb plugin inspect -connector starts the native
// connector process (here this test binary, see TestMain), names what it
// serves, and stops it.
func TestInspectConnector(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"plugin", "inspect", "-connector"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"connector  fsb-connector", "checksum   sha256:", "protocols  ftp, sftp", "verdict    started and answered"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
}
