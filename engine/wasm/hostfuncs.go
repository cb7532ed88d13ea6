package wasm

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"math"
	"time"

	"github.com/openfsb/fsb/engine/trace"
	"github.com/openfsb/fsb/sdk/jsonx"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// fsbModule is the import module of the host functions (ABI.md).
const fsbModule = "fsb"

// maxLogMessage bounds one fsb.log message; the rest is cut.
const maxLogMessage = 4 << 10

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// emptyConfig is the configuration of a call that has none (ABI.md).
var emptyConfig = []byte("{}")

// callState is what the host functions need to know about the call in
// progress. Each instance owns one; the call's context carries a pointer to
// it, so fsb.config and fsb.log of concurrent calls never mix up.
type callState struct {
	module *Module
	config []byte
	// fault is set by a host function that the guest called wrongly (a
	// buffer outside memory); the host function then traps the call.
	fault error

	// An untrusted call's end: its deadline, and its context's Done (nil
	// when it has none). hostPoll compares; stopped says why it
	// trapped the call (stoppedTimeout or stoppedCancel).
	deadline time.Time
	done     <-chan struct{}
	stopped  int

	// What fsb.json_locate and fsb.hmac_sha256 keep between calls of
	// this instance: a plugin uses the same paths and key every time.
	pathList string
	locator  *jsonx.Locator
	spans    []byte
	macKey   string
	mac      hash.Hash
}

// Why hostPoll stopped a call.
const (
	stoppedTimeout = 1 + iota
	stoppedCancel
)

// errInterrupted traps a call whose deadline passed or whose caller
// cancelled; callState.stopped says which.
var errInterrupted = errors.New("interrupted")

// arm sets the end of an untrusted call: the sooner of ctx's deadline and
// now+timeout, or ctx's cancellation.
func (st *callState) arm(ctx context.Context, timeout time.Duration) {
	st.deadline = time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(st.deadline) {
		st.deadline = dl
	}
	st.done, st.stopped = ctx.Done(), 0 // deadline-only contexts (the flow engine's) have no Done
}

// hostPoll is interruptModule.interruptPoll: what instrument.go makes every untrusted module import
// and call every pollEvery loop iterations: it traps the call when its
// deadline has passed or its caller cancelled.
func hostPoll(ctx context.Context, _ api.Module, _ []uint64) {
	st, _ := ctx.Value(stateKey{}).(*callState)
	if st == nil || st.deadline.IsZero() {
		return
	}
	if st.done != nil {
		select {
		case <-st.done:
			st.stopped = stoppedCancel
			panic(errInterrupted)
		default:
		}
	}
	if !time.Now().Before(st.deadline) {
		st.stopped = stoppedTimeout
		panic(errInterrupted)
	}
}

type stateKey struct{}

// WithStep names the flow step a call belongs to, for the logs of Call
// (fsb.log, guest stderr, failures): ABI.md asks for the plugin and step
// names. The flow engine sets it (with the trace id) through trace.WithCall.
func WithStep(ctx context.Context, step string) context.Context {
	c := trace.CallOf(ctx)
	c.Step = step
	return trace.WithCall(ctx, c)
}

// instantiateFSB adds the fsb host module to a runtime. api.GoModuleFunc
// avoids the reflection of WithFunc (~50 ns instead of ~600 ns, NOTES.md).
func instantiateFSB(ctx context.Context, r wazero.Runtime) error {
	_, err := r.NewHostModuleBuilder(fsbModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostConfig), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("ptr", "cap").
		Export("config").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostLog), []api.ValueType{i32, i32, i32}, nil).
		WithParameterNames("level", "ptr", "len").
		Export("log").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostJSONLocate), []api.ValueType{i32, i32, i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("in_ptr", "in_len", "paths_ptr", "paths_len", "out_ptr", "out_cap").
		Export("json_locate").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostHMAC), []api.ValueType{i32, i32, i32, i32, i32}, nil).
		WithParameterNames("key_ptr", "key_len", "msg_ptr", "msg_len", "out_ptr").
		Export("hmac_sha256").
		Instantiate(ctx)
	if err != nil {
		return err
	}
	_, err = r.NewHostModuleBuilder(interruptModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostPoll), nil, nil).
		Export(interruptPoll).
		Instantiate(ctx)
	return err
}

// hostConfig is fsb.config(ptr, cap) -> len: it writes the call's
// configuration at ptr when it fits in cap bytes and returns its length
// either way.
func hostConfig(ctx context.Context, mod api.Module, stack []uint64) {
	st, _ := ctx.Value(stateKey{}).(*callState)
	cfg := emptyConfig
	if st != nil && len(st.config) > 0 {
		cfg = st.config
	}
	ptr, capacity := uint32(stack[0]), uint32(stack[1])
	if uint64(len(cfg)) <= uint64(capacity) && !mod.Memory().Write(ptr, cfg) {
		guestFault(st, "fsb.config: buffer at %#x (%d bytes) lies outside memory", ptr, len(cfg))
	}
	stack[0] = uint64(uint32(len(cfg)))
}

