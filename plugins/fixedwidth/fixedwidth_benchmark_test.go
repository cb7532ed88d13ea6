package fixedwidth_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/wasm"
	"github.com/openfsb/fsb/plugins/internal/codectest"
)

// benchFile is 2,000 records of 33 characters, about 66 KiB.
func benchFile() []byte {
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "01%011d%-10s%09dJ\n", 85073003328+i, fmt.Sprint("Name", i), i*137)
	}
	return []byte(b.String())
}

func BenchmarkDecode(b *testing.B) {
	codectest.Bench(b, "fixedwidth", pkg, "decode", benchFile(), []byte(`{`+layout+`}`),
		wasm.Limits{MaxMemory: 64 << 20, MaxInput: 1 << 20, MaxOutput: 4 << 20, Timeout: 5 * time.Second})
}
