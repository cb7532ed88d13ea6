package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// onTmpfs reports whether dir is on a tmpfs, whose pages are the page
// cache itself (no direct I/O to bypass it with, nothing read from a disk).
func onTmpfs(t *testing.T, dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Type == unix.TMPFS_MAGIC
}

// residentPages counts the pages of path in the page cache.
func residentPages(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+pageSize-1)/pageSize)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// checkZeros fails unless path is the segment magic, then zeros, size bytes.
func checkZeros(t *testing.T, path string, size int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != size || !bytes.HasPrefix(b, []byte(segMagic)) || !isZero(b[len(segMagic):]) {
		t.Fatalf("%d bytes, magic %t, zeros %t; want %d bytes: the magic, then zeros", len(b),
			bytes.HasPrefix(b, []byte(segMagic)), isZero(b[min(len(segMagic), len(b)):]), size)
	}
}

// TestWriteZerosBypassesPageCache: a prepared segment is the magic and
// zeros, written with direct I/O: none of it is left in the page cache.
func TestWriteZerosBypassesPageCache(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, nextPrepared)
	const size = 3<<20 + 64<<10 // not a multiple of the 1 MiB buffer
	if err := writeZeros(path, size); err != nil {
		t.Fatal(err)
	}
	if !onTmpfs(t, dir) {
		if n := residentPages(t, path); n != 0 {
			t.Fatalf("%d pages of the prepared segment in the page cache, want 0 (direct I/O)", n)
		}
	}
	checkZeros(t, path, size)
}

// TestWriteZerosWithoutDirectIO: where direct I/O is refused (here: an
// open flag that fails), the zeros go through the page cache instead.
func TestWriteZerosWithoutDirectIO(t *testing.T) {
	old := zeroFlags
	zeroFlags = syscall.O_DIRECTORY // a regular file: the open fails
	t.Cleanup(func() { zeroFlags = old })
	path := filepath.Join(t.TempDir(), nextPrepared)
	if err := zeroFile(path, 1<<20, zeroFlags); err == nil {
		t.Fatal("the failing open did not fail: the test tests nothing")
	}
	if err := writeZeros(path, 1<<20); err != nil {
		t.Fatal(err)
	}
	checkZeros(t, path, 1<<20)
}

// TestPreparedAppendsReadNothing: the batches written into a segment
// prepared with direct I/O end on page boundaries, so the kernel never
// reads a page of it from the disk to complete a partial write (without
// the padding: ~1 read a batch).
func TestPreparedAppendsReadNothing(t *testing.T) {
	preparedSegments(t, 1<<20, 8<<10)
	dir := t.TempDir()
	s := openStore(t, testOptions(dir))
	defer s.Close()
	i := waitPrepared(t, s, 0)
	// The next prepared segment, made while the first is in use, is the one
	// measured: nothing of it is in the page cache.
	next := filepath.Join(dir, "log", nextPrepared)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if fi, err := os.Stat(next); err == nil && fi.Size() == segmentSize {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the next segment was never prepared")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !onTmpfs(t, dir) {
		if n := residentPages(t, next); n != 0 {
			t.Fatalf("%d pages of the prepared segment cached before use, want 0", n)
		}
	}
	before := readBytes(t)
	segs := len(segFiles(t, dir))
	for len(segFiles(t, dir)) == segs { // into the measured segment
		call(t, s, i)
		i++
	}
	for range 300 {
		call(t, s, i)
		i++
	}
	if got := readBytes(t) - before; got != 0 {
		t.Fatalf("appends into a prepared segment read %d bytes from the disk, want 0", got)
	}
}

// readBytes is what this process has had read from storage (/proc/self/io).
func readBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "read_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no read_bytes in /proc/self/io")
	return 0
}
