package breaker_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/breaker"
)

// BenchmarkShed is the cost of a shed call (every slot taken, no wait),
// answered alone or with an access-log line written per call, as the
// gateway's are (JSON to a file): the reason fsb serve logs a warning per
// interval rather than a line per shed call (cmd/fsb/OPERATING.md).
func BenchmarkShed(b *testing.B) {
	for _, tc := range []struct {
		name string
		log  bool
	}{{"answer", false}, {"answer+accessLine", true}} {
		b.Run(tc.name, func(b *testing.B) {
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			log := slog.New(slog.NewJSONHandler(f, nil))
			l := breaker.NewLimiter(1, breaker.LimiterOptions{})
			h := l.Wrap(func(*fasthttp.RequestCtx) {})
			if !l.Acquire(context.Background()) { // the only slot: every call is shed
				b.Fatal("no slot")
			}
			defer l.Release()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var c fasthttp.RequestCtx
				c.Request.SetRequestURI("/x/v1/x")
				for pb.Next() {
					start := time.Now()
					h(&c)
					if tc.log {
						log.LogAttrs(context.Background(), slog.LevelInfo, "request", slog.String("flow", ""),
							slog.String("trace", string(c.Response.Header.Peek("BelGov-Trace-Id"))),
							slog.Int("status", c.Response.StatusCode()), slog.Duration("duration", time.Since(start)))
					}
				}
			})
		})
	}
}
