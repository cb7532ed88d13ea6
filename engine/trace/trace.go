// Package trace makes BelGov-Trace-Id values. It owns only id generation and
// the header names; correlation (which id relates to which) is logged and
// audited by the packages that see both ends.
package trace

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
)

// Header names of the Belgif tracing convention.
const (
	Header        = "BelGov-Trace-Id"
	RelatedHeader = "BelGov-Related-Trace-Id"
	// MaxLen is the longest caller trace id we echo (Belgif: at most 36).
	MaxLen = 36
)

// NewID returns 32 random hexadecimal characters (128 bits). Trace ids must
// be unique and unpredictable enough not to be guessed, not secret: the
// runtime's ChaCha8 generator (math/rand/v2, seeded from the OS) serves that
// at a fraction of crypto/rand's cost on the hot path.
func NewID() string {
	var b [16]byte
	x, y := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i], b[8+i] = byte(x>>(8*i)), byte(y>>(8*i))
	}
	var out [32]byte
	hex.Encode(out[:], b[:])
	return string(out[:])
}

// Valid reports whether a caller-supplied id may be echoed: 1–36 printable
// characters from a safe set, so that it cannot inject into headers or logs.
func Valid(id string) bool {
	if len(id) == 0 || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Call names the flow step a piece of work belongs to and the trace id of
// the consumer call, for the logs of packages below the flow engine (the
// wasm host logs plugin messages with them) that must not import it.
type Call struct {
	TraceID string
	Step    string
}

type callKey struct{}

// WithCall returns ctx carrying c.
func WithCall(ctx context.Context, c Call) context.Context {
	return &CallContext{Context: ctx, Call: c}
}

// CallContext is a context carrying Call, as WithCall makes: a caller on
// the hot path can keep one and reuse it instead of allocating a context
// per call (the flow engine keeps one per call step in its pooled state).
// Set both fields before use; everything but the Call comes from Context.
type CallContext struct {
	context.Context
	Call Call
}

// Value returns the Call for CallOf, and asks Context for any other key.
func (c *CallContext) Value(key any) any {
	if _, ok := key.(callKey); ok {
		return c.Call
	}
	return c.Context.Value(key)
}

// CallOf returns the Call ctx carries, or the zero Call.
func CallOf(ctx context.Context) Call {
	c, _ := ctx.Value(callKey{}).(Call)
	return c
}
