package jsonx

import (
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

func TestLocate(t *testing.T) {
	doc := `{"ssin":"85073003328", "n": -1.5e3, "ok":true, "no":null,
	  "kids":[{"ssin":"1"},{"name":"x"},{"ssin":"2","ssin":"3"}],
	  "a.b":{"c":[[1,2],[3]]}, "esc\u0061ped":"v\"q", "empty":{}}`
	for _, tc := range []struct {
		paths []string
		want  []string // the selected texts, in document order
	}{
		{[]string{"ssin"}, []string{`"85073003328"`}},
		{[]string{"n", "ok", "no"}, []string{`-1.5e3`, `true`, `null`}},
		{[]string{"kids[*].ssin"}, []string{`"1"`, `"2"`, `"3"`}}, // both members of a repeated key
		{[]string{"kids[1]"}, []string{`{"name":"x"}`}},
		{[]string{"kids[*]", "kids[0].ssin"}, []string{`{"ssin":"1"}`, `"1"`, `{"name":"x"}`, `{"ssin":"2","ssin":"3"}`}},
		{[]string{`a\.b.c[0][1]`, `a\.b.c[*][0]`}, []string{`1`, `2`, `3`}},
		{[]string{"escaped"}, []string{`"v\"q"`}},
		{[]string{"ssin", "ssin"}, []string{`"85073003328"`}}, // once per value
		{[]string{"nothing", "ssin.deeper", "kids[9]", "empty.x"}, nil},
		{[]string{""}, []string{doc}},
	} {
		var paths []Path
		for _, p := range tc.paths {
			paths = append(paths, MustPath(p))
		}
		spans, err := Locate([]byte(doc), paths...)
		if err != nil {
			t.Fatalf("%v: %v", tc.paths, err)
		}
		var got []string
		for _, s := range spans {
			got = append(got, doc[s.Start:s.End])
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v: got %q, want %q", tc.paths, got, tc.want)
		}
	}
	spans, _ := Locate([]byte(doc), MustPath("escaped"), MustPath("n"))
	if s, ok := spans[1].Unquote([]byte(doc)); !ok || s != `v"q` || spans[0].Kind != KindNumber || spans[1].Kind != KindString {
		t.Errorf("kinds %v, unquote %q", spans, s)
	}
	for _, bad := range []string{`{"a":1,}`, `{"a":"x` + "\x01" + `"}`, `[1 2]`, `{"a":1} x`, ``, `{"a":[1,2}`} {
		if _, err := Locate([]byte(bad), MustPath("a")); err == nil || !strings.Contains(err.Error(), "invalid JSON") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

// FuzzLocate: Locate accepts exactly what Validate accepts, and for a
// document without repeated keys selects what Doc.GetAll selects, in the
// same order.
func FuzzLocate(f *testing.F) {
	f.Add(`{"a":{"b":[1,{"c":2}]},"d":"x"}`, "a.b[*].c")
	f.Add(`[{"a":1},{"a":[2,3]}]`, "[*].a")
	f.Add(`{"a\\u0062":[[],{}]}`, "ab[1]")
	f.Fuzz(func(t *testing.T, doc, path string) {
		p, err := ParsePath(path)
		if err != nil {
			return
		}
		spans, err := Locate([]byte(doc), p)
		if (err == nil) != Valid([]byte(doc)) {
			t.Fatalf("Locate err %v, Valid %v", err, Valid([]byte(doc)))
		}
		if err != nil {
			return
		}
		var parser fastjson.Parser
		root, err := parser.Parse(doc)
		if err != nil || repeatedKeys(root) {
			return
		}
		d, err := Parse([]byte(doc))
		if err != nil {
			t.Fatalf("Valid but Parse: %v", err)
		}
		defer d.Release()
		want := d.GetAll(p.String())
		if len(want) != len(spans) {
			t.Fatalf("%d spans, GetAll %d", len(spans), len(want))
		}
		for i, s := range spans {
			v, err := fastjson.Parse(doc[s.Start:s.End])
			if err != nil {
				t.Fatalf("span %d %q: %v", i, doc[s.Start:s.End], err)
			}
			if got, w := string(AppendValue(nil, v)), string(AppendValue(nil, want[i])); got != w {
				t.Fatalf("span %d = %s, GetAll %s", i, got, w)
			}
		}
	})
}

func repeatedKeys(v *fastjson.Value) bool {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		seen, rep := map[string]bool{}, false
		o.Visit(func(k []byte, c *fastjson.Value) {
			rep = rep || seen[string(k)] || repeatedKeys(c)
			seen[string(k)] = true
		})
		return rep
	case fastjson.TypeArray:
		a, _ := v.Array()
		return slices.ContainsFunc(a, repeatedKeys)
	}
	return false
}
