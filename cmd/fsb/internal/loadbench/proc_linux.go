package loadbench

import "syscall"

// childAttr makes a child process die with us, so that a crashed benchmark
// leaves no nginx behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
