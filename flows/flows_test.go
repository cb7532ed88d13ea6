// The demo flows ship with flow tests (the *_test.yaml files beside them);
// this runs them under `go test ./...`, exactly as `fsb test flows` does.
package flows

import (
	"context"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/flowtest"
	"github.com/openfsb/fsb/engine/modules"
	"github.com/openfsb/fsb/engine/spec"
)

func TestDemoFlows(t *testing.T) {
	set, err := spec.LoadDir(".")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	plans, err := flow.Compile(set)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	plugins, closePlugins, err := modules.Open(context.Background(), set, modules.Options{TestSecrets: true})
	if err != nil {
		t.Fatalf("plugins: %v", err)
	}
	defer closePlugins()
	results := flowtest.Run(set, plans, plugins, nil)
	if len(results) < 10 {
		t.Fatalf("only %d flow tests found", len(results))
	}
	for _, r := range results {
		t.Run(r.Name(), func(t *testing.T) {
			if !r.Pass {
				t.Errorf("%s:\n%s", r.Test.Pos, strings.Join(r.Failures, "\n"))
			}
		})
	}
}
