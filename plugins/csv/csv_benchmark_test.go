package csv_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/wasm"
	"github.com/openfsb/fsb/plugins/internal/codectest"
)

// benchFile is 2,000 enterprise records, about 110 KiB.
func benchFile() []byte {
	var b strings.Builder
	b.WriteString("Ondernemingsnummer;Naam;Werknemers;Actief;Omzet\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "0%09d;\"Onderneming %d, Liège\";%d;ja;%d,%02d\n", 200000000+i*7, i, i%500, i*1000, i%100)
	}
	return []byte(b.String())
}

var benchCfg = []byte(`{"delimiter":";","decimalComma":true,"fields":[{"column":"Ondernemingsnummer","name":"enterpriseNumber"},{"column":"Naam","name":"name"},{"column":"Werknemers","name":"employees","type":"integer"},{"column":"Actief","name":"active","type":"boolean"},{"column":"Omzet","name":"turnover","type":"number"}]}`)

func BenchmarkDecode(b *testing.B) {
	codectest.Bench(b, "csv", pkg, "decode", benchFile(), benchCfg,
		wasm.Limits{MaxMemory: 64 << 20, MaxInput: 1 << 20, MaxOutput: 4 << 20, Timeout: 5 * time.Second})
}
