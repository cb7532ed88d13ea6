//go:build !linux

package loadbench

import "syscall"

func childAttr() *syscall.SysProcAttr { return nil }
