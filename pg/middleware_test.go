package pg_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
	"github.com/iterjob/iterjob/shutdown"
)

// The middleware records an awaited job's outcome only when the job is done
// for good, and the last outcome of a group wakes the workflow.
func TestMiddlewareRecordsOnlyFinalOutcomes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	var after int
	wf, err := pg.NewWorkflow(pg.WorkflowConfig[orderArgs, orderAttrs]{
		Name: "waiter", DB: b.pool, Schema: b.schema, Logger: quiet,
		Steps: []pg.Step[orderArgs, orderAttrs]{
			{Name: "wait", Run: func(ctx context.Context, _ pgx.Tx, s *pg.StepContext[orderArgs, orderAttrs]) error {
				for range 5 {
					// In a queue no runner works: the test plays the runs.
					if _, err := s.Await(ctx, "held", nil, &queue.EnqueueOpts{Queue: "held", MaxAttempts: 2}); err != nil {
						return err
					}
				}
				return nil
			}},
			{Name: "after", Run: func(context.Context, pgx.Tx, *pg.StepContext[orderArgs, orderAttrs]) error {
				after++
				return nil
			}},
		},
	})
	require.NoError(t, err)
	reg := runner.NewRegistry()
	wf.Register(reg, nil)
	id, err := wf.Start(ctx, "w", orderArgs{})
	require.NoError(t, err)
	b.work(t, reg)
	var st *pg.WorkflowState[orderArgs, orderAttrs]
	testutil.Eventually(t, 10*time.Second, func() bool {
		st, err = wf.Load(ctx, id)
		require.NoError(t, err)
		return st.Status == pg.StatusAwaiting
	}, "the workflow to await its jobs")
	require.Len(t, st.Jobs, 5)

	store := cursor.NewMemoryStore()
	mw, err := pg.NewMiddleware(pg.MiddlewareConfig{DB: b.pool, Schema: b.schema, Logger: quiet, Store: store})
	require.NoError(t, err)
	runJob := func(ctx context.Context, n, attempt int, result error) {
		t.Helper()
		job := &jobtype.Job{ID: st.Jobs[n].JobID, Kind: "held", Queue: "held", Attempt: attempt, MaxAttempts: 2,
			Meta: map[string]string{"iterjob.await": id}}
		err := mw(ctx, job, func(context.Context) error { return result })
		require.Equal(t, result, err, "the middleware passes the run's error on")
	}
	state := func(n int) pg.JobState {
		t.Helper()
		s, err := wf.Load(ctx, id)
		require.NoError(t, err)
		for _, j := range s.Jobs {
			if j.JobID == st.Jobs[n].JobID {
				return j.State
			}
		}
		t.Fatalf("job %d not found", n)
		return ""
	}
	var lease int64
	iterState := func(n int, status cursor.Status) {
		lease++
		_, err := store.Begin(ctx, st.Jobs[n].JobID, lease)
		require.NoError(t, err)
		require.NoError(t, store.Save(ctx, st.Jobs[n].JobID, lease, cursor.State{Status: status}))
	}
	cancelled := func(cause error) context.Context {
		c, cancel := context.WithCancelCause(ctx)
		cancel(cause)
		return c
	}

	// 0: a plain job that succeeds.
	runJob(ctx, 0, 1, nil)
	require.Equal(t, pg.JobSucceeded, state(0))
	// 1: an iterable job interrupted, then completed.
	iterState(1, cursor.StatusInterrupted)
	runJob(ctx, 1, 1, nil)
	require.Equal(t, pg.JobPending, state(1), "an interruption is not a success")
	iterState(1, cursor.StatusCompleted)
	runJob(ctx, 1, 1, nil)
	require.Equal(t, pg.JobSucceeded, state(1))
	// 2: fails with a retry left, then on its last attempt.
	runJob(ctx, 2, 1, errors.New("flaky"))
	require.Equal(t, pg.JobPending, state(2), "a failure with a retry left is not final")
	runJob(ctx, 2, 2, errors.New("broken"))
	require.Equal(t, pg.JobFailed, state(2))
	// 3: snoozes, then succeeds.
	runJob(ctx, 3, 1, iterable.Snooze(time.Minute))
	require.Equal(t, pg.JobPending, state(3))
	runJob(ctx, 3, 1, nil)
	require.Equal(t, pg.JobSucceeded, state(3))
	// 4: hard-stopped (it runs again), then cancelled while running.
	runJob(cancelled(shutdown.ErrHardStop), 4, 1, nil)
	require.Equal(t, pg.JobPending, state(4), "a hard stop is not final")
	s, err := wf.Load(ctx, id)
	require.NoError(t, err)
	require.Equal(t, pg.StatusAwaiting, s.Status, "the workflow waits while a job is pending")
	runJob(cancelled(runner.ErrCancelled), 4, 1, nil)
	require.Equal(t, pg.JobFailed, state(4))

	// The last outcome woke the workflow, which failed naming jobs 2 and 4.
	s = waitDone(t, wf, id)
	require.Equal(t, pg.StatusFailed, s.Status)
	require.Contains(t, s.Error, st.Jobs[2].JobID+" (held): broken")
	require.Contains(t, s.Error, st.Jobs[4].JobID+" (held): cancelled")
	require.NotContains(t, s.Error, st.Jobs[0].JobID)
	require.Zero(t, after)

	// A job run again after its outcome was recorded changes nothing.
	runJob(ctx, 2, 2, nil)
	require.Equal(t, pg.JobFailed, state(2))
}

func TestWorkflowStepPanicIsAFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	wf, err := pg.NewWorkflow(pg.WorkflowConfig[orderArgs, orderAttrs]{
		Name: "panicky", DB: b.pool, Schema: b.schema, Logger: quiet, MaxAttempts: 1,
		Steps: []pg.Step[orderArgs, orderAttrs]{{Name: "boom", Run: func(context.Context, pgx.Tx, *pg.StepContext[orderArgs, orderAttrs]) error {
			panic("boom")
		}}},
	})
	require.NoError(t, err)
	reg := runner.NewRegistry()
	wf.Register(reg, nil)
	id, err := wf.Start(ctx, "p", orderArgs{})
	require.NoError(t, err)
	b.work(t, reg)
	st := waitDone(t, wf, id)
	require.Equal(t, pg.StatusFailed, st.Status)
	require.Contains(t, st.Error, "panicked: boom")
}

func TestNewWorkflowChecksItsConfig(t *testing.T) {
	t.Parallel()
	run := func(context.Context, pgx.Tx, *pg.StepContext[orderArgs, orderAttrs]) error { return nil }
	_, err := pg.NewWorkflow(pg.WorkflowConfig[orderArgs, orderAttrs]{Name: "bad name"})
	require.ErrorContains(t, err, "not a valid job kind")
	require.ErrorContains(t, err, "DB")
	require.ErrorContains(t, err, "at least one step")
	_, err = pg.NewWorkflow(pg.WorkflowConfig[orderArgs, orderAttrs]{Name: "ok", DB: testutil.Postgres(t),
		Steps: []pg.Step[orderArgs, orderAttrs]{{Name: "a", Run: run}, {Name: "a", Run: run}, {Name: "b"}}})
	require.ErrorContains(t, err, `two steps named "a"`)
	require.ErrorContains(t, err, `step "b" has no Run`)
	_, err = pg.NewMiddleware(pg.MiddlewareConfig{})
	require.ErrorContains(t, err, "Store")
}
