package main

import (
	"os"
	"strings"
	"testing"

	"github.com/openfsb/fsb/sdk/guest"
)

func TestUpper(t *testing.T) {
	var logs []string
	guest.SetLogOutput(func(level guest.Level, msg string) { logs = append(logs, level.String()+" "+msg) })
	defer guest.SetLogOutput(nil)

	in := `{"name":"Jan","age":42,"address":{"city":"Liège"},"children":[{"name":"an"},{"name":3}]}`
	cfg := `{"fields":["name","age","address.city","children[*].name","missing"]}`
	out, err := guest.Run("transform", []byte(in), []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"JAN","age":42,"address":{"city":"LIÈGE"},"children":[{"name":"AN"},{"name":3}]}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	if len(logs) != 2 || logs[0] != "DEBUG upper: no string at age" || logs[1] != "DEBUG upper: no string at missing" {
		t.Errorf("logs = %q", logs)
	}

	// A single string works as a list of one.
	out, err = guest.Run("transform", []byte(`{"a":"x","b":"y"}`), []byte(`{"fields":"b"}`))
	if err != nil || string(out) != `{"a":"x","b":"Y"}` {
		t.Errorf("fields as a string: %s, %v", out, err)
	}
}

func TestUpperErrors(t *testing.T) {
	for _, c := range []struct{ in, cfg, want string }{
		{`{"a":"x"}`, `{}`, "config fields is missing"},
		{`{"a":"x"}`, ``, "config fields is missing"},
		{`{"a":"x"}`, `{"fields":`, "configuration"},
		{`{"a":`, `{"fields":["a"]}`, "upper: input"},
		{`{"a":"x"}`, `{"fields":["a..b"]}`, `path "a..b"`},
	} {
		var cfg []byte
		if c.cfg != "" {
			cfg = []byte(c.cfg)
		}
		_, err := guest.Run("transform", []byte(c.in), cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("in %s cfg %s: error %v, want %q", c.in, c.cfg, err, c.want)
		}
	}
	if _, err := guest.Run("decode", nil, nil); err == nil || !strings.Contains(err.Error(), "no decode operation") {
		t.Errorf("decode: %v", err)
	}
}

// BenchmarkUpper runs the plugin natively on a 1 KiB document; the README
// compares it with the same call inside wazero.
func BenchmarkUpper(b *testing.B) {
	in, err := os.ReadFile("testdata/person.json")
	if err != nil {
		b.Fatal(err)
	}
	cfg := []byte(`{"fields":["name","address.city","children[*].name"]}`)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := guest.Run("transform", in, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
