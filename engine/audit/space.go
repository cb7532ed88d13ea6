package audit

import (
	"errors"
	"fmt"
)

// errLowSpace refuses a batch before anything is written: the file system
// is nearly full. Not sticky: records are accepted again once space is
// freed.
var errLowSpace = errors.New("audit: the store's file system is nearly full")

// checkSpace refuses to write when the store's file system has less than
// MinFreeSpace free. It runs once per batch on the writer goroutine (one
// statfs, about a microsecond). Badger cannot be trusted to fail cleanly
// on a full disk: its memtables, value log and tables are sparse files
// written through mmap, so a write into a page the disk has no block for
// is a SIGBUS that kills the process (measured on a full tmpfs: the
// memtable flush died in table.CreateTable). Refusing early keeps the
// gateway up, answering serviceUnavailable, until an operator frees space.
func (s *Store) checkSpace() error {
	if s.opt.MinFreeSpace < 0 || s.opt.InMemory {
		return nil
	}
	free, ok := freeSpace(s.opt.Dir)
	if !ok || free >= uint64(s.opt.MinFreeSpace) {
		return nil
	}
	return fmt.Errorf("%w: %d bytes free, %d required", errLowSpace, free, s.opt.MinFreeSpace)
}
