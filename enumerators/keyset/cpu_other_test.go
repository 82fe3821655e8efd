//go:build !unix

package keyset_test

import "time"

// processCPU is not measured on this system: benchmarks report zero.
func processCPU() time.Duration { return 0 }
