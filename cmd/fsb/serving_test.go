package main

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/openfsb/fsb/engine/sources"
)

// serving is fsb serve started by a test. stop ends it as Ctrl-C does and
// returns wait's exit code; later calls return the same code. The test's
// cleanup stops it too and fails the test on a non-zero exit.
type serving struct {
	*server
	stop func() int
}

// serveFlows loads the flows under dir and starts serving them with f.
func serveFlows(t *testing.T, dir string, f serveFlags) *serving {
	t.Helper()
	set, plans := load(dir, os.Stderr)
	if plans == nil {
		t.Fatal("flows do not load")
	}
	log := slog.New(slog.DiscardHandler)
	srv, err := start(set, plans, sources.Options{}, f, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- srv.wait(ctx, log) }()
	s := &serving{server: srv, stop: sync.OnceValue(func() int { cancel(); return <-done })}
	t.Cleanup(func() {
		if code := s.stop(); code != 0 {
			t.Errorf("serve exit %d", code)
		}
	})
	return s
}
