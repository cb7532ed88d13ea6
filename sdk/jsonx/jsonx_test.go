package jsonx

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

const person = `{
  "name": "Jan Peeters",
  "ssin": "85073003328",
  "address": {"street": "Wetstraat", "city": "Brussel", "zip": 1000},
  "items": [
    {"ssin": "1", "kind": "a"},
    {"kind": "b"},
    {"ssin": "3", "kind": "c", "tags": ["x", "y"]}
  ],
  "tags": ["t1", 2, null],
  "esc\u0061ped": "tab\there",
  "a.b": true
}`

func mustParse(t testing.TB, s string) *Doc {
	t.Helper()
	d, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return d
}

// same reports whether two JSON texts hold the same value.
func same(t testing.TB, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %q: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

// fixUTF8 replaces each invalid byte of s with U+FFFD, as encoding/json does.
func fixUTF8(s string) string {
	var b strings.Builder
	for _, r := range s { // range yields U+FFFD for each invalid byte
		b.WriteRune(r)
	}
	return b.String()
}

func TestParsePath(t *testing.T) {
	valid := []struct {
		in, canon string
		n         int
	}{
		{"", "", 0},
		{"a", "a", 1},
		{"a.b", "a.b", 2},
		{"items[*].ssin", "items[*].ssin", 3},
		{"[*]", "[*]", 1},
		{"[0][12]", "[0][12]", 2},
		{"a[0].b[*][3]", "a[0].b[*][3]", 5},
		{`a\.b`, `a\.b`, 1},
		{`a\[0\]`, `a\[0\]`, 1},
		{`\\`, `\\`, 1},
		{`\x`, "x", 1},
		{"0", "0", 1},
		{"a.0", "a.0", 2},
		{"é.ü", "é.ü", 2},
		{"a b", "a b", 1},
		{"[007]", "[7]", 1},
	}
	for _, c := range valid {
		p, err := ParsePath(c.in)
		if err != nil {
			t.Errorf("ParsePath(%q): %v", c.in, err)
			continue
		}
		if len(p.steps) != c.n || p.String() != c.canon {
			t.Errorf("ParsePath(%q) = %d steps %q, want %d %q", c.in, len(p.steps), p.String(), c.n, c.canon)
		}
		if p.IsRoot() != (c.n == 0) {
			t.Errorf("ParsePath(%q).IsRoot() = %v", c.in, p.IsRoot())
		}
		again, err := ParsePath(p.String())
		if err != nil || !reflect.DeepEqual(again.steps, p.steps) {
			t.Errorf("ParsePath(%q) does not round-trip: %v %v", p.String(), again, err)
		}
	}
	invalid := []string{
		".", ".a", "a.", "a..b", "a[", "a[]", "a[-1]", "a[+1]", "a[x]", "a[1", "a]",
		"a[0]b", "a[**]", `a\`, "[*]a", "a.[0]", "a[99999999999999999999]", "[2147483648]",
	}
	for _, in := range invalid {
		if p, err := ParsePath(in); err == nil {
			t.Errorf("ParsePath(%q) = %v, want error", in, p)
		} else if _, ok := err.(*PathError); !ok {
			t.Errorf("ParsePath(%q): error %T, want *PathError", in, err)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("MustPath of a bad path did not panic")
			}
		}()
		MustPath("a..b")
	}()
}

func TestParse(t *testing.T) {
	for _, bad := range []string{
		"", " ", "{", `{"a":}`, `{"a":1,}`, "[1,]", "nul", "NaN", "inf", "01", "1.", "-", `"\x"`,
		"\"a\x01\"", `{"a":1} x`, `"unterminated`, `{"\q":1}`, "1 2",
		"\"\x01\\b\"", // fastjson.Validate v1.6.10 accepts this
		`"\u12"`, `"\u12G4"`, `[1 2]`, `{"a" 1}`, `{1:2}`, `[`, `-01`, `1e`, `.5`, `tru`, `nulls`,
		strings.Repeat("[", fastjson.MaxDepth+1) + strings.Repeat("]", fastjson.MaxDepth+1),
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
	var d Doc
	if got := string(d.Marshal()); got != "null" {
		t.Errorf("zero Doc = %s, want null", got)
	}
	if err := d.Parse([]byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := d.Parse([]byte(`{`)); err == nil {
		t.Fatal("bad JSON parsed")
	}
	if got := string(d.Marshal()); got != "null" {
		t.Errorf("Doc after a failed Parse = %s, want null", got)
	}
	for _, good := range []string{"null", " 1 ", `"x"`, "[]", "{}", `{"a":[1,{"b":null}]}`, "-0.5e+3", "\t\r\n[ ]",
		`"\u00e9\ud83d\ude00\/\b"`, "\"\xff raw bytes\"", strings.Repeat("[", fastjson.MaxDepth-1) + strings.Repeat("]", fastjson.MaxDepth-1)} {
		if err := Validate([]byte(good)); err != nil {
			t.Errorf("Validate(%.40q): %v", good, err)
		}
		d := mustParse(t, good)
		if !same(t, d.Marshal(), good) {
			t.Errorf("round trip of %s gave %s", good, d.Marshal())
		}
	}
}

func TestGet(t *testing.T) {
	d := mustParse(t, person)
	cases := []struct {
		path string
		want []string // JSON of each match
	}{
		{"name", []string{`"Jan Peeters"`}},
		{"address.city", []string{`"Brussel"`}},
		{"address.zip", []string{`1000`}},
		{"items[*].ssin", []string{`"1"`, `"3"`}},
		{"items[*].kind", []string{`"a"`, `"b"`, `"c"`}},
		{"items[2].tags[*]", []string{`"x"`, `"y"`}},
		{"items[*].tags[1]", []string{`"y"`}},
		{"items[1]", []string{`{"kind":"b"}`}},
		{"tags[*]", []string{`"t1"`, `2`, `null`}},
		{"escaped", []string{`"tab\there"`}},
		{`a\.b`, []string{`true`}},
		{"missing", nil},
		{"name.first", nil},
		{"items.ssin", nil},
		{"items[9]", nil},
		{"address[0]", nil},
		{"[*]", nil},
		{"bad..path", nil},
	}
	for _, c := range cases {
		var got []string
		for _, v := range d.GetAll(c.path) {
			got = append(got, string(AppendValue(nil, v)))
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("GetAll(%q) = %q, want %q", c.path, got, c.want)
		}
		first := d.Get(c.path)
		if (first == nil) != (len(c.want) == 0) || first != nil && string(AppendValue(nil, first)) != c.want[0] {
			t.Errorf("Get(%q) = %v, want the first of %q", c.path, first, c.want)
		}
		if d.Exists(c.path) != (len(c.want) > 0) {
			t.Errorf("Exists(%q) = %v", c.path, d.Exists(c.path))
		}
	}
	if got := d.GetAll(""); len(got) != 1 || got[0] != d.Root() {
		t.Errorf("GetAll(\"\") is not the root")
	}
	if s, ok := d.String("items[*].ssin"); !ok || s != "1" {
		t.Errorf("String(items[*].ssin) = %q, %v", s, ok)
	}
	if s, ok := d.String("tags[*]"); !ok || s != "t1" {
		t.Errorf("String(tags[*]) = %q, %v", s, ok)
	}
	if _, ok := d.String("address.zip"); ok {
		t.Error("String of a number succeeded")
	}
	if _, ok := d.String("a..b"); ok {
		t.Error("String of a bad path succeeded")
	}
	if got := d.Strings("tags[*]"); !reflect.DeepEqual(got, []string{"t1"}) {
		t.Errorf("Strings(tags[*]) = %q", got)
	}
	if got := d.Strings("items[*].kind"); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("Strings(items[*].kind) = %q", got)
	}
	if got := d.Strings("nothing"); got != nil {
		t.Errorf("Strings(nothing) = %q", got)
	}
}

func TestSet(t *testing.T) {
	cases := []struct {
		doc, path, value, want string
		err                    string // substring of the error, "" for none
	}{
		{`{}`, "a", `1`, `{"a":1}`, ""},
		{`{"a":1,"b":2}`, "a", `"x"`, `{"a":"x","b":2}`, ""},
		{`{}`, "a.b.c", `true`, `{"a":{"b":{"c":true}}}`, ""},
		{`{"a":{"z":0}}`, "a.b", `null`, `{"a":{"z":0,"b":null}}`, ""},
		{`{"a":[1,2,3]}`, "a[1]", `"two"`, `{"a":[1,"two",3]}`, ""},
		{`{"a":[1,2,3]}`, "a[*]", `0`, `{"a":[0,0,0]}`, ""},
		{`{"a":[{},{"b":1}]}`, "a[*].b", `2`, `{"a":[{"b":2},{"b":2}]}`, ""},
		{`{"a":[{},{"b":1}]}`, "a[*].c.d", `[]`, `{"a":[{"c":{"d":[]}},{"b":1,"c":{"d":[]}}]}`, ""},
		{`{}`, "a[*]", `1`, `{}`, ""},
		{`{"a":[]}`, "a[*].b", `1`, `{"a":[]}`, ""},
		{`[1,[2]]`, "[1][0]", `3`, `[1,[3]]`, ""},
		{`{"a":1}`, "", `[1]`, `[1]`, ""},
		{`{"a":1}`, "a.b", `1`, ``, `at a: cannot set key "b" in number`},
		{`{"a":"s"}`, "a[0]", `1`, ``, `at a: cannot index string`},
		{`{"a":[1]}`, "a[1]", `1`, ``, `index 1 out of range (length 1)`},
		{`{}`, "a[0]", `1`, ``, `no array at key "a"`},
		{`[1]`, "a", `1`, ``, `at the document: cannot set key "a" in array`},
		{`{"a":{}}`, "a[*]", `1`, ``, `cannot iterate over object`},
		{`{}`, "a..b", `1`, ``, `path "a..b"`},
	}
	for _, c := range cases {
		d := mustParse(t, c.doc)
		err := d.SetRaw(c.path, []byte(c.value))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Set(%s, %q, %s) error %v, want %q", c.doc, c.path, c.value, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Set(%s, %q, %s): %v", c.doc, c.path, c.value, err)
			continue
		}
		if got := d.Marshal(); !same(t, got, c.want) {
			t.Errorf("Set(%s, %q, %s) = %s, want %s", c.doc, c.path, c.value, got, c.want)
		}
	}
	d := mustParse(t, `{}`)
	if err := d.SetRaw("a", []byte("{")); err == nil {
		t.Error("SetRaw of bad JSON succeeded")
	}
	if err := d.Set("a", nil); err != nil || string(d.Marshal()) != `{"a":null}` {
		t.Errorf("Set(nil) = %s, %v", d.Marshal(), err)
	}
}

