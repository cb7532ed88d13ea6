package csv_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/openfsb/fsb/plugins/csv"
	"github.com/openfsb/fsb/sdk/guest"
)

func init() { guest.Decode(csv.Decode) }

type tcase struct{ name, in, cfg, want string }

func okCases() []tcase {
	return []tcase{
		{"header", "id,name\n1,Jan\n2,Marie\n", `{}`, `[{"id":"1","name":"Jan"},{"id":"2","name":"Marie"}]`},
		{"no trailing newline, CRLF", "id,name\r\n1,Jan\r\n2,Marie", `{}`, `[{"id":"1","name":"Jan"},{"id":"2","name":"Marie"}]`},
		{"quotes", "a,b\n\"x, y\",\"say \"\"hi\"\"\"\n\"multi\nline\",z\n", `{}`, `[{"a":"x, y","b":"say \"hi\""},{"a":"multi\nline","b":"z"}]`},
		{"mapping and types", "Ondernemingsnummer;Naam;Werknemers;Actief;Omzet\n0912345673;\"De \"\"Koekoek\"\"\";012;ja;1250000,50\n0203201340;Liège;;nee;\n",
			`{"delimiter":";","decimalComma":true,"fields":[{"column":"Ondernemingsnummer","name":"enterpriseNumber","required":true},{"column":"Naam","name":"name"},{"column":"Werknemers","name":"employees","type":"integer"},{"column":"Actief","name":"active","type":"boolean"},{"column":"Omzet","name":"turnover","type":"number"}]}`,
			`[{"enterpriseNumber":"0912345673","name":"De \"Koekoek\"","employees":12,"active":true,"turnover":1250000.50},{"enterpriseNumber":"0203201340","name":"Liège","active":false}]`},
		{"field order and subset", "a,b,c\n1,2,3\n", `{"fields":[{"column":"c"},{"column":"a","name":"x"}]}`, `[{"c":"3","x":"1"}]`},
		{"no header, columns", "1,Jan\n", `{"header":false,"columns":["id","name"]}`, `[{"id":"1","name":"Jan"}]`},
		{"no header, positions", "1,Jan,x\n", `{"header":false,"fields":[{"column":2,"name":"name"},{"column":1,"name":"id","type":"integer"}]}`, `[{"name":"Jan","id":1}]`},
		{"tab and comment", "# exported\na\tb\n1\t2\n", `{"delimiter":"\\t","comment":"#"}`, `[{"a":"1","b":"2"}]`},
		{"trim", "a , b\n 1 ,  2 \n", `{"trim":true}`, `[{"a":"1","b":"2"}]`},
		{"ragged", "a,b,c\n1\n1,2,3,4\n", `{"ragged":true}`, `[{"a":"1"},{"a":"1","b":"2","c":"3"}]`},
		{"latin1", "naam\nLi\xe8ge\n", `{"encoding":"latin1"}`, `[{"naam":"Liège"}]`},
		{"bom", "\xef\xbb\xbfid\n7\n", `{}`, `[{"id":"7"}]`},
		{"empty file", "", `{}`, `[]`},
		{"header only", "a,b\n", `{}`, `[]`},
		{"numbers digit for digit", "n\n+007\n-0\n.5\n12345678901234567890.10\n1e3\n", `{"fields":[{"column":"n","type":"number"}]}`,
			`[{"n":7},{"n":0},{"n":0.5},{"n":12345678901234567890.10},{"n":1e3}]`},
		{"escapes", "k\n\"\x01\\\u2028\"\n", `{}`, `[{"k":"\u0001\\` + "\u2028" + `"}]`},
	}
}

func errCases() []tcase {
	return []tcase{
		{"short record", "a,b\n1\n", `{}`, "line 2: 1 fields, the header has 2"},
		{"bad integer", "n\nx\n", `{"fields":[{"column":"n","type":"integer"}]}`, `line 2: n: "x" is not an integer`},
		{"required", "a,b\n,1\n", `{"fields":[{"column":"a","required":true}]}`, "line 2: a is required"},
		{"missing column", "a\n1\n", `{"fields":[{"column":"b"}]}`, `no column "b" (there are: a)`},
		{"bad quote", "a\n\"x\n", `{}`, "extraneous or missing"},
		{"invalid utf-8", "a\n\xff\n", `{}`, "invalid UTF-8 at byte 2"},
		{"unknown key", "a\n", `{"delimter":";"}`, `unknown key "delimter"`},
		{"bad delimiter", "a\n", `{"delimiter":";;"}`, "delimiter: want one character"},
		{"no names", "1\n", `{"header":false}`, "without a header"},
		{"too many", "a\n1\n2\n", `{"maxRecords":1}`, "more than 1 records"},
		{"duplicate header", "a,a\n1,2\n", `{}`, `column "a" twice`},
		{"bad type", "a\n", `{"fields":[{"column":"a","type":"date"}]}`, `type "date"`},
		{"not json", "a\n", `{`, "configuration"},
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
			t.Errorf("%s: invalid JSON %s", c.name, got)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, c := range errCases() {
		got, err := csv.Native{}.Decode(context.Background(), []byte(c.in), []byte(c.cfg))
		if err == nil {
			t.Errorf("%s: no error, output %s", c.name, got)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q in it", c.name, err, c.want)
		}
	}
}
