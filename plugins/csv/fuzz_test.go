package csv_test

import (
	"bytes"
	"context"
	stdcsv "encoding/csv"
	"encoding/json"
	"testing"

	"github.com/openfsb/fsb/plugins/csv"
)

var fuzzConfigs = []string{
	`{}`,
	`{"delimiter":";","decimalComma":true,"trim":true,"fields":[{"column":"a","type":"number"},{"column":"b","type":"integer"},{"column":"c","type":"boolean"}]}`,
	`{"header":false,"ragged":true,"lazyQuotes":true,"comment":"#","fields":[{"column":1,"name":"x"},{"column":3,"name":"y","type":"number"}]}`,
	`{"encoding":"latin1","ragged":true}`,
}

// FuzzDecode: whatever the bytes, decode does not panic, and what it
// returns is a JSON array.
func FuzzDecode(f *testing.F) {
	for _, c := range append(okCases(), errCases()...) {
		f.Add([]byte(c.in), uint8(0))
		f.Add([]byte(c.in), uint8(1))
	}
	f.Add([]byte("a;b;c\n1,5;007;ja\n"), uint8(1))
	f.Add([]byte("x,y,z\n\"q\"\"\",2,-.5e3\n"), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, which uint8) {
		cfg := []byte(fuzzConfigs[int(which)%len(fuzzConfigs)])
		out, err := csv.Native{}.Decode(context.Background(), in, cfg)
		if err != nil {
			return
		}
		var v []map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("invalid output %q for %q: %v", out, in, err)
		}
	})
}

// FuzzRoundTrip: records written by encoding/csv come back as written.
func FuzzRoundTrip(f *testing.F) {
	f.Add("Jan", "a,b", "say \"hi\"")
	f.Add("", "line\nbreak", "é ☃")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		var buf bytes.Buffer
		w := stdcsv.NewWriter(&buf)
		w.Write([]string{"a", "b", "c"})
		w.Write([]string{a, b, c})
		w.Flush()
		out, err := csv.Native{}.Decode(context.Background(), buf.Bytes(), []byte(`{}`))
		if err != nil {
			return // invalid UTF-8, or a record encoding/csv writes but cannot read back (e.g. a lone \r)
		}
		var v []map[string]string
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("invalid output %q: %v", out, err)
		}
		if len(v) == 1 && (v[0]["a"] != a || v[0]["b"] != b || v[0]["c"] != c) {
			// encoding/csv turns \r\n inside quoted fields into \n.
			if !bytes.ContainsRune([]byte(a+b+c), '\r') {
				t.Errorf("round trip: %q %q %q → %s", a, b, c, out)
			}
		}
	})
}
