//go:build !linux

package loadbench

import "time"

type cpuSample struct{}

func sampleCPU([]int) cpuSample { return cpuSample{} }

func othersShare(a, b cpuSample) float64 { return -1 }

func candidateCPU(a, b cpuSample) time.Duration { return -1 }

func idleShare(a, b cpuSample) float64 { return -1 }
