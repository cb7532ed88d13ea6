package fixedwidth_test

import (
	"testing"

	"github.com/openfsb/fsb/plugins/internal/codectest"
	"github.com/openfsb/fsb/plugins/internal/plugintest"
)

const pkg = "github.com/openfsb/fsb/plugins/fixedwidth/wasm"

// TestWasm: the module gives the native output for every case, and fails
// where the native code fails.
func TestWasm(t *testing.T) {
	var ok, failing []codectest.Case
	for _, c := range okCases() {
		ok = append(ok, codectest.Case{Name: c.name, In: c.in, Cfg: c.cfg})
	}
	for _, c := range errCases() {
		failing = append(failing, codectest.Case{Name: c.name, In: c.in, Cfg: c.cfg})
	}
	codectest.MatchesNative(t, "fixedwidth", pkg, "decode", ok, failing)
}

// TestCommittedModule: plugins/fixedwidth/fixedwidth.wasm, the codec file sources
// declare, is the build of this source.
func TestCommittedModule(t *testing.T) {
	plugintest.MatchesCommitted(t, pkg, "fixedwidth.wasm")
}