func TestSetCopies(t *testing.T) {
	// One value set at several places: each place gets its own copy.
	d := mustParse(t, `{"a":[1,2]}`)
	if err := d.SetRaw("a[*]", []byte(`{"x":0}`)); err != nil {
		t.Fatal(err)
	}
	if err := d.SetString("a[0].x", "only here"); err != nil {
		t.Fatal(err)
	}
	if got := d.Marshal(); !same(t, got, `{"a":[{"x":"only here"},{"x":0}]}`) {
		t.Errorf("got %s", got)
	}
	// A value set inside itself is copied: no cycle.
	d = mustParse(t, `{"a":{"b":1}}`)
	if err := d.Set("a.c", d.Get("a")); err != nil {
		t.Fatal(err)
	}
	if got := d.Marshal(); !same(t, got, `{"a":{"b":1,"c":{"b":1}}}`) {
		t.Errorf("got %s", got)
	}
	if err := d.Set("a.c.d", d.Root()); err != nil {
		t.Fatal(err)
	}
	if got := d.Marshal(); !same(t, got, `{"a":{"b":1,"c":{"b":1,"d":{"a":{"b":1,"c":{"b":1}}}}}}`) {
		t.Errorf("got %s", got)
	}
}

func TestStrings(t *testing.T) {
	// Every string survives SetString, Get and Marshal; invalid UTF-8 is
	// kept in the value and written as U+FFFD.
	for _, s := range []string{
		"", "plain", `q"uote`, `back\slash`, "nl\n cr\r tab\t bs\b ff\f", "bell\a vt\v nul\x00 esc\x1b del\x7f", "only del \x7f", "c1 \u0080 \u009f shy \u00ad",
		"é ü ñ 日本", "nbsp\u00a0 lsep\u2028", "emoji 😀", "tag \U000E0001", "bad \xff\xfe utf8", "half \xe6\x97",
		`\u0041 looks escaped`, "</script>",
	} {
		d := mustParse(t, `{"k":0}`)
		if err := d.SetString("k", s); err != nil {
			t.Fatal(err)
		}
		if got, ok := d.String("k"); !ok || got != s {
			t.Errorf("SetString(%q) then String = %q, %v", s, got, ok)
		}
		out := d.Marshal()
		var m map[string]string
		if err := json.Unmarshal(out, &m); err != nil {
			t.Errorf("SetString(%q): Marshal wrote %s: %v", s, out, err)
			continue
		}
		if want := fixUTF8(s); m["k"] != want {
			t.Errorf("SetString(%q): Marshal wrote %s, want the value %q", s, out, want)
		}
		// Parse again: the value is the same as encoding/json reads it.
		d2 := mustParse(t, string(out))
		if got, _ := d2.String("k"); got != m["k"] {
			t.Errorf("re-parse of %s gave %q, encoding/json %q", out, got, m["k"])
		}
	}
	// Keys with special characters are escaped on output too.
	d := mustParse(t, `{"a\"b":1,"c\u0007":2,"\ud83d\ude00":3}`)
	if err := d.SetString("new\nkey", "v"); err != nil {
		t.Fatal(err)
	}
	if got := d.Marshal(); !same(t, got, `{"a\"b":1,"c\u0007":2,"😀":3,"new\nkey":"v"}`) {
		t.Errorf("got %s", got)
	}
}