// hostLog is fsb.log(level, ptr, len). The level is clamped to debug..error.
func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	st, _ := ctx.Value(stateKey{}).(*callState)
	level := slog.Level(int32(uint32(stack[0])))
	ptr, n := uint32(stack[1]), uint32(stack[2])
	mem := mod.Memory()
	// Checked before the level so a bad call traps whatever the log level.
	if uint64(ptr)+uint64(n) > uint64(mem.Size()) {
		guestFault(st, "fsb.log: message at %#x (%d bytes) lies outside memory", ptr, n)
	}
	if st == nil {
		return
	}
	level = min(max(level, slog.LevelDebug), slog.LevelError)
	log := st.module.host.log
	if !log.Enabled(ctx, level) {
		return
	}
	attrs := st.module.callAttrs(ctx, make([]slog.Attr, 0, 4))
	if n > maxLogMessage {
		n = maxLogMessage
		attrs = append(attrs, slog.Bool("truncated", true))
	}
	view, _ := mem.Read(ptr, n)
	log.LogAttrs(ctx, level, string(view), attrs...) // string() copies out of guest memory
}

// hostJSONLocate is fsb.json_locate: jsonx.Locate, natively, on guest
// bytes in place. The paths come as a JSON array of strings (the last list
// is kept parsed); the spans go out as uint32 triples if they fit in
// out_cap bytes; the result is their length either way, or a negative
// jsonx.Locate* code.
func hostJSONLocate(ctx context.Context, mod api.Module, stack []uint64) {
	st, _ := ctx.Value(stateKey{}).(*callState)
	mem := mod.Memory()
	in := guestBytes(st, mem, "fsb.json_locate: input", stack[0], stack[1])
	list := guestBytes(st, mem, "fsb.json_locate: paths", stack[2], stack[3])
	outPtr, outCap := uint32(stack[4]), uint32(stack[5])
	result := func(n int32) { stack[0] = uint64(uint32(n)) }
	if st == nil {
		result(jsonx.LocateInvalidPaths)
		return
	}
	if st.locator == nil || string(list) != st.pathList {
		paths, err := jsonx.ParsePathList(list)
		if err != nil {
			result(jsonx.LocateInvalidPaths)
			return
		}
		st.pathList, st.locator = string(list), jsonx.NewLocator(paths...)
	}
	spans, err := st.locator.Locate(in)
	if err != nil {
		result(jsonx.LocateInvalidJSON)
		return
	}
	st.spans = jsonx.AppendSpans(st.spans[:0], spans)
	if len(st.spans) > math.MaxInt32 {
		result(jsonx.LocateInvalidJSON)
		return
	}
	if uint64(len(st.spans)) <= uint64(outCap) && !mem.Write(outPtr, st.spans) {
		guestFault(st, "fsb.json_locate: buffer at %#x (%d bytes) lies outside memory", outPtr, len(st.spans))
	}
	result(int32(len(st.spans)))
}

// hostHMAC is fsb.hmac_sha256: it writes HMAC-SHA256(key, msg), 32 bytes,
// at out_ptr. The keyed state of the last key is kept per instance.
func hostHMAC(ctx context.Context, mod api.Module, stack []uint64) {
	st, _ := ctx.Value(stateKey{}).(*callState)
	mem := mod.Memory()
	key := guestBytes(st, mem, "fsb.hmac_sha256: key", stack[0], stack[1])
	msg := guestBytes(st, mem, "fsb.hmac_sha256: message", stack[2], stack[3])
	if st == nil {
		return
	}
	if st.mac == nil || string(key) != st.macKey {
		st.mac, st.macKey = hmac.New(sha256.New, key), string(key)
	}
	st.mac.Reset()
	st.mac.Write(msg)
	var sum [sha256.Size]byte
	if out := uint32(stack[4]); !mem.Write(out, st.mac.Sum(sum[:0])) {
		guestFault(st, "fsb.hmac_sha256: output at %#x lies outside memory", out)
	}
}

// guestBytes returns a view of guest memory (valid until the host function
// returns) or traps the call when it lies outside memory.
func guestBytes(st *callState, mem api.Memory, what string, ptr, n uint64) []byte {
	b, ok := mem.Read(uint32(ptr), uint32(n))
	if !ok {
		guestFault(st, "%s at %#x (%d bytes) lies outside memory", what, uint32(ptr), uint32(n))
	}
	return b
}

// guestFault records a host function misuse and traps the call.
func guestFault(st *callState, format string, args ...any) {
	err := fmt.Errorf(format, args...)
	if st != nil {
		st.fault = err
	}
	panic(err)
}
