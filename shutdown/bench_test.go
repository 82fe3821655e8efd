package shutdown_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/iterjob/iterjob/shutdown"
)

// BenchmarkState measures the per-item stop check a runner makes, written as
// a runner writes it, and reports it against a bare atomic.Int32 load
// measured in the same run: x_atomic_load near 1 means State costs nothing
// beyond the load.
func BenchmarkState(b *testing.B) {
	ctl, err := shutdown.New(shutdown.Config{})
	if err != nil {
		b.Fatal(err)
	}
	var bare atomic.Int32

	start := time.Now()
	for range b.N {
		if bare.Load() >= 1 {
			b.Fatal("bare load moved")
		}
	}
	baseline := time.Since(start)

	b.ResetTimer()
	for range b.N {
		if ctl.State() >= shutdown.Quiet {
			b.Fatal("state moved")
		}
	}
	b.StopTimer()
	perState := float64(b.Elapsed()) / float64(b.N)
	perLoad := float64(baseline) / float64(b.N)
	b.ReportMetric(perLoad, "atomic_load_ns/op")
	b.ReportMetric(perState/perLoad, "x_atomic_load")
}

// BenchmarkStateParallel is the stop check from every core at once, as many
// workers make it: reads do not contend.
func BenchmarkStateParallel(b *testing.B) {
	ctl, err := shutdown.New(shutdown.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ctl.State() >= shutdown.Quiet {
				b.Error("state moved")
				return
			}
		}
	})
}
