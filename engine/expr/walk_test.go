package expr

import (
	"fmt"
	"testing"
)

// TestWalkMatchesVM: the member-chain fast path answers exactly what the
// expression VM answers (value, or an error in the same cases).
func TestWalkMatchesVM(t *testing.T) {
	env := &Env{
		Input: Input{Body: map[string]any{"a": map[string]any{"b": "x"}, "n": nil, "s": "str"}, Path: map[string]any{"id": "7"}, Query: map[string]any{}},
		Steps: map[string]*Result{
			"x":    {Body: map[string]any{"list": []any{1.0}, "o": map[string]any{"k": true}}, Status: 200, Headers: map[string]any{"Etag": "e"}},
			"skip": {Skipped: true},
		},
	}
	for _, src := range []string{
		"input.body.a.b", "input.body.a.missing", "input.body.n", "input.body.n.deeper", "input.body.s.deeper",
		"input.path.id", "input.query.none", "steps.x.body.o.k", "steps.x.body.list", "steps.x.headers.Etag",
		"steps.x.headers.Missing", "steps.skip.body", "steps.skip.body.deeper", "steps.x.status", "steps.nope.body",
	} {
		t.Run(src, func(t *testing.T) {
			p, err := Compile(src, Any)
			if err != nil {
				t.Fatal(err)
			}
			if p.chain == nil && src != "steps.x.status" {
				t.Fatalf("%s: no fast path", src)
			}
			got, gotErr := p.Run(env)
			p.chain = nil
			want, wantErr := p.Run(env)
			if fmt.Sprint(got) != fmt.Sprint(want) || (gotErr == nil) != (wantErr == nil) {
				t.Errorf("fast path %v, %v; VM %v, %v", got, gotErr, want, wantErr)
			}
		})
	}
}
