package access

import (
	"sync"
	"time"
)

// quotaCounter counts one grant's calls in the current fixed window. The
// limit is not stored here but read from the grant on every call, so an
// admin's quota change applies to the next call and keeps the count.
//
// A fixed window (rather than a token bucket) because it is what a consumer
// can reason about ("1000 calls per hour, the hour starting on the hour"),
// what Retry-After can state exactly, and what a shared counter in a
// key-value store (the multi-node plan in DESIGN.md) can hold in one key.
type quotaCounter struct {
	mu     sync.Mutex
	window int64 // index of the current window: UnixNano / Period
	count  int
}

// take counts one call if the quota allows it. Otherwise it reports how
// many whole seconds remain until the window ends (at least 1).
func (q *quotaCounter) take(limit Quota, now time.Time) (ok bool, remaining, retryAfter int) {
	if limit.Requests <= 0 || limit.Period <= 0 {
		return true, -1, 0
	}
	period := int64(limit.Period)
	ns := now.UnixNano()
	w := ns / period
	q.mu.Lock()
	if w != q.window {
		q.window, q.count = w, 0
	}
	if q.count >= limit.Requests {
		q.mu.Unlock()
		wait := (w+1)*period - ns
		return false, 0, int(max(1, (wait+int64(time.Second)-1)/int64(time.Second)))
	}
	q.count++
	remaining = limit.Requests - q.count
	q.mu.Unlock()
	return true, remaining, 0
}

// quotaCounters holds every grant's counter; only admin actions (under the
// registry's admin lock) create counters, Decide uses the pointers the
// snapshot carries.
type quotaCounters struct {
	m map[string]*quotaCounter
}

func (qs *quotaCounters) get(id string) *quotaCounter {
	c := qs.m[id]
	if c == nil {
		c = new(quotaCounter)
		qs.m[id] = c
	}
	return c
}