func TestNumbers(t *testing.T) {
	d := mustParse(t, `{"a":1.50,"b":-0,"c":1e400,"d":12345678901234567890123}`)
	if got := string(d.Marshal()); got != `{"a":1.50,"b":-0,"c":1e400,"d":12345678901234567890123}` {
		t.Errorf("numbers not kept as written: %s", got)
	}
	a := d.Arena()
	d.Set("nan", a.NewNumberFloat64(math.NaN()))
	d.Set("inf", a.NewNumberFloat64(math.Inf(-1)))
	d.Set("int", a.NewNumberInt(-42))
	d.Set("junk", a.NewNumberString("0x1f"))
	d.Set("t", a.NewTrue())
	if got := string(d.Marshal()); got != `{"a":1.50,"b":-0,"c":1e400,"d":12345678901234567890123,"nan":null,"inf":null,"int":-42,"junk":null,"t":true}` {
		t.Errorf("got %s", got)
	}
	for s, want := range map[string]bool{
		"0": true, "-0": true, "1.5e-3": true, "10E+2": true, "00": false, "1.": false, ".5": false,
		"-": false, "1e": false, "1e+": false, "NaN": false, "+1": false, "1.5.2": false, "": false,
	} {
		if validNumber([]byte(s)) != want {
			t.Errorf("validNumber(%q) = %v", s, !want)
		}
	}
}

