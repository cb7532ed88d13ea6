package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/wasm"
)

// Plugin wraps a plugin so that its calls are timed and its failures
// counted by kind (timeout, trap, memory, other); Stats and Close pass
// through. For engine/reload's Options.WrapPlugin.
func (m *Metrics) Plugin(name string, p flow.Plugin) flow.Plugin {
	if m == nil {
		return p
	}
	return &timedPlugin{Plugin: p, m: m, name: name, time: m.pluginTime.get(k1{name})}
}

type timedPlugin struct {
	flow.Plugin
	m    *Metrics
	name string
	time prometheus.Observer
}

func (p *timedPlugin) Call(ctx context.Context, op string, input, config []byte) ([]byte, error) {
	start := time.Now()
	out, err := p.Plugin.Call(ctx, op, input, config)
	p.time.Observe(time.Since(start).Seconds())
	if err != nil {
		kind := "other"
		switch {
		case errors.Is(err, wasm.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
			kind = "timeout"
		case errors.Is(err, wasm.ErrMemory):
			kind = "memory"
		case errors.Is(err, wasm.ErrTrap):
			kind = "trap"
		}
		p.m.pluginFails.get(k2{p.name, kind}).Inc()
	}
	return out, err
}

// Stats passes the pool's stats through, when the plugin has them.
func (p *timedPlugin) Stats() wasm.Stats {
	if s, ok := p.Plugin.(statser); ok {
		return s.Stats()
	}
	return wasm.Stats{}
}

// Close passes through, when the plugin can be closed.
func (p *timedPlugin) Close(ctx context.Context) error {
	if c, ok := p.Plugin.(interface{ Close(context.Context) error }); ok {
		return c.Close(ctx)
	}
	return nil
}

// Observers fans one source call out to several observers (the call
// logger, metrics, …); nil ones are skipped. It belongs in engine/flow
// (flow.Observers) once that package can change.
func Observers(obs ...flow.Observer) flow.Observer {
	var out tee
	for _, o := range obs {
		if o != nil {
			out = append(out, o)
		}
	}
	switch len(out) {
	case 0:
		return nil // the executor skips timing calls for a nil observer
	case 1:
		return out[0]
	}
	return out
}

type tee []flow.Observer

func (t tee) SourceCall(ctx context.Context, c *flow.SourceCall) {
	for _, o := range t {
		o.SourceCall(ctx, c)
	}
}
