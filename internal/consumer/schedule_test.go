package consumer_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
)

// A far-future At once overflowed UnixMilli into a past score, and the job
// ran at once. Times beyond the year 9999 are refused; the latest valid one
// and a huge In are scheduled, not run.
func TestFarFutureScheduleIsRefusedNotRunNow(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		for _, at := range []time.Time{
			time.Date(300_000_000, 1, 1, 0, 0, 0, 0, time.UTC),
			time.Unix(1<<62, 0), // some 1.5e11 years ahead
			time.Date(10_000, 1, 1, 0, 0, 0, 0, time.UTC),
			time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.FixedZone("west", -3600)), // 10000-01-01 in UTC
		} {
			_, err := b.client.Enqueue(ctx, "k", nil, &queue.EnqueueOpts{At: at})
			require.ErrorIs(t, err, queue.ErrInvalidSchedule, "At %s", at)
			require.ErrorContains(t, err, "after 9999-12-31")
			_, err = b.client.EnqueueMany(ctx, []queue.Params{{Kind: "k"}, {Kind: "k", Opts: &queue.EnqueueOpts{At: at}}})
			require.ErrorIs(t, err, queue.ErrInvalidSchedule, "EnqueueMany, At %s", at)
			require.ErrorContains(t, err, "job 2 of 2")
		}
		qs, err := b.client.Queues(ctx)
		require.NoError(t, err)
		for _, q := range qs {
			require.Zero(t, q.Size, "nothing was enqueued, not even EnqueueMany's valid job")
		}
		scheduled, err := b.client.SetSize(ctx, queue.SetScheduled)
		require.NoError(t, err)
		require.Zero(t, scheduled, "nothing was scheduled")

		last := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
		res, err := b.client.Enqueue(ctx, "k", nil, &queue.EnqueueOpts{At: last})
		require.NoError(t, err)
		require.True(t, res.Scheduled)
		far, err := b.client.Enqueue(ctx, "k", nil, &queue.EnqueueOpts{In: math.MaxInt64})
		require.NoError(t, err)
		require.True(t, far.Scheduled, "the longest In (~292 years) is scheduled")

		n, next, err := b.cons.Promote(ctx, 100)
		require.NoError(t, err)
		require.Zero(t, n, "neither job is due")
		require.WithinDuration(t, time.Now().Add(math.MaxInt64), next, time.Minute)
		jobs, err := b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Empty(t, jobs)
		sched, err := b.client.SetJobs(ctx, queue.SetScheduled, 0, 10)
		require.NoError(t, err)
		require.Len(t, sched, 2)
		require.Equal(t, far.Job.ID, sched[0].ID)
		require.Equal(t, res.Job.ID, sched[1].ID)
		require.True(t, last.Equal(sched[1].At), "the due time is kept exactly: %s", sched[1].At)
	})
}
