// Package guest is the Go SDK for OpenFSB plugins: WebAssembly modules that
// the engine runs in a sandbox to transform bytes (see ../ABI.md).
//
// A plugin registers its handler in init and has an empty main:
//
//	package main
//
//	import "github.com/openfsb/fsb/sdk/guest"
//
//	func init() {
//		guest.Transform(func(in []byte, cfg guest.Config) ([]byte, error) {
//			return in, nil
//		})
//	}
//
//	func main() {}
//
// and is built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o plugin.wasm .
//
// Built for wasip1, the package provides the module's exports (abi_version,
// alloc, free and the operations transform, encode and decode) and talks to
// the host through the fsb.config and fsb.log imports. Built for any other
// platform it provides the same API without the exports, so plugin code can
// be unit-tested natively with Run.
//
// For JSON, prefer github.com/openfsb/fsb/sdk/jsonx to encoding/json: inside
// a WebAssembly guest, reflection is most of the cost of a call.
package guest

import (
	"fmt"
	"runtime/debug"
)

// ABIVersion is the version of the plugin ABI the package implements, the
// value of the abi_version export.
const ABIVersion = 1

// A Handler runs one operation. in is the operation's input (for transform,
// the JSON encoding of the step's input); the handler owns it and may modify
// it and return it or part of it. cfg is the step's configuration.
//
// The handler returns the operation's output (for transform, JSON; an empty
// output means JSON null), or an error: its message is logged by the engine,
// which fails the step. A panic is recovered and reported as an error.
//
// Handlers must not keep state between calls (instances are pooled and
// reused, or discarded, at the engine's will) and must not start goroutines
// that outlive the call.
type Handler func(in []byte, cfg Config) ([]byte, error)

type op int

const (
	opTransform op = iota
	opEncode
	opDecode
	numOps
)

var opNames = [numOps]string{"transform", "encode", "decode"}

var registrars = [numOps]string{"guest.Transform", "guest.Encode", "guest.Decode"}

var handlers [numOps]Handler

// Transform registers the handler of the transform operation, the one a
// flow's transform step calls unless the plugin declaration names another.
// Call it once, from an init function; a second call panics.
func Transform(h Handler) { register(opTransform, h) }

// Encode registers the handler of the encode operation (a protocol adapter's
// encoder). Call it once, from an init function; a second call panics.
func Encode(h Handler) { register(opEncode, h) }

// Decode registers the handler of the decode operation (a protocol adapter's
// decoder). Call it once, from an init function; a second call panics.
func Decode(h Handler) { register(opDecode, h) }

func register(o op, h Handler) {
	if h == nil {
		panic(registrars[o] + ": nil handler")
	}
	if handlers[o] != nil {
		panic(registrars[o] + " called twice")
	}
	handlers[o] = h
}

// Run calls the handler registered for op ("transform", "encode" or
// "decode") with in and the configuration cfg (JSON; nil means {}), as the
// exported operation does: an unregistered operation and a panic come back
// as errors. It is the way to unit-test a plugin natively:
//
//	out, err := guest.Run("transform", []byte(`{"name":"x"}`), []byte(`{"fields":["name"]}`))
//
// Unlike the host, Run does not copy in: a handler that changes its input
// changes the caller's slice.
func Run(op string, in, cfg []byte) ([]byte, error) {
	o, ok := lookupOp(op)
	if !ok {
		return nil, fmt.Errorf("guest: no operation %q (the SDK has transform, encode and decode)", op)
	}
	if cfg == nil {
		cfg = []byte("{}")
	}
	return invoke(o, in, Config{st: &configState{raw: cfg, loaded: true}})
}

func lookupOp(name string) (op, bool) {
	for i, n := range opNames {
		if n == name {
			return op(i), true
		}
	}
	return 0, false
}

// maxStack bounds the stack trace in a panic's message.
const maxStack = 4 << 10

// invoke runs the handler of o, turning a missing handler and a panic into
// errors.
func invoke(o op, in []byte, cfg Config) (out []byte, err error) {
	h := handlers[o]
	if h == nil {
		return nil, fmt.Errorf("guest: the plugin has no %s operation (no handler registered with %s)", opNames[o], registrars[o])
	}
	defer func() {
		if r := recover(); r != nil {
			stack := debug.Stack()
			if len(stack) > maxStack {
				stack = append(stack[:maxStack:maxStack], "\n..."...)
			}
			out, err = nil, fmt.Errorf("%s: panic: %v\n\n%s", opNames[o], r, stack)
		}
	}()
	return h(in, cfg)
}
