//go:build !wasip1

package guest

import (
	"fmt"
	"os"
)

// defaultLog writes to standard error when the plugin runs natively (in its
// unit tests).
func defaultLog(level Level, msg string) {
	fmt.Fprintf(os.Stderr, "guest: %s %s\n", level, msg)
}
