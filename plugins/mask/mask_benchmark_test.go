package mask_test

import (
	"testing"

	"github.com/openfsb/fsb/plugins/internal/plugintest"
)

// benchCfg masks 6 values of the 1 080-byte person document.
var benchCfg = []byte(`{"mode":"hmac","key":"secret","keyId":"k1","paths":["ssin","children[*].ssin","contact.email","address.street"]}`)

func benchInput(b *testing.B) []byte { return plugintest.Input(b, "testdata/person.json") }

func BenchmarkMaskNative(b *testing.B) { plugintest.BenchNative(b, benchInput(b), benchCfg) }

func BenchmarkMaskWasm(b *testing.B) {
	plugintest.BenchWasm(b, "mask", "github.com/openfsb/fsb/plugins/mask/wasm", benchInput(b), benchCfg)
}
