package wasm_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/openfsb/fsb/engine/wasm"
)

// A flow engine's view: declare a plugin, call it per request, map errors.
// (Compiled only: it needs a module on disk.)
func Example() {
	ctx := context.Background()
	host, err := wasm.NewHost(ctx, wasm.HostConfig{Log: slog.Default()})
	if err != nil {
		panic(err)
	}
	defer host.Close(ctx)

	bin, _ := os.ReadFile("plugins/echo.wasm")
	mod, err := host.Load(ctx, wasm.ModuleSpec{
		Name:       "echo",
		Wasm:       bin,
		Digest:     "…the sha256 from the plugin declaration…",
		Limits:     wasm.Limits{MaxMemory: 16 << 20, Timeout: 100 * time.Millisecond},
		Operations: []string{"transform"},
	})
	if err != nil {
		fmt.Println(err) // wasm module "echo": digest mismatch: …
		return
	}
	out, err := mod.Call(wasm.WithStep(ctx, "normalize"), "transform", []byte(`{"a":1}`), []byte(`{"mode":"strict"}`))
	switch {
	case errors.Is(err, wasm.ErrTimeout):
		// 504 gatewayTimeout
	case errors.Is(err, wasm.ErrTooLarge), errors.Is(err, wasm.ErrGuest), errors.Is(err, wasm.ErrTrap),
		errors.Is(err, wasm.ErrMemory), errors.Is(err, wasm.ErrBadOutput):
		// 502 badGateway naming the step; err.Error() is safe to show
	case err == nil:
		fmt.Printf("%s\n", out)
	}
}