func TestUpdate(t *testing.T) {
	d := mustParse(t, person)
	n, err := d.UpdateStrings("items[*].kind", strings.ToUpper)
	if err != nil || n != 3 {
		t.Fatalf("UpdateStrings = %d, %v", n, err)
	}
	n, _ = d.UpdateStrings("tags[*]", func(s string) string { return s + "!" })
	if n != 1 {
		t.Errorf("UpdateStrings(tags[*]) = %d, want 1 (numbers and null skipped)", n)
	}
	n, _ = d.UpdateStrings("address.nothing", strings.ToUpper)
	if n != 0 {
		t.Errorf("UpdateStrings(missing) = %d", n)
	}
	if _, err := d.UpdateStrings("a[", strings.ToUpper); err == nil {
		t.Error("UpdateStrings of a bad path succeeded")
	}
	n, _ = d.Update("address.zip", func(v *fastjson.Value) *fastjson.Value {
		return d.Arena().NewNumberInt(v.GetInt() + 1)
	})
	if n != 1 {
		t.Errorf("Update(zip) = %d", n)
	}
	n, _ = d.Update("items[1]", func(*fastjson.Value) *fastjson.Value { return nil })
	if n != 1 {
		t.Errorf("Update(items[1]) = %d", n)
	}
	if got := d.Strings("items[*].kind"); !reflect.DeepEqual(got, []string{"A", "C"}) {
		t.Errorf("kinds = %q", got)
	}
	if got := string(AppendValue(nil, d.Get("tags"))); got != `["t1!",2,null]` {
		t.Errorf("tags = %s", got)
	}
	if got := d.Get("address.zip").GetInt(); got != 1001 {
		t.Errorf("zip = %d", got)
	}
	if got := d.Get("items[1]").Type(); got != fastjson.TypeNull {
		t.Errorf("items[1] = %s", got)
	}
	n, _ = d.Update("", func(v *fastjson.Value) *fastjson.Value { return d.NewString("root") })
	if n != 1 || string(d.Marshal()) != `"root"` {
		t.Errorf("Update(root) = %d, %s", n, d.Marshal())
	}
}

