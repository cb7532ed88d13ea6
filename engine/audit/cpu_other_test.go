//go:build !unix

package audit

import "time"

func processCPU() time.Duration { return -1 }
