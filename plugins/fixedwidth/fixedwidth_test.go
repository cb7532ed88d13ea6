package fixedwidth_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/openfsb/fsb/plugins/fixedwidth"
	"github.com/openfsb/fsb/sdk/guest"
)

func init() { guest.Decode(fixedwidth.Decode) }

type tcase struct{ name, in, cfg, want string }

// layout: type(2) ssin(11) name(10) amount(9, 2 decimals) active(1)
const layout = `"fields":[{"name":"type","start":1,"length":2},{"name":"ssin","start":3,"length":11,"required":true},{"name":"name","start":14,"length":10},{"name":"amount","start":24,"length":9,"type":"number","decimals":2},{"name":"active","start":33,"length":1,"type":"boolean"}]`

func okCases() []tcase {
	return []tcase{
		{"lines", "0185073003328Jan       000012345J\n0190010100123Marie     000000000N\n", `{` + layout + `}`,
			`[{"type":"01","ssin":"85073003328","name":"Jan","amount":123.45,"active":true},{"type":"01","ssin":"90010100123","name":"Marie","amount":0.00,"active":false}]`},
		{"crlf, blank lines, skip header", "HEADER\r\n\r\n0185073003328Jan       000012345J\r\n", `{"skip":1,` + layout + `}`,
			`[{"type":"01","ssin":"85073003328","name":"Jan","amount":123.45,"active":true}]`},
		{"short record: blank rest", "0185073003328Jan\n", `{` + layout + `}`, `[{"type":"01","ssin":"85073003328","name":"Jan"}]`},
		{"match a record type", "0185073003328Jan       000012345J\n99TRAILER\n", `{"match":{"start":1,"length":2,"value":"01"},` + layout + `}`,
			`[{"type":"01","ssin":"85073003328","name":"Jan","amount":123.45,"active":true}]`},
		{"fixed record length", "AB12CD34", `{"recordLength":4,"fields":[{"name":"k","start":1,"length":2},{"name":"n","start":3,"length":2,"type":"integer"}]}`,
			`[{"k":"AB","n":12},{"k":"CD","n":34}]`},
		{"characters, not bytes", "Liège  42\n", `{"fields":[{"name":"city","start":1,"length":7},{"name":"n","start":8,"length":2,"type":"integer"}]}`,
			`[{"city":"Liège","n":42}]`},
		{"latin1", "Li\xe8ge  42\n", `{"encoding":"latin1","fields":[{"name":"city","start":1,"length":7},{"name":"n","start":8,"length":2,"type":"integer"}]}`,
			`[{"city":"Liège","n":42}]`},
		{"trim modes", "  a  b  \n", `{"fields":[{"name":"l","start":1,"length":4,"trim":"left"},{"name":"r","start":5,"length":4,"trim":"right"},{"name":"n","start":1,"length":8,"trim":"none"}]}`,
			`[{"l":"a ","r":" b","n":"  a  b  "}]`},
		{"signed and zeros", "-00012+0042\n", `{"fields":[{"name":"a","start":1,"length":6,"type":"integer"},{"name":"b","start":7,"length":5,"type":"number","decimals":1}]}`,
			`[{"a":-12,"b":4.2}]`},
		{"empty", "", `{` + layout + `}`, `[]`},
	}
}

func errCases() []tcase {
	return []tcase{
		{"required blank", "01           Jan\n", `{` + layout + `}`, "record 1: ssin is required"},
		{"bad number", "0185073003328Jan       00001X345J\n", `{` + layout + `}`, `record 1: amount: "00001X345" is not a number with 2 implied decimals`},
		{"bad boolean", "0185073003328Jan       000012345Q\n", `{` + layout + `}`, `"Q" is not a boolean`},
		{"strict short", "0185073003328Jan\n", `{"strict":true,` + layout + `}`, "record 1: 16 characters, the layout needs 33"},
		{"no fields", "x", `{}`, "fields: the layout is required"},
		{"bad start", "x", `{"fields":[{"name":"a","start":0,"length":1}]}`, "start counts from 1"},
		{"decimals on string", "x", `{"fields":[{"name":"a","start":1,"length":1,"decimals":2}]}`, "decimals need type number"},
		{"layout past record", "x", `{"recordLength":2,"fields":[{"name":"a","start":2,"length":2}]}`, "past recordLength 2"},
		{"unknown key", "x", `{"fields":[{"name":"a","start":1,"length":1,"lenght":2}]}`, `unknown key "lenght"`},
		{"bad match", "x", `{"match":{"start":1,"length":2,"value":"1"},"fields":[{"name":"a","start":1,"length":1}]}`, "match:"},
		{"too many", "a\nb\n", `{"maxRecords":1,"fields":[{"name":"a","start":1,"length":1}]}`, "more than 1 records"},
	}
}

func TestDecode(t *testing.T) {
	for _, c := range okCases() {
		got, err := guest.Run("decode", []byte(c.in), []byte(c.cfg))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
		if !json.Valid(got) {
			t.Errorf("%s: invalid JSON", c.name)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, c := range errCases() {
		got, err := fixedwidth.Native{}.Decode(context.Background(), []byte(c.in), []byte(c.cfg))
		if err == nil {
			t.Errorf("%s: no error, output %s", c.name, got)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q in it", c.name, err, c.want)
		}
	}
}
