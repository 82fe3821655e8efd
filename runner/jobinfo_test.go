package runner_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// Client.Job finds a job wherever it is, with an iterable job's progress,
// without anyone opening the cursor store.
func TestClientJobFindsAJobWhereverItIs(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r)
		client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet, JobData: b.store})
		require.NoError(t, err)

		_, err = client.Job(ctx, "nobody")
		require.ErrorIs(t, err, queue.ErrNotFound)

		// Waiting: queued and scheduled (no runner yet).
		queued, err := client.Enqueue(ctx, "count", countArgs{N: 4}, &queue.EnqueueOpts{Meta: map[string]string{"t": "acme"}})
		require.NoError(t, err)
		later, err := client.Enqueue(ctx, "count", countArgs{N: 4}, &queue.EnqueueOpts{In: time.Hour})
		require.NoError(t, err)
		info, err := client.Job(ctx, queued.Job.ID)
		require.NoError(t, err)
		require.Equal(t, jobtype.StateQueued, info.State)
		require.Equal(t, map[string]string{"t": "acme"}, info.Job.Meta)
		info, err = client.Job(ctx, later.Job.ID)
		require.NoError(t, err)
		require.Equal(t, jobtype.StateScheduled, info.State)

		// Running: on which process, with the progress of its last
		// checkpoint.
		job := newRecorder()
		job.pauseAt, job.paused, job.release = 2, make(chan struct{}), make(chan struct{})
		runner.RegisterIterable(b.reg, "count", job, &runner.KindOpts{MaxAttempts: 1})
		run := b.start(t, nil)
		<-job.paused
		info, err = client.Job(ctx, queued.Job.ID)
		require.NoError(t, err)
		require.Equal(t, jobtype.StateRunning, info.State)
		require.Equal(t, run.ProcessID(), info.Process)
		require.Positive(t, info.Job.Lease)
		require.Equal(t, "running", info.IterationStatus)
		close(job.release)

		// Finished: its state, kept for inspection, says completed.
		b.ev.wait(t, queued.Job.ID, jobtype.EventSucceeded)
		info, err = client.Job(ctx, queued.Job.ID)
		require.NoError(t, err)
		require.Nil(t, info.Job)
		require.Equal(t, jobtype.State("completed"), info.State)
		require.Equal(t, int64(4), info.Progress.ItemsProcessed)

		// Dead: with its last error.
		job.failAt[0] = 1
		dead, err := client.Enqueue(ctx, "count", countArgs{N: 4}, nil)
		require.NoError(t, err)
		b.ev.wait(t, dead.Job.ID, jobtype.EventDead)
		info, err = client.Job(ctx, dead.Job.ID)
		require.NoError(t, err)
		require.Equal(t, jobtype.StateDead, info.State)
		require.Contains(t, info.Job.LastError.Message, "item 0 failed")
		require.Equal(t, "dead", info.IterationStatus)
	})
}
