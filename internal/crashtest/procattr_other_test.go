//go:build !linux

package crashtest

import "os/exec"

// dieWithTest does nothing where the kernel cannot tie a child's life to
// its parent's; the tests' cleanups still kill their workers.
func dieWithTest(*exec.Cmd) {}
