package wasm

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestTmpSpin(t *testing.T) {
	h, err := NewHost(context.Background(), HostConfig{CacheDir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	spec := specOf(t, "loop")
	spec.Limits = Limits{Timeout: 50 * time.Millisecond}
	m := load(t, h, spec)
	done := make(chan error)
	go func() { _, err := m.Call(context.Background(), "transform", []byte(`{"x":1}`), nil); done <- err }()
	select {
	case err := <-done:
		t.Log(err)
	case <-time.After(2 * time.Second):
		m.mu.Lock()
		t.Log("stuck; idle", len(m.idle))
		m.mu.Unlock()
		t.Fatal("stuck")
	}
}