func TestDelete(t *testing.T) {
	cases := []struct{ doc, path, want string }{
		{`{"a":1,"b":2}`, "a", `{"b":2}`},
		{`{"a":1,"a":2,"b":3}`, "a", `{"b":3}`},
		{`{"a":{"b":1,"c":2}}`, "a.b", `{"a":{"c":2}}`},
		{`{"a":[1,2,3]}`, "a[1]", `{"a":[1,3]}`},
		{`{"a":[1,2,3]}`, "a[5]", `{"a":[1,2,3]}`},
		{`{"a":[1,2,3]}`, "a[*]", `{"a":[]}`},
		{`{"a":[{"b":1,"c":1},{"c":2}]}`, "a[*].b", `{"a":[{"c":1},{"c":2}]}`},
		{`{"a":[[1,2],[3]]}`, "a[*][0]", `{"a":[[2],[]]}`},
		{`{"a":1}`, "x.y", `{"a":1}`},
		{`{"a":1}`, "a.b", `{"a":1}`},
		{`[1,2]`, "a", `[1,2]`},
		{`{"a\u0062":1}`, "ab", `{}`},
	}
	for _, c := range cases {
		d := mustParse(t, c.doc)
		if err := d.Delete(c.path); err != nil {
			t.Errorf("Delete(%s, %q): %v", c.doc, c.path, err)
			continue
		}
		if got := d.Marshal(); !same(t, got, c.want) {
			t.Errorf("Delete(%s, %q) = %s, want %s", c.doc, c.path, got, c.want)
		}
		if d.Exists(c.path) && !strings.Contains(c.path, "[") {
			t.Errorf("Delete(%s, %q): still exists", c.doc, c.path)
		}
	}
	d := mustParse(t, `{}`)
	if err := d.Delete(""); err == nil {
		t.Error("Delete of the root succeeded")
	}
	if err := d.Delete("a]"); err == nil {
		t.Error("Delete of a bad path succeeded")
	}
}

