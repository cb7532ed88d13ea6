package wasm

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors a failed Call wraps (test with errors.Is). Each failure but
// ErrUnknownOp, ErrClosed and a too-large input also discards the instance.
var (
	ErrTimeout   = errors.New("timed out")
	ErrMemory    = errors.New("out of memory")
	ErrTrap      = errors.New("trapped")
	ErrBadOutput = errors.New("malformed output")
	ErrTooLarge  = errors.New("too large")
	// ErrGuest: the module set the failure bit. Error.Message holds what it
	// said; the message is logged and never part of Error().
	ErrGuest     = errors.New("reported a failure")
	ErrUnknownOp = errors.New("unknown operation")
	ErrClosed    = errors.New("closed")
	// ErrRefused is wrapped by every Load error about the module itself
	// (digest, exports, imports, capabilities, limits, ABI version).
	ErrRefused = errors.New("module refused")
)

// Error is a failed Call. Its message names the module, the operation and
// what went wrong; it never holds the guest's own message, a wasm stack
// trace or a host path, so it is safe to pass on. Err keeps wazero's error
// (with the stack trace) for logs.
type Error struct {
	Module    string
	Operation string
	Kind      error  // one of the sentinels above, or the caller's context error
	Detail    string // what exactly, e.g. "output of 2000000 bytes exceeds maxOutput 1048576"
	Message   string // ErrGuest only: the guest's message, for the log
	Err       error  // underlying cause, for logs only
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("wasm module %q operation %q: %v", e.Module, e.Operation, e.Kind)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// refusal is a Load error: every problem found with one module, at once.
type refusal struct {
	module   string
	problems []string
}

func refuse(module string, problems ...string) error {
	return &refusal{module: module, problems: problems}
}

func (r *refusal) Error() string {
	return fmt.Sprintf("wasm module %q: %s", r.module, strings.Join(r.problems, "; "))
}

func (r *refusal) Is(target error) bool { return target == ErrRefused }

// firstLine keeps the head of a wazero error ("wasm error: unreachable")
// without the stack trace that follows it.
func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// Timeout reports whether the call ran out of time, so that callers that do
// not import this package (the flow engine) can tell a timeout apart.
func (e *Error) Timeout() bool { return errors.Is(e.Kind, ErrTimeout) }
