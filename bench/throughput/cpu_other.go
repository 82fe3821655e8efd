//go:build !unix

package main

import "time"

// selfCPU reports no figure where getrusage is missing; the parent then
// counts the child's whole life (os.ProcessState).
func selfCPU() (time.Duration, bool) { return 0, false }
