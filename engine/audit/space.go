package audit

import (
	"errors"
	"fmt"
	"time"
)

// errLowSpace refuses a batch before anything is written: the file system
// is nearly full. Not sticky: records are accepted again once space is
// freed.
var errLowSpace = errors.New("audit: the store's file system is nearly full")

// checkSpace refuses to write when the store's file system has less than
// MinFreeSpace free. It runs on the writer goroutine before each batch,
// but asks the file system (statfs, a few microseconds) only when the last
// answer is older than spaceRecheck or the store has written a quarter of
// the margin it had above the floor since: with small batches a statfs
// per batch was ~20% of the writer's CPU. A write that fails for want of
// space is an error (plain write(2): ENOSPC), but a failed write breaks
// the store until it is reopened (store.go, fail) and may leave a torn
// batch behind; refusing early keeps the gateway up, answering
// serviceUnavailable, and accepting records again by itself once an
// operator frees space. The index's runs and merges need room on the same
// file system too.
func (s *Store) checkSpace(next int) error {
	if s.opt.MinFreeSpace < 0 {
		return nil
	}
	sp := &s.space
	sp.written += int64(next)
	if !sp.at.IsZero() && time.Since(sp.at) < spaceRecheck && sp.written < sp.margin/4 {
		return nil
	}
	free, ok := statFree(s.opt.Dir)
	sp.at, sp.written, sp.margin = time.Now(), 0, 0
	if !ok {
		return nil
	}
	if free >= uint64(s.opt.MinFreeSpace) {
		sp.margin = int64(free) - s.opt.MinFreeSpace
		return nil
	}
	sp.at = time.Time{} // below the floor: ask again before the next batch
	return fmt.Errorf("%w: %d bytes free, %d required", errLowSpace, free, s.opt.MinFreeSpace)
}

// statFree is freeSpace (a variable for tests).
var statFree = freeSpace

// spaceRecheck bounds how long a free-space answer is trusted.
const spaceRecheck = 2 * time.Millisecond

// spaceCheck is the writer's last free-space answer.
type spaceCheck struct {
	at      time.Time
	written int64 // bytes written since
	margin  int64 // free space above the floor then
}
