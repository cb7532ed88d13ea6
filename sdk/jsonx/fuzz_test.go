package jsonx

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzPaths checks, for arbitrary bytes, path and string:
//   - nothing panics;
//   - Parse accepts only valid JSON, and Marshal of a parsed document is
//     valid JSON holding the same value;
//   - after SetString succeeds, every value the path matches is that string;
//   - Delete leaves valid JSON, and a key path without [ ] matches nothing after;
//   - Keep always leaves valid JSON, and the kept values are still there.
func FuzzPaths(f *testing.F) {
	f.Add([]byte(person), "items[*].ssin", "X")
	f.Add([]byte(person), "address.city", "Liège")
	f.Add([]byte(person), "", "root")
	f.Add([]byte(`{"a":[1,[2,{"b":3}]]}`), "a[1][1].b", "\x00\xff")
	f.Add([]byte(`[{"a\u0000":1},{"a\"":2}]`), `[*].a\"`, `"`)
	f.Add([]byte(`{"a":{"b":{}}}`), "a.b.c.d", "deep")
	f.Add([]byte(`"\ud800"`), "[0]", "")
	f.Add([]byte(`{"k":"v","k":"w"}`), "k", "z")
	f.Fuzz(func(t *testing.T, data []byte, path, s string) {
		p, perr := ParsePath(path)
		if perr == nil {
			if again, err := ParsePath(p.String()); err != nil || !reflect.DeepEqual(again.steps, p.steps) {
				t.Fatalf("path %q: canonical %q does not round-trip (%v)", path, p.String(), err)
			}
		}
		d, err := Parse(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Parse accepted invalid JSON %q", data)
		}
		out := d.Marshal()
		checkValid(t, "Marshal", out)
		if !bytes.Contains(bytes.ToLower(data), []byte(`\ud`)) { // fastjson keeps lone surrogates as text
			var a, b any
			if json.Unmarshal(data, &a) == nil { // encoding/json may reject what fastjson accepts (depth)
				if err := json.Unmarshal(out, &b); err != nil || !reflect.DeepEqual(a, b) {
					t.Fatalf("Marshal changed the value:\n in %s\nout %s", data, out)
				}
			}
		}

		// Getters never panic.
		d.GetAll(path)
		d.String(path)
		d.Strings(path)

		// Set then get.
		d = mustParse(t, string(data))
		if err := d.SetString(path, s); err == nil {
			if perr != nil {
				t.Fatalf("SetString accepted bad path %q", path)
			}
			for _, v := range d.GetAll(path) {
				got, err := v.StringBytes()
				if err != nil || string(got) != s {
					t.Fatalf("SetString(%q, %q) then GetAll gave %s", path, s, AppendValue(nil, v))
				}
			}
			if !hasAll(p) && d.Get(path) == nil {
				t.Fatalf("SetString(%q) then Get found nothing", path)
			}
			checkValid(t, "SetString", d.Marshal())
		}

		// Delete.
		d = mustParse(t, string(data))
		if err := d.Delete(path); err == nil {
			checkValid(t, "Delete", d.Marshal())
			if onlyKeys(p) && d.Exists(path) {
				t.Fatalf("Delete(%q) left %s", path, d.Marshal())
			}
		}

		// Keep, with the path and the path of its container.
		d = mustParse(t, string(data))
		before := d.GetAll(path)
		var kept [][]byte
		for _, v := range before {
			kept = append(kept, AppendValue(nil, v))
		}
		if err := d.Keep(path, parent(p).String()); err == nil {
			checkValid(t, "Keep", d.Marshal())
		}
		d = mustParse(t, string(data))
		if err := d.Keep(path); err == nil {
			out := d.Marshal()
			checkValid(t, "Keep", out)
			after := d.GetAll(path)
			if onlyKeys(p) && !p.IsRoot() && len(after) != len(before) {
				t.Fatalf("Keep(%q): %d matches before, %d after: %s", path, len(before), len(after), out)
			}
			if onlyKeys(p) {
				for i, v := range after {
					if got := AppendValue(nil, v); !bytes.Equal(got, kept[i]) {
						t.Fatalf("Keep(%q) changed a kept value: %s, was %s", path, got, kept[i])
					}
				}
			}
		} else if perr == nil {
			t.Fatalf("Keep(%q): %v", path, err)
		}
	})
}

func checkValid(t *testing.T, what string, out []byte) {
	t.Helper()
	if !json.Valid(out) || !utf8.Valid(out) {
		t.Fatalf("%s wrote invalid JSON: %q", what, out)
	}
}

func hasAll(p Path) bool {
	for _, s := range p.steps {
		if s.kind == stepAll {
			return true
		}
	}
	return false
}

// onlyKeys reports whether p has key steps only: on those, Keep and
// Delete are exact (index steps renumber elements).
func onlyKeys(p Path) bool {
	for _, s := range p.steps {
		if s.kind != stepKey {
			return false
		}
	}
	return true
}

func parent(p Path) Path {
	if len(p.steps) == 0 {
		return p
	}
	return Path{steps: p.steps[:len(p.steps)-1]}
}

// FuzzValid checks Valid against encoding/json.Valid (which has no depth
// limit but the same grammar).
func FuzzValid(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e-3,"x\u00e9\n"],"b":null}`, "\"\x01\\b\"", `[-0,1E+2]`, `"\ud800"`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Validate(data)
		if want := json.Valid(data); (err == nil) != want {
			var se *SyntaxError
			if !want || !errors.As(err, &se) || !strings.Contains(se.Msg, "nested deeper") {
				t.Fatalf("Validate(%q) = %v, encoding/json says valid=%v", data, err, want)
			}
		}
		if err == nil {
			if _, perr := Parse(data); perr != nil {
				t.Fatalf("Validate accepts %q, Parse says %v", data, perr)
			}
		}
	})
}
