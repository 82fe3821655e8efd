package rdb_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
)

// BenchmarkAck measures the ack of a batch of 500 jobs, with and without
// their events, on the real Redis: the time Redis spends is in INFO
// commandstats; this measures the round trip.
func BenchmarkAck(b *testing.B) {
	r := testutil.RealRedis(b)
	ctx := context.Background()
	for _, withEvents := range []bool{false, true} {
		b.Run(fmt.Sprintf("events=%v", withEvents), func(b *testing.B) {
			db := rdb.New(r.Client, testutil.Unique("b"))
			defer testutil.DeleteNamespace(ctx, r.Client, db.Keys.Namespace())
			const n = 500
			jobs := make([]rdb.NewJob, n)
			for i := range jobs {
				j := &jobtype.Job{ID: rdb.NewID(), Kind: "noop", Queue: "default", Args: []byte("{}"), Attempt: 1, EnqueuedAt: time.Now()}
				env, _ := rdb.EncodeJob(j)
				jobs[i] = rdb.NewJob{ID: j.ID, Queue: "default", Envelope: env}
			}
			for b.Loop() {
				b.StopTimer()
				if _, err := db.Enqueue(ctx, time.Now(), jobs); err != nil {
					b.Fatal(err)
				}
				_ = db.RegisterIn(ctx, "p", []string{"default"}, true, time.Now())
				got, err := db.Fetch(ctx, "p", n, []string{"default"}, time.Now(), false)
				if err != nil || len(got) != n {
					b.Fatal(err, len(got))
				}
				owned := make([]rdb.Owned, n)
				var events []byte
				for i, f := range got {
					owned[i] = rdb.Owned{ID: jobs[i].ID, Queue: "default", Lease: f.Lease}
					if withEvents {
						ev := jobtype.Event{Type: jobtype.EventSucceeded, JobID: jobs[i].ID, Kind: "noop", Queue: "default", Attempt: 1, At: time.Now()}
						before := len(events)
						if before > 0 {
							events = append(events, ',')
							before++
						}
						events, _ = ev.AppendJSON(events)
						owned[i].EventLen = len(events) - before
					}
				}
				b.StartTimer()
				if _, err := db.Ack(ctx, "p", time.Now(), owned, events, rdb.Pending{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
