package mask_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/openfsb/fsb/plugins/mask"
	"github.com/openfsb/fsb/sdk/guest"
)

func init() { guest.Transform(mask.Transform) }

// ps is the pseudonym of s under key "secret", keyId "k1", computed
// independently of the plugin.
func ps(s string) string {
	m := hmac.New(sha256.New, []byte("secret"))
	m.Write([]byte(s))
	return "hmac:k1:" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))[:22]
}

const hmacCfg = `{"mode":"hmac","key":"secret","keyId":"k1","paths":%s}`

func hcfg(paths string) string { return strings.Replace(hmacCfg, "%s", paths, 1) }
func rcfg(paths string) string { return `{"mode":"redact","paths":` + paths + `}` }
func q(s string) string        { return `"` + s + `"` }

type okCase struct{ name, in, cfg, want string }

// okCases are shared with the WASM test, which checks the module gives the
// same output.
func okCases() []okCase {
	return []okCase{
		{"top-level string", `{"ssin":"85073003328","name":"Jan"}`, hcfg(`["ssin"]`),
			`{"ssin":` + q(ps("85073003328")) + `,"name":"Jan"}`},
		{"nested", `{"person":{"ssin":"85073003328"}}`, hcfg(`["person.ssin"]`),
			`{"person":{"ssin":` + q(ps("85073003328")) + `}}`},
		{"array elements", `{"directors":["a","b",null,{"x":1},[1]]}`, hcfg(`["directors[*]"]`),
			`{"directors":[` + q(ps("a")) + `,` + q(ps("b")) + `,null,{"x":1},[1]]}`},
		{"array field", `{"children":[{"ssin":"1"},{"n":2},{"ssin":"1"}]}`, hcfg(`["children[*].ssin"]`),
			`{"children":[{"ssin":` + q(ps("1")) + `},{"n":2},{"ssin":` + q(ps("1")) + `}]}`},
		{"top-level array", `["x","y"]`, hcfg(`["[*]"]`), `[` + q(ps("x")) + `,` + q(ps("y")) + `]`},
		{"index", `{"a":["x","y"]}`, hcfg(`["a[1]"]`), `{"a":["x",` + q(ps("y")) + `]}`},
		{"missing paths ignored", `{"a":"x"}`, hcfg(`["b","c.d","e[*].f","a.b","a[0]"]`), `{"a":"x"}`},
		{"numbers hashed from their text", `{"n":42,"f":-1.5e3}`, hcfg(`["n","f"]`),
			`{"n":` + q(ps("42")) + `,"f":` + q(ps("-1.5e3")) + `}`},
		{"bool, null, object, array kept in hmac", `{"b":true,"z":null,"o":{"k":"v"},"a":["v"]}`, hcfg(`["b","z","o","a"]`),
			`{"b":true,"z":null,"o":{"k":"v"},"a":["v"]}`},
		{"unicode", `{"name":"Liège ☃ 😀","esc":"a\u00e9\n"}`, hcfg(`["name","esc"]`),
			`{"name":` + q(ps("Liège ☃ 😀")) + `,"esc":` + q(ps("aé\n")) + `}`},
		{"overlapping paths masked once", `{"a":"x"}`, hcfg(`["a","a"]`), `{"a":` + q(ps("x")) + `}`},
		{"empty string", `{"a":""}`, hcfg(`["a"]`), `{"a":` + q(ps("")) + `}`},
		{"single path as string", `{"a":"x","b":"y"}`, hcfg(`"b"`), `{"a":"x","b":` + q(ps("y")) + `}`},
		{"dotted key", `{"a.b":"x"}`, hcfg(`["a\\.b"]`), `{"a.b":` + q(ps("x")) + `}`},
		{"redact scalars", `{"s":"x","n":1,"t":true,"f":false,"z":null,"o":{"k":1},"a":[1,"é",{"k":2}]}`,
			rcfg(`["s","n","t","f","z","o","a[*]"]`),
			`{"s":"***","n":"***","t":"***","f":"***","z":null,"o":{"k":1},"a":["***","***",{"k":2}]}`},
		{"redact ignores key", `{"s":"x"}`, `{"mode":"redact","key":"k","paths":["s","missing"]}`, `{"s":"***"}`},
		{"scalar document", `"x"`, hcfg(`["a"]`), `"x"`},
		// the input is copied as it is, but for the values replaced
		{"whitespace", " {\n\"a\" : \"x\", \"b\":\"\\u0041\" }\n", rcfg(`["a"]`), " {\n\"a\" : \"***\", \"b\":\"\\u0041\" }\n"},
		{"escaped value", `{"a":"\u0038\u0035"}`, `{"mode":"hmac","key":"secret","keyId":"k1","paths":["a"]}`, `{"a":"` + ps("85") + `"}`},
		{"repeated key", `{"a":"x","a":"y"}`, rcfg(`["a"]`), `{"a":"***","a":"***"}`},
	}
}

