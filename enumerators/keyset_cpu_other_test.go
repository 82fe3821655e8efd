//go:build !unix

package enumerators_test

import "time"

// processCPU is not measured on this system: benchmarks report zero.
func processCPU() time.Duration { return 0 }
