package access

import (
	"strings"
	"testing"
)

func TestMinimise(t *testing.T) {
	body := []byte(`{"name":"Acme","vat":"BE0203201340","directors":[{"name":"An","ssin":"85073003328"},{"ssin":"1"}],"address":{"city":"Gent"}}`)
	cases := []struct {
		fields   []string
		want     string
		released string
	}{
		{nil, string(body), ""},
		{[]string{"name", "directors[*].name"}, `{"name":"Acme","directors":[{"name":"An"}]}`, "name,directors[*].name"},
		{[]string{"eligible"}, `{}`, ""},
		{[]string{}, `{}`, ""},
		{[]string{"address.city", "missing.path"}, `{"address":{"city":"Gent"}}`, "address.city"},
	}
	for _, tc := range cases {
		out, released, err := Minimise(tc.fields, body)
		mustDo(t, err)
		if string(out) != tc.want || strings.Join(released, ",") != tc.released {
			t.Errorf("%v: got %s %v, want %s %s", tc.fields, out, released, tc.want, tc.released)
		}
	}
	// A yes/no legal basis gets the yes/no answer and nothing else.
	out, _, err := Minimise([]string{"eligible"}, []byte(`{"eligible":true,"income":41000,"household":[{"ssin":"x"}]}`))
	mustDo(t, err)
	if string(out) != `{"eligible":true}` {
		t.Errorf("yes/no: %s", out)
	}
	if _, _, err := Minimise([]string{"a"}, []byte(`<xml/>`)); err == nil {
		t.Error("non-JSON body minimised")
	}
}
