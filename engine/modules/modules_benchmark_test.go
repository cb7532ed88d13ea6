package modules

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/openfsb/fsb/engine/spec"
)

// BenchmarkStartShipped measures what start-up costs for the plugins the
// demo declares (flows/plugins.yaml: the shipped mask and project modules):
// a new host, reading, digest check, instrumenting, compiling or loading the
// compiled code from the cache, and a first instance per module. cold uses
// a new cache directory every time; warm one that a first start filled.
//
//	go test ./engine/modules -run XXX -bench StartShipped -benchtime 3x
func BenchmarkStartShipped(b *testing.B) {
	set, err := spec.LoadDir(filepath.Join("..", "..", "flows"))
	if err != nil {
		b.Fatal(err)
	}
	if len(set.Plugins) == 0 {
		b.Fatal("flows/ declares no plugin")
	}
	start := func(b *testing.B, cache string) {
		_, closeAll, err := Open(context.Background(), set, Options{CacheDir: cache, TestSecrets: true})
		if err != nil {
			b.Fatal(err)
		}
		closeAll()
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			start(b, b.TempDir())
		}
	})
	b.Run("warm", func(b *testing.B) {
		cache := b.TempDir()
		start(b, cache)
		for b.Loop() {
			start(b, cache)
		}
	})
}
