package fixedwidth_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/openfsb/fsb/plugins/fixedwidth"
)

var fuzzConfigs = []string{
	`{` + layout + `}`,
	`{"recordLength":5,"fields":[{"name":"a","start":1,"length":2,"type":"integer"},{"name":"b","start":3,"length":3,"type":"number","decimals":1}]}`,
	`{"encoding":"latin1","skip":1,"match":{"start":1,"length":1,"value":"x"},"fields":[{"name":"a","start":2,"length":3,"trim":"none"},{"name":"b","start":4,"length":2,"type":"boolean"}]}`,
}

// FuzzDecode: whatever the bytes, decode does not panic, and what it
// returns is a JSON array of objects.
func FuzzDecode(f *testing.F) {
	for _, c := range append(okCases(), errCases()...) {
		f.Add([]byte(c.in), uint8(0))
	}
	f.Add([]byte("12-0.5\n"), uint8(1))
	f.Add([]byte("h\nxab1 \nxé€j\n"), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, which uint8) {
		cfg := []byte(fuzzConfigs[int(which)%len(fuzzConfigs)])
		out, err := fixedwidth.Native{}.Decode(context.Background(), in, cfg)
		if err != nil {
			return
		}
		var v []map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("invalid output %q for %q: %v", out, in, err)
		}
	})
}
