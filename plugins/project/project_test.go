package project_test

import (
	"strings"
	"testing"

	"github.com/openfsb/fsb/plugins/project"
	"github.com/openfsb/fsb/sdk/guest"
)

func init() { guest.Transform(project.Transform) }

type okCase struct{ name, in, cfg, want string }

// okCases are shared with the WASM test, which checks the module gives the
// same output.
func okCases() []okCase {
	return []okCase{
		{"brief example",
			`{"enterpriseNumber":"0912345673","status":"active","address":{"street":"Kunstlaan","municipality":"Brussel"},"directors":[{"ssin":"1","name":"Jan"},{"ssin":"2"},{"ssin":"3","name":"Marie"}]}`,
			`{"keep":["enterpriseNumber","address.municipality","directors[*].name"]}`,
			`{"enterpriseNumber":"0912345673","address":{"municipality":"Brussel"},"directors":[{"name":"Jan"},{"name":"Marie"}]}`},
		{"missing paths ignored", `{"a":1,"b":2}`, `{"keep":["a","c","d.e","f[*].g"]}`, `{"a":1}`},
		{"nothing matches", `{"a":1}`, `{"keep":["x"]}`, `{}`},
		{"nothing matches in array", `[1,2]`, `{"keep":["x"]}`, `[]`},
		{"scalar document", `"x"`, `{"keep":["x"]}`, `null`},
		{"non-string values kept whole", `{"n":1.5e3,"t":true,"z":null,"o":{"k":[1,{"x":2}]},"a":[1,"x"],"drop":0}`,
			`{"keep":["n","t","z","o","a"]}`, `{"n":1.5e3,"t":true,"z":null,"o":{"k":[1,{"x":2}]},"a":[1,"x"]}`},
		{"key order is the document's", `{"b":1,"a":2,"c":3}`, `{"keep":["c","b"]}`, `{"b":1,"c":3}`},
		{"top-level array", `[{"a":1,"b":2},{"b":3}]`, `{"keep":["[*].a"]}`, `[{"a":1}]`},
		{"index", `{"a":[10,20,30]}`, `{"keep":["a[1]"]}`, `{"a":[20]}`},
		{"unicode", `{"naam":"Liège ☃ 😀","x":"é","esc":"a\u00e9\n"}`, `{"keep":["naam","esc"]}`, `{"naam":"Liège ☃ 😀","esc":"aé\n"}`},
		{"unicode key", `{"é":{"ñ":1,"o":2}}`, `{"keep":["é.ñ"]}`, `{"é":{"ñ":1}}`},
		{"single path as string", `{"a":1,"b":2}`, `{"keep":"b"}`, `{"b":2}`},
		{"dotted key", `{"a.b":1,"a":{"b":2}}`, `{"keep":["a\\.b"]}`, `{"a.b":1}`},
		{"overlapping paths", `{"a":{"b":1,"c":2},"d":3}`, `{"keep":["a","a.b"]}`, `{"a":{"b":1,"c":2}}`},
	}
}

func TestProject(t *testing.T) {
	for _, c := range okCases() {
		t.Run(c.name, func(t *testing.T) {
			out, err := guest.Run("transform", []byte(c.in), []byte(c.cfg))
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != c.want {
				t.Errorf("got  %s\nwant %s", out, c.want)
			}
		})
	}
}

type errCase struct{ name, in, cfg, want string }

func errCases() []errCase {
	return []errCase{
		{"empty keep", `{"a":1}`, `{"keep":[]}`, "config keep is missing or empty"},
		{"keep without strings", `{"a":1}`, `{"keep":[1,2]}`, "config keep is missing or empty"},
		{"no keep", `{"a":1}`, `{}`, "config keep is missing or empty"},
		{"no config", `{"a":1}`, ``, "config keep is missing or empty"},
		{"bad path", `{"a":1}`, `{"keep":["a..b"]}`, `path "a..b"`},
		{"invalid input", `{"a":`, `{"keep":["a"]}`, "project: input"},
		{"not JSON", `hello`, `{"keep":["a"]}`, "project: input"},
		{"empty input", ``, `{"keep":["a"]}`, "project: input"},
		{"malformed config", `{"a":1}`, `{"keep":`, "project:"},
	}
}

func TestProjectErrors(t *testing.T) {
	for _, c := range errCases() {
		t.Run(c.name, func(t *testing.T) {
			var cfg []byte
			if c.cfg != "" {
				cfg = []byte(c.cfg)
			}
			out, err := guest.Run("transform", []byte(c.in), cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("out %s, error %v, want %q", out, err, c.want)
			}
		})
	}
}
