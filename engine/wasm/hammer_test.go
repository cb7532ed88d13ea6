package wasm

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHammer runs P goroutines × N calls on one echo module, mixing good
// inputs with every way echo.wat can be driven to misbehave, and checks
// that each call gets its own answer, the pool never exceeds its bound,
// every instance comes back, and no goroutine outlives the host.
func TestHammer(t *testing.T) {
	const workers, pool = 16, 4
	calls := 2000
	if testing.Short() {
		calls = 200
	}
	before := runtime.NumGoroutine()
	h, err := NewHost(context.Background(), HostConfig{CacheDir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	spec := specOf(t, "echo")
	spec.PoolSize = pool
	spec.Recycle.Calls = 5
	// A timeout far above a call's cost: 16 goroutines on 2 cores under -race can
	// keep a call off the CPU for tens of milliseconds.
	spec.Limits = Limits{Timeout: 250 * time.Millisecond, MaxMemory: 512 << 10, MaxInput: 4096, MaxOutput: 4096}
	m := load(t, h, spec)

	// hostile inputs by the first byte, with the error each must give
	hostile := []struct {
		input string
		kind  error
	}{
		{"!", ErrTrap}, {"?", ErrGuest}, {"#", ErrBadOutput}, {">", ErrTooLarge},
		{"+", ErrMemory}, {"*", ErrTrap},
	}

	stop := make(chan struct{})
	var sampler sync.WaitGroup
	var maxLive atomic.Int64
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := m.Stats()
			if int64(s.Live) > maxLive.Load() {
				maxLive.Store(int64(s.Live))
			}
			if s.Idle > s.Live {
				t.Errorf("idle %d > live %d", s.Idle, s.Live)
			}
			runtime.Gosched()
		}
	})

	var wg sync.WaitGroup
	var failures, timeouts atomic.Int64
	for g := range workers {
		wg.Go(func() {
			for i := range calls {
				var in, cfg string
				var want error
				switch {
				case i%997 == 13 && g%4 == 0: // a few spins: each costs the full timeout
					in, want = "~", ErrTimeout
				case i%10 == 3:
					hc := hostile[(i/10+g)%len(hostile)]
					in, want = hc.input+fmt.Sprint(g, i), hc.kind
				case i%10 == 7:
					in, cfg = "$", fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)
				default:
					in = fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)
				}
				out, err := m.Call(context.Background(), "transform", []byte(in), []byte(cfg))
				switch {
				case want != nil:
					if !errors.Is(err, want) {
						t.Errorf("%q: err = %v, want %v", in, err, want)
						return
					}
					failures.Add(1)
					if want == ErrTimeout {
						timeouts.Add(1)
					}
				case err != nil:
					t.Errorf("%q: %v", in, err)
					return
				case cfg != "" && string(out) != cfg, cfg == "" && string(out) != in:
					t.Errorf("%q (config %q) answered %q", in, cfg, out)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()

	s := m.Stats()
	t.Logf("stats %+v, max live seen %d, %d failures (%d timeouts)", s, maxLive.Load(), failures.Load(), timeouts.Load())
	if s.Peak > pool || maxLive.Load() > pool {
		t.Errorf("pool bound %d exceeded: peak %d, sampled %d", pool, s.Peak, maxLive.Load())
	}
	if s.Idle != s.Live || s.Live < 1 {
		t.Errorf("at rest: idle %d, live %d", s.Idle, s.Live)
	}
	// Every instance ever started is alive, discarded or recycled; every
	// call found one warm or started one (none failed to start here).
	if s.Instantiations != uint64(s.Live)+s.Discarded+s.Recycled || s.Hits+s.Instantiations-1 != s.Calls {
		t.Errorf("instantiations %d, hits %d: stats %+v", s.Instantiations, s.Hits, s)
	}
	if s.Calls != uint64(workers*calls) {
		t.Errorf("%d calls counted, want %d", s.Calls, workers*calls)
	}
	if s.Recycled == 0 {
		t.Error("no instance was recycled")
	}
	if s.Discarded != uint64(failures.Load()) {
		t.Errorf("%d instances discarded, %d calls failed", s.Discarded, failures.Load())
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	settleGoroutines(t, before)
}
