package guest

import (
	"errors"
	"fmt"
	"runtime"
)

// This file holds the logic behind the WebAssembly exports, kept free of
// wasm-only code so that it is tested natively: exports_wasip1.go wires it to
// real addresses and host functions, the tests to fake ones.

// maxLen is the largest buffer length a result can carry (31 bits).
const maxLen = 1<<31 - 1

// failBit flags a failed call in an operation's result.
const failBit = 1 << 31

// pack builds an operation's result: ptr<<32 | len | failBit if failed.
func pack(ptr, n uint32, failed bool) uint64 {
	r := uint64(ptr)<<32 | uint64(n&maxLen)
	if failed {
		r |= failBit
	}
	return r
}

// unpack splits an operation's result.
func unpack(r uint64) (ptr, n uint32, failed bool) {
	return uint32(r >> 32), uint32(r) & maxLen, r&failBit != 0
}

// exports is the guest side of the ABI: buffers handed to the host and
// operation calls.
type exports struct {
	// pinned holds every buffer the host may use, by address, so that the
	// garbage collector keeps it: those from alloc until the call that takes
	// them as input, and outputs until free.
	pinned map[uint32][]byte
	// addr returns the linear-memory address of b's first byte.
	addr func(b []byte) uint32
	// config reads the step's configuration from the host.
	config func() ([]byte, error)
}

func newExports(addr func([]byte) uint32, config func() ([]byte, error)) *exports {
	return &exports{pinned: make(map[uint32][]byte), addr: addr, config: config}
}

// alloc returns the address of size fresh bytes, or 0 when size is too big.
func (e *exports) alloc(size uint32) uint32 {
	if size > maxLen {
		return 0
	}
	b := make([]byte, max(size, 1)) // a zero-size buffer still needs an address of its own
	p := e.addr(b)
	e.pinned[p] = b
	return p
}

// free releases a buffer from alloc or an output. Unknown addresses are
// ignored: a guest must not trap on a host's double free.
func (e *exports) free(ptr, _ uint32) {
	delete(e.pinned, ptr)
}

// call runs operation o on the length bytes at ptr, which came from alloc
// (or are 0, 0 for an empty input), and returns the packed result.
func (e *exports) call(o op, ptr, length uint32) uint64 {
	var in []byte
	if ptr != 0 || length != 0 {
		buf, ok := e.pinned[ptr]
		if !ok || uint64(length) > uint64(len(buf)) {
			return e.fail(fmt.Sprintf("%s: input %#x+%d is not a buffer from alloc", opNames[o], ptr, length))
		}
		delete(e.pinned, ptr) // the call owns it now; an output may reuse it
		in = buf[:length:length]
	}
	out, err := invoke(o, in, Config{st: &configState{load: e.config}})
	if max(int(length), len(out)) >= gcAfter {
		// A big call leaves much garbage and a collection goal in
		// proportion, and a guest's memory never shrinks: collect now, so
		// that the next big call finds the memory free (measured: a 1 MiB
		// input then needs 21 MiB instead of 27 with encoding/json).
		runtime.GC()
	}
	if err != nil {
		return e.fail(err.Error())
	}
	return e.output(out, false)
}

// gcAfter is the input or output size from which a call ends with a
// collection. A collection costs a few milliseconds in a guest (5 ms
// measured), more than a 64 KiB transform's 8 ms can bear, less than a
// 256 KiB one's 30 ms.
const gcAfter = 256 << 10

func (e *exports) fail(msg string) uint64 {
	if msg == "" {
		msg = "failed with an empty error message"
	}
	return e.output([]byte(msg), true)
}

// output pins out until the host frees it and returns the packed result.
func (e *exports) output(out []byte, failed bool) uint64 {
	if len(out) == 0 {
		return pack(0, 0, failed)
	}
	if len(out) > maxLen {
		return e.fail(fmt.Sprintf("output of %d bytes is longer than an ABI result can say", len(out)))
	}
	p := e.addr(out)
	e.pinned[p] = out
	return pack(p, uint32(len(out)), failed)
}

// errConfigGrows is returned when fsb.config asks for a bigger buffer every
// time.
var errConfigGrows = errors.New("guest: fsb.config: the configuration kept growing")

// readGrow reads a value from a host function with the ABI's grow-and-retry
// protocol: read writes into buf if the value fits and returns its length
// either way.
func readGrow(read func(buf []byte) uint32) ([]byte, error) {
	buf := make([]byte, 512)
	for range 4 {
		n := read(buf)
		if n > maxLen {
			return nil, fmt.Errorf("guest: host returned an invalid length %d", int32(n))
		}
		if int(n) <= len(buf) {
			return buf[:n], nil
		}
		buf = make([]byte, n)
	}
	return nil, errConfigGrows
}
