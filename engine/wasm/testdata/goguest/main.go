// Command goguest is an OpenFSB plugin written in Go without the SDK, built
// by the tests (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared) to
// check what Go guests need from the host: WASI, _initialize, stderr.
//
// Operations: echo returns its input; transform decodes the input JSON and
// encodes it again (the usual cost of a Go transform); both misbehave on a
// first byte of '!' (panic) or '+' (allocate until out of memory), and
// transform answers the configuration for an input of "$".
package main

import (
	"encoding/json"
	"unsafe"
)

//go:wasmimport fsb config
func config(ptr unsafe.Pointer, capacity uint32) uint32

// live keeps every buffer handed to the host reachable until it is freed;
// Go's collector does not move objects, so the pointers stay valid.
var live = map[uintptr][]byte{}

//go:wasmexport abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport alloc
func alloc(size uint32) unsafe.Pointer {
	return keep(make([]byte, size))
}

//go:wasmexport free
func free(ptr unsafe.Pointer, _ uint32) { delete(live, uintptr(ptr)) }

func keep(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	live[uintptr(p)] = b
	return p
}

func result(b []byte) uint64 {
	return uint64(uintptr(keep(b)))<<32 | uint64(len(b))
}

func failure(msg string) uint64 { return result([]byte(msg)) | 1<<31 }

var hoard [][]byte

func misbehave(in []byte) {
	if len(in) == 0 {
		return
	}
	switch in[0] {
	case '!':
		panic("asked to panic")
	case '+':
		for {
			hoard = append(hoard, make([]byte, 1<<20))
		}
	}
}

//go:wasmexport echo
func echo(ptr unsafe.Pointer, n uint32) uint64 {
	in := unsafe.Slice((*byte)(ptr), n)
	misbehave(in)
	return uint64(uintptr(ptr))<<32 | uint64(n)
}

//go:wasmexport transform
func transform(ptr unsafe.Pointer, n uint32) uint64 {
	in := unsafe.Slice((*byte)(ptr), n)
	defer free(ptr, n)
	misbehave(in)
	if string(in) == "$" {
		size := config(nil, 0)
		buf := make([]byte, size)
		config(unsafe.Pointer(unsafe.SliceData(buf)), size)
		return result(buf)
	}
	var v any
	if err := json.Unmarshal(in, &v); err != nil {
		return failure(err.Error())
	}
	out, err := json.Marshal(v)
	if err != nil {
		return failure(err.Error())
	}
	return result(out)
}

func main() {}
