package file

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	sdk "github.com/openfsb/fsb/sdk/connector"
)

// cache holds decoded files and directory listings, each fresh for a TTL,
// within a byte cap, least recently used evicted first. Concurrent misses
// of one key share one download (a flight).
type cache struct {
	ttl time.Duration
	max int64

	mu      sync.Mutex
	entries map[string]*entry
	lru     list.List // of *entry, most recent at the front
	size    int64
	flights map[string]*flight

	stats struct{ hits, misses, revalidated, evicted atomic.Int64 }
}

// entry is a decoded file or a listing.
type entry struct {
	key     string
	info    sdk.FileInfo
	checked time.Time // when it was last known to match the server
	size    int64
	elem    *list.Element

	// A decoded file: record i is buf[spans[i][0]:spans[i][1]].
	buf   []byte
	spans [][2]uint32
	index map[string][]uint32 // lookup key → records
	// A file fetched without a codec.
	content []byte
	// A listing.
	files []sdk.FileInfo
}

type flight struct {
	done chan struct{}
	e    *entry
	err  error
}

func newCache(cfg CacheConfig) *cache {
	c := &cache{ttl: cfg.TTL, max: cfg.MaxBytes, entries: map[string]*entry{}, flights: map[string]*flight{}}
	if c.ttl == 0 {
		c.ttl = DefaultCacheTTL
	}
	if c.max == 0 {
		c.max = DefaultCacheMaxBytes
	}
	return c
}

func (c *cache) enabled() bool { return c.ttl > 0 && c.max > 0 }

// get returns the entry for key and whether it is still fresh.
func (c *cache) get(key string, now time.Time) (*entry, bool) {
	if !c.enabled() {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e == nil {
		return nil, false
	}
	c.lru.MoveToFront(e.elem)
	return e, now.Sub(e.checked) < c.ttl
}

// confirm marks e as matching the server again (revalidated by a listing).
func (c *cache) confirm(e *entry, now time.Time) {
	c.mu.Lock()
	if now.After(e.checked) {
		e.checked = now
	}
	c.mu.Unlock()
	c.stats.revalidated.Add(1)
}

// load returns the entry built by fetch for key, sharing one flight
// between concurrent callers. A caller whose leader was cancelled tries
// again itself.
func (c *cache) load(ctx context.Context, key string, fetch func() (*entry, error)) (*entry, error) {
	for {
		c.mu.Lock()
		if f, ok := c.flights[key]; ok {
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if f.err != nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) && ctx.Err() == nil {
				continue
			}
			return f.e, f.err
		}
		f := &flight{done: make(chan struct{})}
		c.flights[key] = f
		c.mu.Unlock()
		c.stats.misses.Add(1)
		f.e, f.err = fetch()
		c.mu.Lock()
		delete(c.flights, key)
		if f.err == nil {
			f.e.key = key
			c.putLocked(f.e)
		}
		c.mu.Unlock()
		close(f.done)
		return f.e, f.err
	}
}

// putLocked stores e, replacing the old entry of its key, and evicts the
// least recently used entries beyond the cap. An entry larger than the
// cap is not stored (it is still returned to its callers).
func (c *cache) putLocked(e *entry) {
	if !c.enabled() {
		return
	}
	if old := c.entries[e.key]; old != nil {
		c.removeLocked(old)
	}
	if e.size > c.max {
		return
	}
	e.elem = c.lru.PushFront(e)
	c.entries[e.key] = e
	c.size += e.size
	for c.size > c.max {
		last := c.lru.Back().Value.(*entry)
		c.removeLocked(last)
		c.stats.evicted.Add(1)
	}
}

func (c *cache) removeLocked(e *entry) {
	c.lru.Remove(e.elem)
	delete(c.entries, e.key)
	c.size -= e.size
}

// CacheStats count what the cache did.
type CacheStats struct {
	Entries                            int
	Bytes                              int64
	Hits, Misses, Revalidated, Evicted int64
}

func (c *cache) snapshot() CacheStats {
	c.mu.Lock()
	n, size := len(c.entries), c.size
	c.mu.Unlock()
	return CacheStats{Entries: n, Bytes: size, Hits: c.stats.hits.Load(), Misses: c.stats.misses.Load(),
		Revalidated: c.stats.revalidated.Load(), Evicted: c.stats.evicted.Load()}
}
