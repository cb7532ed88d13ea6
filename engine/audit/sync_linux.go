//go:build linux

package audit

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data and the metadata needed to read it (its size),
// not its times: cheaper than fsync for an appended log.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
