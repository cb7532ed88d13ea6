package expr

import "testing"

// FuzzCompile: compiling any text never panics, and a compiled program
// reports step references consistent with BodyPath.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"steps.a.body.x", "steps.a?.body?.x ?? 1", "input.body.n > 5 && isSsin(input.body.s)",
		"map(steps.e.body.directors, {# + 'x'})", "steps['a'].status", "1 +", "((", "'\\u00'",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := Compile(src, Any)
		if err != nil {
			if ce, ok := err.(*CompileError); !ok || ce.Line < 1 || ce.Col < 1 {
				t.Fatalf("bad compile error %#v", err)
			}
			return
		}
		if id, _, ok := p.BodyPath(); ok {
			found := false
			for _, r := range p.StepRefs {
				found = found || (r.ID == id && r.Body)
			}
			if !found {
				t.Fatalf("BodyPath names %q but StepRefs %+v do not", id, p.StepRefs)
			}
		}
	})
}
