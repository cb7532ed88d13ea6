package access

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// failures counts refused calls per source address and per credential in
// fixed windows, and blocks a key that reaches the limit until its window
// ends: repeated guessing of credentials, grants or purposes is answered
// with tooManyFailedRequests whatever it tries next.
type failures struct {
	limit  int
	window time.Duration

	live atomic.Int64 // entries in the maps: 0 lets Decide skip the lock

	mu        sync.Mutex
	byIP      map[netip.Addr]*failWindow
	byCred    map[string]*failWindow
	lastSweep time.Time
}

type failWindow struct {
	start time.Time
	count int
}

func newFailures(limit int, window time.Duration) *failures {
	return &failures{limit: limit, window: window, byIP: map[netip.Addr]*failWindow{}, byCred: map[string]*failWindow{}}
}

// blockedIP reports whether addr is blocked at now, and for how many
// seconds more.
func (f *failures) blockedIP(addr netip.Addr, now time.Time) (int, bool) {
	if f.live.Load() == 0 {
		return 0, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sweep(now)
	return f.blocked(f.byIP[addr], now)
}

// blockedCred is blockedIP for a credential id.
func (f *failures) blockedCred(id string, now time.Time) (int, bool) {
	if f.live.Load() == 0 {
		return 0, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked(f.byCred[id], now)
}

func (f *failures) blocked(w *failWindow, now time.Time) (int, bool) {
	if w == nil || w.count < f.limit {
		return 0, false
	}
	left := w.start.Add(f.window).Sub(now)
	if left <= 0 {
		return 0, false
	}
	return int((left + time.Second - 1) / time.Second), true
}

// add counts one failure against addr and, when known, the credential.
func (f *failures) add(addr netip.Addr, cred string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sweep(now)
	if w := windowFor(f.byIP, addr); w != nil {
		f.bump(w, now)
	}
	if cred != "" {
		if w := windowFor(f.byCred, cred); w != nil {
			f.bump(w, now)
		}
	}
	f.live.Store(int64(len(f.byIP) + len(f.byCred)))
}

// maxFailureKeys bounds each map, so that failures sprayed from many
// addresses cannot grow memory without end: beyond it new keys are not
// counted (their calls are still refused, just not blocked early).
const maxFailureKeys = 100_000

func windowFor[K comparable](m map[K]*failWindow, k K) *failWindow {
	w := m[k]
	if w == nil {
		if len(m) >= maxFailureKeys {
			return nil
		}
		w = &failWindow{}
		m[k] = w
	}
	return w
}

func (f *failures) bump(w *failWindow, now time.Time) {
	if w.count == 0 || now.Sub(w.start) >= f.window || now.Before(w.start) {
		w.start, w.count = now, 0
	}
	w.count++
}

// sweep drops windows that ended, at most once per window length.
func (f *failures) sweep(now time.Time) {
	if now.Sub(f.lastSweep) < f.window && !now.Before(f.lastSweep) {
		return
	}
	f.lastSweep = now
	for k, w := range f.byIP {
		if now.Sub(w.start) >= f.window {
			delete(f.byIP, k)
		}
	}
	for k, w := range f.byCred {
		if now.Sub(w.start) >= f.window {
			delete(f.byCred, k)
		}
	}
	f.live.Store(int64(len(f.byIP) + len(f.byCred)))
}
