//go:build linux

package pg_test

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel kill the worker if the test process dies
// first, so an interrupted test run leaves no workers behind.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
