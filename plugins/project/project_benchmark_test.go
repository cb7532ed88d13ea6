package project_test

import (
	"testing"

	"github.com/openfsb/fsb/plugins/internal/plugintest"
)

// benchCfg keeps 3 paths (6 values) of the 1 KiB enterprise document.
var benchCfg = []byte(`{"keep":["enterpriseNumber","address.municipality","directors[*].name"]}`)

func benchInput(b *testing.B) []byte { return plugintest.Input(b, "testdata/enterprise.json") }

func BenchmarkProjectNative(b *testing.B) { plugintest.BenchNative(b, benchInput(b), benchCfg) }

func BenchmarkProjectWasm(b *testing.B) {
	plugintest.BenchWasm(b, "project", "github.com/openfsb/fsb/plugins/project/wasm", benchInput(b), benchCfg)
}
