package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/openfsb/fsb/engine/connector"
)

// Health statuses (Belgif).
const (
	StatusUp       = "UP"
	StatusDegraded = "DEGRADED"
	StatusDown     = "DOWN"
)

// health caches source reachability: UP when every source answers, DOWN
// when none does, DEGRADED in between. Anonymous callers see only the status.
type health struct {
	conns map[string]connector.Connector
	ttl   time.Duration

	mu      sync.Mutex
	checked time.Time
	status  string
}

func newHealth(conns map[string]connector.Connector, ttl time.Duration) *health {
	return &health{conns: conns, ttl: ttl}
}

func (h *health) get() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.status != "" && time.Since(h.checked) < h.ttl {
		return h.status
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var up, total int
	var cmu sync.Mutex
	for _, c := range h.conns {
		total++
		wg.Go(func() {
			if c.Check(ctx) == nil {
				cmu.Lock()
				up++
				cmu.Unlock()
			}
		})
	}
	wg.Wait()
	switch {
	case up == total:
		h.status = StatusUp
	case up == 0:
		h.status = StatusDown
	default:
		h.status = StatusDegraded
	}
	h.checked = time.Now()
	return h.status
}

func (g *Gateway) handleHealth(c *fiber.Ctx) error {
	g.traceHeaders(c)
	s := g.health.get()
	code := fiber.StatusOK
	if s == StatusDown {
		code = fiber.StatusServiceUnavailable
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(code).JSON(fiber.Map{"status": s})
}
