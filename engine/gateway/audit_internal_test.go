package gateway

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/expr"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/spec"
)

// lendingSource lends each answer's body and scribbles over it when the
// body is given back (as a pooled transport would reuse it), so that a
// digest taken after Done, or of another attempt's body, shows.
type lendingSource struct {
	answer func(req *connector.Request) (*connector.Response, error)
}

func (l lendingSource) Call(_ context.Context, req *connector.Request) (*connector.Response, error) {
	resp, err := l.answer(req)
	if resp != nil && len(resp.Body) > 0 {
		b := resp.Body
		resp.Release = func() {
			for i := range b {
				b[i] = 'X'
			}
		}
	}
	return resp, err
}
func (lendingSource) Check(context.Context) error { return nil }
func (lendingSource) Close() error                { return nil }

const lendingSources = `
kind: Source
name: a
protocol: rest
rest:
  baseUrl: http://127.0.0.1:1
  operations:
    get: {method: GET, path: "/x/{id}"}
`

// TestAuditDigestsEachAnswer: through auditedRuntime, the outcome's
// source calls carry the digest of each attempt's own answer (taken before
// the lent body is given back), the digest of the empty string for an
// empty 200, and no digest for a transport error; parallel branches and
// foreach iterations each get theirs.
func TestAuditDigestsEachAnswer(t *testing.T) {
	const flowYAML = `kind: Flow
name: f
version: 1.0.0
method: POST
path: /f/v1/run
timeout: 2s
input:
  body: {type: object, additionalProperties: true}
steps:
  - id: first
    call: a.get
    retry: {attempts: 2, backoff: 1ms, onStatus: [503]}
    with: {path: {id: "'flaky'"}}
  - id: both
    parallel:
      - {id: x, call: a.get, with: {path: {id: "'empty'"}}}
      - {id: y, call: a.get, optional: true, default: {}, with: {path: {id: "'down'"}}}
  - id: each
    foreach:
      items: '[1,2,3]'
      concurrency: 3
      steps: [{id: one, call: a.get, with: {path: {id: "'item' + string(item)"}}}]
output: "{}"
`
	set, err := spec.Load(map[string][]byte{"sources.yaml": []byte(lendingSources), "flow.yaml": []byte(flowYAML)})
	if err != nil {
		t.Fatal(err)
	}
	plans, err := flow.Compile(set)
	if err != nil {
		t.Fatal(err)
	}
	var p *flow.Plan
	for _, pl := range plans {
		p = pl
	}
	bodyOf := func(id string) string {
		switch id {
		case "empty":
			return ""
		default:
			return `{"id":"` + id + `"}`
		}
	}
	for round := range 3 { // pooled runs: the reused SourceCall carries nothing over
		var n atomic.Int32
		src := lendingSource{answer: func(r *connector.Request) (*connector.Response, error) {
			id := r.Path["id"]
			switch {
			case id == "flaky" && n.Add(1) == 1:
				return &connector.Response{Status: 503, Body: []byte(`{"busy":true}`)}, nil
			case id == "down":
				return nil, &connector.Error{Kind: connector.ErrUnavailable, Attempts: 1}
			case id == "empty":
				return &connector.Response{Status: 200}, nil
			}
			return &connector.Response{Status: 200, Body: []byte(bodyOf(id))}, nil
		}}
		rt := auditedRuntime(&flow.Runtime{Conns: map[string]connector.Connector{"a": src}})
		col := &collector{}
		ctx := context.WithValue(context.Background(), collectorKey{}, col)
		in := expr.Input{Body: map[string]any{}, Query: map[string]any{}, Path: map[string]any{}}
		out := p.Run(ctx, rt, &flow.Invocation{Input: in, TraceID: "t"})
		if out.Status != 200 {
			t.Fatalf("round %d: %d %+v", round, out.Status, out.Problem)
		}
		got := map[string]int{}
		for _, c := range col.calls() {
			if c.Err != "" && c.Digest != "" {
				t.Errorf("round %d: a transport error has a digest: %+v", round, c)
			}
			got[c.Digest]++
		}
		wantDigests := map[string]int{
			audit.Digest([]byte(`{"busy":true}`)): 1,
			audit.Digest([]byte(bodyOf("flaky"))): 1,
			audit.Digest(nil):                     1, // the empty 200
			"":                                    1, // the transport error
			audit.Digest([]byte(bodyOf("item1"))): 1,
			audit.Digest([]byte(bodyOf("item2"))): 1,
			audit.Digest([]byte(bodyOf("item3"))): 1,
		}
		if len(got) != len(wantDigests) {
			t.Errorf("round %d: digests %v, want %v", round, got, wantDigests)
		}
		for d, k := range wantDigests {
			if got[d] != k {
				var lines []string
				for _, c := range col.calls() {
					lines = append(lines, c.TraceID+" "+c.Digest+" "+c.Err)
				}
				t.Errorf("round %d: digest %q seen %d times, want %d:\n%s", round, d, got[d], k, strings.Join(lines, "\n"))
			}
		}
	}
}
