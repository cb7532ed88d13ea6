package mask_test

import (
	"testing"

	"github.com/openfsb/fsb/plugins/internal/plugintest"
)

// TestWasm: the module gives the native output for every case, and fails
// where the native code fails.
func TestWasm(t *testing.T) {
	var ok, failing []plugintest.Case
	for _, c := range okCases() {
		ok = append(ok, plugintest.Case{Name: c.name, In: c.in, Cfg: c.cfg})
	}
	for _, c := range errCases() {
		failing = append(failing, plugintest.Case{Name: c.name, In: c.in, Cfg: c.cfg})
	}
	plugintest.MatchesNative(t, "mask", "github.com/openfsb/fsb/plugins/mask/wasm", ok, failing)
}

// TestCommittedModule: plugins/mask/mask.wasm is the build of this source.
func TestCommittedModule(t *testing.T) {
	plugintest.MatchesCommitted(t, "github.com/openfsb/fsb/plugins/mask/wasm", "mask.wasm")
}
