package guest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The exports and imports ABI.md requires, with their signatures.
var (
	abiExports = map[string]string{
		"memory":      "memory",
		"_initialize": "()->()",
		"abi_version": "()->i32",
		"alloc":       "(i32)->i32",
		"free":        "(i32,i32)->()",
		"transform":   "(i32,i32)->i64",
		"encode":      "(i32,i32)->i64",
		"decode":      "(i32,i32)->i64",
	}
	abiImports = map[string]string{
		"fsb.config": "(i32,i32)->i32",
		"fsb.log":    "(i32,i32,i32)->()",
	}
)

// TestBuildWasm builds the example plugin for wasip1 as CI would and checks
// that it is a WebAssembly module whose exports and imports are exactly
// those of ABI.md, so that an SDK that stops compiling for wasm, or drifts
// from the contract, fails here.
func TestBuildWasm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm module (several seconds); skipped with -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	out := filepath.Join(t.TempDir(), "upper.wasm")
	cmd := exec.Command(goTool, "build", "-buildmode=c-shared", "-trimpath", "-o", out, "github.com/openfsb/fsb/sdk/example")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x00asm")) {
		t.Fatalf("%s does not start with the wasm magic: % x", out, b[:min(8, len(b))])
	}
	t.Logf("upper.wasm: %d bytes", len(b))

	m, err := parseWasm(b)
	if err != nil {
		t.Fatalf("reading the module: %v", err)
	}
	for name, want := range abiExports {
		if got, ok := m.exports[name]; !ok {
			t.Errorf("export %s missing", name)
		} else if got != want {
			t.Errorf("export %s: %s, ABI.md says %s", name, got, want)
		}
	}
	for _, name := range m.order {
		if _, ok := abiExports[name]; !ok {
			// The host takes any other (i32,i32)->i64 export for an operation.
			t.Errorf("unexpected export %s %s", name, m.exports[name])
		}
	}
	var imports []string
	for name, sig := range m.imports {
		imports = append(imports, name+" "+sig)
		if want, ok := abiImports[name]; ok {
			if sig != want {
				t.Errorf("import %s: %s, ABI.md says %s", name, sig, want)
			}
		} else if !strings.HasPrefix(name, "wasi_snapshot_preview1.") {
			t.Errorf("unexpected import %s %s", name, sig)
		}
	}
	for name := range abiImports {
		if _, ok := m.imports[name]; !ok {
			t.Errorf("import %s missing", name)
		}
	}
	sort.Strings(imports)
	t.Logf("exports: %v", m.exports)
	t.Logf("imports: %s", strings.Join(imports, "; "))
}

func TestParseWasm(t *testing.T) {
	// A hand-assembled module: type (i32,i32)->i64, import fsb.f of it,
	// one function of type ()->(), exports "op" (the import) and "mem".
	mod := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x0a\x02\x60\x02\x7f\x7f\x01\x7e\x60\x00\x00" + // types
		"\x02\x09\x01\x03fsb\x01f\x00\x00" + // imports
		"\x03\x02\x01\x01" + // functions
		"\x05\x03\x01\x00\x01" + // memory (ignored)
		"\x07\x10\x03\x02op\x00\x00\x03mem\x02\x00\x01g\x00\x01") // exports
	m, err := parseWasm(mod)
	if err != nil {
		t.Fatal(err)
	}
	if m.imports["fsb.f"] != "(i32,i32)->i64" || m.exports["op"] != "(i32,i32)->i64" ||
		m.exports["mem"] != "memory" || m.exports["g"] != "()->()" {
		t.Errorf("parsed %+v", m)
	}
	for _, bad := range [][]byte{nil, []byte("\x00asm"), []byte("\x00asm\x02\x00\x00\x00"), mod[:19], mod[:len(mod)-1]} {
		if _, err := parseWasm(bad); err == nil {
			t.Errorf("parseWasm(% x) succeeded", bad)
		}
	}
}
