//go:build wasip1

package guest

import "unsafe"

// The module's exports (ABI.md, "Exports the host checks at load"). Go's
// toolchain adds memory and _initialize, which runs the init functions,
// hence the registrations.

var ex = newExports(addr, readConfig)

// addr returns the linear-memory address of b's first byte (b is not empty).
func addr(b []byte) uint32 {
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

//go:wasmexport abi_version
func wasmABIVersion() int32 { return ABIVersion }

//go:wasmexport alloc
func wasmAlloc(size uint32) uint32 { return ex.alloc(size) }

//go:wasmexport free
func wasmFree(ptr, size uint32) { ex.free(ptr, size) }

//go:wasmexport transform
func wasmTransform(ptr, length uint32) uint64 { return ex.call(opTransform, ptr, length) }

//go:wasmexport encode
func wasmEncode(ptr, length uint32) uint64 { return ex.call(opEncode, ptr, length) }

//go:wasmexport decode
func wasmDecode(ptr, length uint32) uint64 { return ex.call(opDecode, ptr, length) }

// The host functions (ABI.md, "Host functions").

//go:wasmimport fsb config
//go:noescape
func fsbConfig(ptr unsafe.Pointer, capacity uint32) uint32

//go:wasmimport fsb log
//go:noescape
func fsbLog(level int32, ptr unsafe.Pointer, length uint32)

func readConfig() ([]byte, error) {
	return readGrow(func(buf []byte) uint32 {
		return fsbConfig(unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf)))
	})
}

func defaultLog(level Level, msg string) {
	fsbLog(int32(level), unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}
