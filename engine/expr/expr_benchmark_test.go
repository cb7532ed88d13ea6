package expr

import "testing"

func benchEval(b *testing.B, src string, env *Env) {
	p, err := Compile(src, Any)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Run(env); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEnv() *Env {
	return &Env{
		Input: Input{Body: map[string]any{"enterpriseNumber": "0912.345.673", "ssin": "68031401742"}},
		Steps: map[string]*Result{"enterprise": {Status: 200, OK: true, Body: map[string]any{
			"name": "Zonnebloem", "status": "active", "directors": []any{"68031401742", "71110212426"},
			"address": map[string]any{"municipality": "Gent"},
		}}},
	}
}

func BenchmarkEvalMember(b *testing.B) {
	benchEval(b, "steps.enterprise.body.address.municipality", benchEnv())
}

func BenchmarkEvalCondition(b *testing.B) {
	benchEval(b, `steps.enterprise.status == 200 && steps.enterprise.body.status == "active" && len(steps.enterprise.body.directors) > 1`, benchEnv())
}

func BenchmarkEvalEnterpriseNumber(b *testing.B) {
	benchEval(b, "isEnterpriseNumber(input.body.enterpriseNumber) ? normalizeEnterpriseNumber(input.body.enterpriseNumber) : ''", benchEnv())
}

func BenchmarkEvalSSIN(b *testing.B) {
	benchEval(b, "isSsin(input.body.ssin)", benchEnv())
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(`steps.enterprise.status == 200 && isSsin(input.body.ssin)`, Bool); err != nil {
			b.Fatal(err)
		}
	}
}
