//go:build !linux

package audit

// directIO is 0 here: a prepared segment is zeroed through the page cache.
const directIO = 0

func alignedBuf(n int) []byte { return make([]byte, n) }
