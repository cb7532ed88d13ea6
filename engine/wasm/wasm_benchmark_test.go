package wasm

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// kib is a 1 KiB JSON document.
var kib = func() []byte {
	head, tail := `{"data":"`, `"}`
	return []byte(head + strings.Repeat("x", 1024-len(head)-len(tail)) + tail)
}()

// BenchmarkCall measures one call of 1 KiB through the whole host (alloc,
// copy in, operation, copy out, free, pool), per trust level: the
// difference is the cost of timeout enforcement (the deadline polls that
// instrument.go compiles into untrusted modules). fresh-instance closes the
// instance after each call, so every call pays an instantiation.
func BenchmarkCall(b *testing.B) {
	cases := []struct {
		name    string
		spec    func(testing.TB) ModuleSpec
		op      string
		input   []byte
		recycle int
	}{
		{"echo", func(tb testing.TB) ModuleSpec { return specOf(tb, "echo") }, "transform", kib, 0},
		{"echo/fresh-instance", func(tb testing.TB) ModuleSpec { return specOf(tb, "echo") }, "transform", kib, 1},
		// one guest loop iteration per byte: deadline checks sit on loop back-edges
		{"sum-loop", func(tb testing.TB) ModuleSpec { return specOf(tb, "echo") }, "transform", append([]byte("^"), kib[1:]...), 0},
		{"go-echo", goGuestSpec, "echo", kib, 0},
		{"go-json", goGuestSpec, "transform", kib, 0},
		{"go-echo/fresh-instance", goGuestSpec, "echo", kib, 1},
	}
	for _, tc := range cases {
		for _, trust := range []Trust{Trusted, Untrusted} {
			b.Run(tc.name+"/"+trust.String(), func(b *testing.B) {
				h := newHost(b, nil)
				spec := tc.spec(b)
				spec.Trust, spec.PoolSize, spec.Recycle.Calls = trust, 1, tc.recycle
				m := load(b, h, spec)
				ctx := context.Background()
				if _, err := m.Call(ctx, tc.op, tc.input, nil); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(tc.input)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := m.Call(ctx, tc.op, tc.input, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	// All cores on one pool: what the pool's lock and channel cost under contention.
	for _, trust := range []Trust{Trusted, Untrusted} {
		b.Run("echo/parallel/"+trust.String(), func(b *testing.B) {
			h := newHost(b, nil)
			spec := specOf(b, "echo")
			spec.Trust = trust
			m := load(b, h, spec)
			b.SetBytes(int64(len(kib)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := m.Call(context.Background(), "transform", kib, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkLoad measures a new host loading a module: cold compiles it,
// warm finds it in the on-disk cache a previous host filled.
func BenchmarkLoad(b *testing.B) {
	mods := []struct {
		name string
		spec func(testing.TB) ModuleSpec
	}{
		{"echo", func(tb testing.TB) ModuleSpec { return specOf(tb, "echo") }},
		{"goguest", goGuestSpec},
	}
	loadOnce := func(b *testing.B, dir string, spec ModuleSpec) {
		h, err := NewHost(context.Background(), HostConfig{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.Load(context.Background(), spec); err != nil {
			b.Fatal(err)
		}
		if err := h.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	for _, mod := range mods {
		b.Run(mod.name+"/cold", func(b *testing.B) {
			spec, root := mod.spec(b), b.TempDir()
			i := 0
			for b.Loop() {
				i++
				loadOnce(b, filepath.Join(root, fmt.Sprint(i)), spec)
			}
		})
		b.Run(mod.name+"/warm", func(b *testing.B) {
			spec, dir := mod.spec(b), filepath.Join(b.TempDir(), "cache")
			loadOnce(b, dir, spec)
			for b.Loop() {
				loadOnce(b, dir, spec)
			}
		})
	}
}