func TestKeep(t *testing.T) {
	cases := []struct {
		doc   string
		paths []string
		want  string
	}{
		{person, []string{"name"}, `{"name":"Jan Peeters"}`},
		{person, []string{"address.city", "name"}, `{"name":"Jan Peeters","address":{"city":"Brussel"}}`},
		{person, []string{"items[*].ssin"}, `{"items":[{"ssin":"1"},{"ssin":"3"}]}`},
		{person, []string{"items[*].ssin", "items[1].kind"}, `{"items":[{"ssin":"1"},{"kind":"b"},{"ssin":"3"}]}`},
		{person, []string{"items[2].tags[1]", "tags[0]"}, `{"items":[{"tags":["y"]}],"tags":["t1"]}`},
		{person, []string{"address", "address.city"}, `{"address":{"street":"Wetstraat","city":"Brussel","zip":1000}}`},
		{person, []string{"escaped", `a\.b`}, `{"escaped":"tab\there","a.b":true}`},
		{person, []string{"nothing"}, `{}`},
		{person, []string{"name.first"}, `{}`},
		{person, nil, `{}`},
		{person, []string{""}, person},
		{`[{"a":1,"b":2},3,{"a":4}]`, []string{"[*].a"}, `[{"a":1},{"a":4}]`},
		{`[1,2,3]`, []string{"[2]", "[0]"}, `[1,3]`},
		{`[1,2,3]`, []string{"x"}, `[]`},
		{`"s"`, []string{"x"}, `null`},
		{`{"a":1,"a":2}`, []string{"a"}, `{"a":1}`},
	}
	for _, c := range cases {
		d := mustParse(t, c.doc)
		if err := d.Keep(c.paths...); err != nil {
			t.Errorf("Keep(%q): %v", c.paths, err)
			continue
		}
		got := d.Marshal()
		if !same(t, got, c.want) {
			t.Errorf("Keep(%q) = %s, want %s", c.paths, got, c.want)
		}
	}
	// Order of keys is the document's, not the paths'.
	d := mustParse(t, `{"b":1,"a":2,"c":3}`)
	d.Keep("c", "a")
	if got := string(d.Marshal()); got != `{"a":2,"c":3}` {
		t.Errorf("Keep order: %s", got)
	}
	d = mustParse(t, `{"a":1}`)
	if err := d.Keep("a", "b["); err == nil {
		t.Error("Keep with a bad path succeeded")
	}
	if got := string(d.Marshal()); got != `{"a":1}` {
		t.Errorf("failed Keep changed the document: %s", got)
	}
	// The kept document can still be edited.
	d = mustParse(t, person)
	d.Keep("items[*].ssin")
	if err := d.SetString("items[0].ssin", "X"); err != nil {
		t.Fatal(err)
	}
	if got := d.Marshal(); !same(t, got, `{"items":[{"ssin":"X"},{"ssin":"3"}]}`) {
		t.Errorf("got %s", got)
	}
}

func TestReuse(t *testing.T) {
	var d Doc
	for i, s := range []string{`{"a":"one"}`, `{"a":"two","b":[1,2]}`, `[]`} {
		if err := d.Parse([]byte(s)); err != nil {
			t.Fatal(err)
		}
		d.SetRaw("a", []byte(`"x"`))
		if i == 2 {
			if got := string(d.Marshal()); got != `[]` {
				t.Errorf("got %s", got)
			}
			continue
		}
		if got, _ := d.String("a"); got != "x" {
			t.Errorf("round %d: a = %q", i, got)
		}
	}
}

func TestInputNotRetained(t *testing.T) {
	in := []byte(`{"a":"value"}`)
	d := mustParse(t, string(in))
	d2, _ := Parse(in)
	for i := range in {
		in[i] = ' '
	}
	if got, _ := d2.String("a"); got != "value" {
		t.Errorf("Parse keeps a reference to its input: %q", got)
	}
	_ = d
}

func BenchmarkUpper(b *testing.B) {
	doc := []byte(person)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	var d Doc
	for b.Loop() {
		if err := d.Parse(doc); err != nil {
			b.Fatal(err)
		}
		d.UpdateStrings("name", strings.ToUpper)
		d.UpdateStrings("items[*].kind", strings.ToUpper)
		_ = d.Marshal()
	}
}
