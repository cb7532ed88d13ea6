//go:build unix

package audit

import (
	"fmt"
	"os"
	"syscall"
)

// lockDir takes an exclusive lock on dir/audit.lock: one process at a time
// opens a store (a second Open fails instead of corrupting the log).
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, filePerm)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s is locked by another process (is the gateway running?): %w", path, err)
	}
	return f, nil
}