func TestMask(t *testing.T) {
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

func TestDeterministic(t *testing.T) {
	a := mask.Pseudonym([]byte("secret"), "k1", "85073003328")
	if a != ps("85073003328") || len(a) != len("hmac:k1:")+22 {
		t.Errorf("Pseudonym = %q, want %q", a, ps("85073003328"))
	}
	if b := mask.Pseudonym([]byte("other"), "k1", "85073003328"); b == a {
		t.Error("another key gives the same pseudonym")
	}
	if b := mask.Pseudonym([]byte("secret"), "k1", "85073003329"); b == a {
		t.Error("another value gives the same pseudonym")
	}
}

type errCase struct{ name, in, cfg, want string }

func errCases() []errCase {
	return []errCase{
		{"hmac without key", `{"a":"x"}`, `{"mode":"hmac","keyId":"k1","paths":["a"]}`, "config key is missing"},
		{"hmac with empty key", `{"a":"x"}`, `{"mode":"hmac","key":"","keyId":"k1","paths":["a"]}`, "config key is missing"},
		{"hmac without keyId", `{"a":"x"}`, `{"mode":"hmac","key":"s","paths":["a"]}`, "config keyId is missing"},
		{"keyId with colon", `{"a":"x"}`, `{"mode":"hmac","key":"s","keyId":"a:b","paths":["a"]}`, "must not contain ':'"},
		{"no mode", `{"a":"x"}`, `{"paths":["a"]}`, "config mode is missing"},
		{"bad mode", `{"a":"x"}`, `{"mode":"hash","paths":["a"]}`, `config mode "hash"`},
		{"no paths", `{"a":"x"}`, `{"mode":"redact"}`, "config paths is missing"},
		{"empty paths", `{"a":"x"}`, `{"mode":"redact","paths":[]}`, "config paths is missing"},
		{"no config", `{"a":"x"}`, ``, "config paths is missing"},
		{"bad path", `{"a":"x"}`, `{"mode":"redact","paths":["a..b"]}`, `path "a..b"`},
		{"invalid input", `{"a":`, `{"mode":"redact","paths":["a"]}`, "mask: input"},
		{"not JSON", `hello`, hcfg(`["a"]`), "mask: input"},
		{"empty input", ``, hcfg(`["a"]`), "mask: input"},
		{"trailing garbage", `{"a":"x"} x`, hcfg(`["a"]`), "mask: input"},
	}
}

func TestMaskErrors(t *testing.T) {
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
	if _, err := guest.Run("transform", []byte(`{}`), []byte(`{"paths":`)); err == nil {
		t.Error("malformed configuration: no error")
	}
}

// TestConfigSwitch: the state kept from the last configuration is not used
// for another one.
func TestConfigSwitch(t *testing.T) {
	in := []byte(`{"ssin":"85073003328"}`)
	cfgs := []string{
		`{"mode":"hmac","key":"k-one","keyId":"a","paths":["ssin"]}`,
		`{"mode":"hmac","key":"k-two","keyId":"a","paths":["ssin"]}`,
		`{"mode":"redact","paths":["ssin"]}`,
	}
	for round := range 2 {
		for _, cfg := range cfgs {
			got, err := guest.Run("transform", in, []byte(cfg))
			if err != nil {
				t.Fatal(err)
			}
			want := `{"ssin":"***"}`
			switch cfg {
			case cfgs[0]:
				want = `{"ssin":"` + mask.Pseudonym([]byte("k-one"), "a", "85073003328") + `"}`
			case cfgs[1]:
				want = `{"ssin":"` + mask.Pseudonym([]byte("k-two"), "a", "85073003328") + `"}`
			}
			if string(got) != want {
				t.Errorf("round %d, %s: got %s, want %s", round, cfg, got, want)
			}
		}
	}
}
