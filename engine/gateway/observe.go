package gateway

import (
	"context"
	"log/slog"

	"github.com/openfsb/fsb/engine/flow"
)

// CallLogger logs every source call with the trace ids that tie it to the
// consumer response: trace (ours, to the consumer), call (sent to the
// source) and source (the source's own answer id).
type CallLogger struct{ Log *slog.Logger }

// SourceCall implements flow.Observer.
func (l CallLogger) SourceCall(ctx context.Context, c *flow.SourceCall) {
	if !l.Log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []any{"flow", c.Flow, "step", c.Step, "source", c.Source, "operation", c.Operation,
		"trace", c.ParentTraceID, "callTrace", c.TraceID, "sourceTrace", c.SourceTraceID,
		"status", c.Status, "bytes", c.Bytes, "attempts", c.Attempts, "duration", c.Duration}
	if c.Err != nil {
		attrs = append(attrs, "err", c.Err)
	}
	l.Log.Debug("source call", attrs...)
}

var _ flow.Observer = CallLogger{}
