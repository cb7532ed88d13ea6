//go:build linux

package audit

import (
	"syscall"
	"unsafe"
)

// directIO opens a file for writes that bypass the page cache (zeroing a
// prepared segment, segment.go writeZeros).
const directIO = syscall.O_DIRECT

// alignedBuf returns n zero bytes starting at a page boundary, as direct
// I/O needs (n a multiple of the page size).
func alignedBuf(n int) []byte {
	b := make([]byte, n+pageSize)
	off := int(-uintptr(unsafe.Pointer(&b[0])) & uintptr(pageSize-1))
	return b[off : off+n : off+n]
}
