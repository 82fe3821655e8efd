package consumer_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

// Cancel looks for the job in three steps (sorted sets, then a scan of the
// queues, then the in-flight hashes), each its own round trip. A running job
// that is re-enqueued between the scan and the in-flight check (an iterable
// job interrupted by MaxRuntime, quiet or a throttle) is in none of the
// places at the moment each is looked at: Cancel reports ErrNotFound and the
// job runs on, uncancelled.
func TestCancelFindsAJobThatIsRequeuedDuringTheCall(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		res, err := b.client.Enqueue(ctx, "k", 1, nil)
		require.NoError(t, err)
		jobs, err := b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Len(t, jobs, 1) // running

		hc := testutil.OtherClient(t, r)
		hc.AddHook(&testutil.AfterHook{
			Match: func(c redis.Cmder) bool { return c.Name() == "lrange" },
			// The run is interrupted while Cancel scans the queue.
			Fn: func() { require.NoError(t, b.cons.Requeue(context.Background(), jobs[0], nil)) },
		})
		admin, err := queue.NewClient(hc, queue.Config{Namespace: r.Namespace, Logger: quiet})
		require.NoError(t, err)

		_, err = admin.Cancel(ctx, res.Job.ID)
		require.NoError(t, err, "the job exists all along (running, then queued)")
		again, err := b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		if len(again) == 1 {
			flags, err := b.cons.CancelRequested(ctx, []*jobtype.Job{res.Job})
			require.NoError(t, err)
			require.True(t, flags[0], "a cancelled job that runs again is flagged")
		}
	})
}

// The queue scan pages with LRANGE by index while workers pop the head of the
// same list: every job popped between two pages shifts the rest one place
// towards the head, so the job at the first index of the next page is never
// looked at. Cancel (and DeleteQueued, which scans the same way) then reports
// ErrNotFound for a job that is waiting in the queue.
func TestCancelFindsAQueuedJobWhileTheQueueIsConsumed(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		params := make([]queue.Params, 1001)
		for i := range params {
			params[i] = queue.Params{Kind: "k", Args: i}
		}
		res, err := b.client.EnqueueMany(ctx, params)
		require.NoError(t, err)
		target := res[1000].Job.ID // the first job of the second page

		hc := testutil.OtherClient(t, r)
		hc.AddHook(&testutil.AfterHook{
			Match: func(c redis.Cmder) bool { return c.Name() == "lrange" },
			// A worker takes the head job while Cancel reads the first page.
			Fn: func() {
				jobs, err := b.cons.Fetch(context.Background(), 1)
				require.NoError(t, err)
				require.Len(t, jobs, 1)
			},
		})
		admin, err := queue.NewClient(hc, queue.Config{Namespace: r.Namespace, Logger: quiet})
		require.NoError(t, err)

		st, err := admin.Cancel(ctx, target)
		require.NoError(t, err, "job %s waits in the queue during the whole call", target)
		require.Equal(t, jobtype.StateQueued, st)
	})
}
