package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
)

// A job enqueued with a chosen id is added once: enqueuing the same id again
// is a duplicate while the id is remembered, even after the first job
// finished (so a retried push, as an outbox drainer makes after a crash,
// never adds a second job), and it can be used again once forgotten.
func TestChosenJobIDIsEnqueuedOnce(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := context.Background()
		c, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, IDRetention: time.Hour})
		require.NoError(t, err)
		opts := &queue.EnqueueOpts{ID: "order-42:receipt"}

		first, err := c.Enqueue(ctx, "receipt", map[string]int{"order": 42}, opts)
		require.NoError(t, err)
		require.False(t, first.Duplicate)
		require.Equal(t, "order-42:receipt", first.Job.ID)

		again, err := c.Enqueue(ctx, "receipt", map[string]int{"order": 42}, opts)
		require.NoError(t, err)
		require.True(t, again.Duplicate)
		require.Equal(t, "order-42:receipt", again.Job.ID)

		// The first job finishes: it is no longer in the queue.
		require.NoError(t, c.DeleteQueued(ctx, queue.QueueDefault, first.Job.ID))
		later, err := c.Enqueue(ctx, "receipt", map[string]int{"order": 42}, opts)
		require.NoError(t, err)
		require.True(t, later.Duplicate, "a finished job's id is still remembered")

		// In one batch, the second of two equal ids is a duplicate.
		res, err := c.EnqueueMany(ctx, []queue.Params{
			{Kind: "receipt", Opts: &queue.EnqueueOpts{ID: "batch-1"}},
			{Kind: "receipt", Opts: &queue.EnqueueOpts{ID: "batch-1"}},
			{Kind: "receipt"},
		})
		require.NoError(t, err)
		require.False(t, res[0].Duplicate)
		require.True(t, res[1].Duplicate)
		require.False(t, res[2].Duplicate)
		jobs, err := c.QueueJobs(ctx, queue.QueueDefault, 0, 10)
		require.NoError(t, err)
		require.Len(t, jobs, 2)

		short, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, IDRetention: 50 * time.Millisecond})
		require.NoError(t, err)
		_, err = short.Enqueue(ctx, "receipt", nil, &queue.EnqueueOpts{ID: "brief"})
		require.NoError(t, err)
		testutil.Eventually(t, 5*time.Second, func() bool {
			res, err := short.Enqueue(ctx, "receipt", nil, &queue.EnqueueOpts{ID: "brief"})
			return err == nil && !res.Duplicate
		}, "a forgotten id to be usable again")
	})
}

// A chosen id must be a valid name.
func TestChosenJobIDIsChecked(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	c, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace})
	require.NoError(t, err)
	_, err = c.Enqueue(context.Background(), "k", nil, &queue.EnqueueOpts{ID: "has space"})
	require.ErrorIs(t, err, queue.ErrInvalidName)
}
