package catalog_test

import (
	"testing"

	"github.com/openfsb/fsb/engine/catalog"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/spec"
)

// load builds the catalogue of a flow directory.
func load(t testing.TB, dir string) *catalog.Catalog {
	t.Helper()
	set, err := spec.LoadDir(dir)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	plans, err := flow.Compile(set)
	if err != nil {
		t.Fatalf("compile %s: %v", dir, err)
	}
	return catalog.New(set, plans)
}
