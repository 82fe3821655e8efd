package metrics_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/metrics"
)

// BenchmarkOnEvent is the collector's cost on a runner's hot path: one
// plain job's events (started, succeeded) per op, over 1,000 job ids and
// one kind. A 140,000 jobs/s runner spends 140,000 × this per second.
func BenchmarkOnEvent(b *testing.B) {
	m := metrics.New(nil, nil)
	ctx := context.Background()
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			id := ids[i%len(ids)]
			i++
			m.OnEvent(ctx, jobtype.Event{Type: jobtype.EventStarted, JobID: id, Kind: "email", At: now})
			m.OnEvent(ctx, jobtype.Event{Type: jobtype.EventSucceeded, JobID: id, Kind: "email", At: now.Add(time.Millisecond)})
		}
	})
}
