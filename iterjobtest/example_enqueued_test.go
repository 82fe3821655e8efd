package iterjobtest_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/iterjobtest"
	"github.com/iterjob/iterjob/queue"
)

// Check what code under test enqueued, then run that very job inline: its
// arguments decode as the runner decodes them, and its start cursor and
// queue are the run's.
func ExampleIterateEnqueued() {
	ctx := context.Background()
	mr := miniredis.NewMiniRedis()
	_ = mr.Start()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	client, _ := queue.NewClient(rdb, queue.Config{})

	// The code under test: re-run a backfill from row 8.
	_, _ = client.EnqueueArgs(ctx, BackfillArgs{Rows: 10}, &queue.EnqueueOpts{Queue: "bulk", StartCursor: 8})

	var t printT // in a test: t *testing.T
	rec := iterjobtest.RequireEnqueuedArgs(ctx, t, client, BackfillArgs{Rows: 10}, &iterjobtest.Want{Queue: "bulk"})
	job := &backfill{}
	run, err := iterjobtest.IterateEnqueued(ctx, job, rec, nil, iterjobtest.Options{})
	fmt.Println(run.Info.Kind, run.Info.Queue, run.Action, job.done, err)
	// Output:
	// backfill bulk ack [8 9] <nil>
}
