package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// cancelFirst is a runner middleware that cancels every job of kind "count"
// once it is fetched and before its run starts: Cancel finds it in flight
// and records a pending cancellation, which the run reads before anything
// else, as it would for a job cancelled while fetched ahead.
func cancelFirst(t *testing.T, client *queue.Client) runner.Middleware {
	return func(ctx context.Context, j *jobtype.Job, next func(context.Context) error) error {
		if j.Kind == "count" {
			st, err := client.Cancel(ctx, j.ID)
			if err != nil || st != jobtype.StateRunning {
				t.Errorf("Cancel of a fetched job: %v, %v; want running", st, err)
			}
		}
		return next(ctx)
	}
}

// A job cancelled before its run starts gets its start or resume hook, then
// OnStop(cancelled), as in Sidekiq's IterableJob; it iterates nothing (not
// even BuildEnumerator runs), OnComplete does not fire, and it is gone.
func TestJobCancelledBeforeItsRunStartsStopsCancelled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		resumed bool
		hooks   []string
		first   jobtype.EventType
	}{
		{"first run", false, []string{"start", "stop:cancelled"}, jobtype.EventStarted},
		{"resumed run", true, []string{"resume", "stop:cancelled"}, jobtype.EventResumed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
				ctx := t.Context()
				b := setup(t, r)
				job := newRecorder()
				runner.RegisterIterable(b.reg, "count", job, nil)
				res, err := b.client.Enqueue(ctx, "count", countArgs{N: 50}, &queue.EnqueueOpts{UniqueKey: "one"})
				require.NoError(t, err)
				if tc.resumed {
					// A state left by an earlier run that started the job
					// and got to item 10, with a lease below the next fetch's.
					require.NoError(t, r.Client.IncrBy(ctx, dq(r).Leases(), 10).Err())
					_, err = b.store.Begin(ctx, res.Job.ID, 5)
					require.NoError(t, err)
					require.NoError(t, b.store.Save(ctx, res.Job.ID, 5, cursor.State{
						Cursor: []byte("10"), Started: true, ItemsProcessed: 10, TimesInterrupted: 1,
						Status: cursor.StatusInterrupted, ProgressDone: 10, ProgressTotal: 50, ProgressUnit: "items",
						FirstStartedAt: time.Now().Add(-time.Minute), LastCheckpointAt: time.Now(),
					}))
				}
				run := b.start(t, func(c *runner.Config) { c.Middleware = []runner.Middleware{cancelFirst(t, b.client)} })

				ev := b.ev.wait(t, res.Job.ID, jobtype.EventCancelled)
				require.Equal(t, tc.hooks, job.hooks(), "the start or resume hook, then OnStop(cancelled); no enumerator, no OnComplete")
				require.Empty(t, job.done, "nothing iterated")
				require.Equal(t, []jobtype.EventType{tc.first, jobtype.EventCancelled}, b.ev.types(res.Job.ID))
				require.Equal(t, "count", ev.Kind)
				require.Equal(t, "default", ev.Queue)
				require.Equal(t, 1, ev.Attempt)

				st, err := b.store.Load(ctx, res.Job.ID)
				require.NoError(t, err)
				require.Equal(t, cursor.StatusCancelled, st.Status)
				require.True(t, st.Started)
				if tc.resumed {
					require.JSONEq(t, "10", string(st.Cursor), "the cursor is kept as it was")
					require.Equal(t, int64(10), st.ItemsProcessed)
					require.Equal(t, int64(50), ev.Progress.Total, "the saved progress stands")
				}

				// Gone: not re-enqueued, not retried, not dead, not in flight,
				// and its uniqueness key is free.
				testutil.Eventually(t, 5*time.Second, func() bool {
					return r.Client.HLen(ctx, dq(r).Inflight(run.ProcessID())).Val() == 0
				}, "the cancelled job leaves the in-flight hash")
				require.Zero(t, r.Client.LLen(ctx, dq(r).Jobs()).Val())
				require.Zero(t, r.Client.ZCard(ctx, dq(r).Retry()).Val())
				require.Zero(t, r.Client.ZCard(ctx, dq(r).Dead()).Val())
				require.Zero(t, r.Client.ZCard(ctx, dq(r).Sched()).Val())
				again, err := b.client.Enqueue(ctx, "other", nil, &queue.EnqueueOpts{UniqueKey: "one"})
				require.NoError(t, err)
				require.False(t, again.Duplicate)
			})
		})
	}
}

// A cancelled job whose start hook fails is cancelled all the same, without
// OnStop (its run never started): retrying it would only run it again.
func TestCancelledJobWhoseOnStartFailsIsCancelledNotRetried(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r)
		job := &flakyStart{recorder: newRecorder()}
		runner.RegisterIterable(b.reg, "count", job, nil)
		res, err := b.client.Enqueue(ctx, "count", countArgs{N: 5}, &queue.EnqueueOpts{MaxAttempts: 1})
		require.NoError(t, err)
		b.start(t, func(c *runner.Config) { c.Middleware = []runner.Middleware{cancelFirst(t, b.client)} })

		b.ev.wait(t, res.Job.ID, jobtype.EventCancelled)
		require.Equal(t, []string{"start"}, job.hooks())
		require.Equal(t, []jobtype.EventType{jobtype.EventCancelled}, b.ev.types(res.Job.ID))
		require.Zero(t, r.Client.ZCard(ctx, dq(r).Retry()).Val())
		require.Zero(t, r.Client.ZCard(ctx, dq(r).Dead()).Val())
		require.Zero(t, r.Client.LLen(ctx, dq(r).Jobs()).Val())
	})
}
