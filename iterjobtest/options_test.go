package iterjobtest_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/iterjobtest"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/runner"
)

// BackfillArgs name their kind, as typed jobs do.
type BackfillArgs struct {
	Rows int64 `json:"rows"`
}

func (BackfillArgs) Kind() string { return "backfill" }

// backfill visits rows 0..Rows-1, each taking Cost (of the test's clock).
type backfill struct {
	cost time.Duration
	done []int64
	info []iterable.Info
}

func (b *backfill) BuildEnumerator(ctx context.Context, a BackfillArgs, c *int64) (enumerators.Enumerator[int64, int64], error) {
	info, _ := iterable.InfoFromContext(ctx)
	b.info = append(b.info, info)
	return enumerators.Range(0, a.Rows, c), nil
}

func (b *backfill) EachIteration(_ context.Context, _ BackfillArgs, row int64) error {
	time.Sleep(b.cost)
	b.done = append(b.done, row)
	return nil
}

// The job a run sees is the job the client would enqueue: typed arguments
// name the kind, Options set queue and meta, and middleware sees them all.
func TestRunSeesTheJobAsEnqueued(t *testing.T) {
	t.Parallel()
	var seen []string
	mw := func(ctx context.Context, j *jobtype.Job, next func(context.Context) error) error {
		seen = append(seen, j.Kind+"/"+j.Queue+"/"+j.Meta["tenant"])
		return next(ctx)
	}
	job := &backfill{}
	run, err := iterjobtest.IterateWith(t.Context(), job, BackfillArgs{Rows: 2}, nil, iterjobtest.Options{
		Queue: "slow", Meta: map[string]string{"tenant": "acme"}, Middleware: []runner.Middleware{mw},
	})
	require.NoError(t, err)
	require.Equal(t, "ack", run.Action)
	require.Equal(t, "backfill", run.Info.Kind)
	require.Equal(t, "slow", job.info[0].Queue)
	require.Equal(t, []string{"backfill/slow/acme"}, seen)

	run, err = iterjobtest.IterateWith(t.Context(), &backfill{}, BackfillArgs{Rows: 1}, nil, iterjobtest.Options{Kind: "backfill_v2"})
	require.NoError(t, err)
	require.Equal(t, "backfill_v2", run.Info.Kind, "Options.Kind wins over the args' kind")
	run, err = iterjobtest.IterateWith(t.Context(), &flaky{failAt: -1}, 1, nil, iterjobtest.Options{})
	require.NoError(t, err)
	require.Equal(t, "iterjobtest", run.Info.Kind, "untyped args get a placeholder kind")
}

// StartCursor goes through the executor's own path: the first run starts
// there, a resumed run follows its saved cursor, and a cursor of the wrong
// shape kills the job at once, naming the start cursor.
func TestStartCursor(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	job := &backfill{}
	first, err := iterjobtest.IterateWith(ctx, job, BackfillArgs{Rows: 10}, nil, iterjobtest.Options{StartCursor: 6, InterruptAfter: 2})
	require.NoError(t, err)
	require.Equal(t, []int64{6, 7}, job.done)
	require.JSONEq(t, "8", string(first.Cursor))
	rest, err := iterjobtest.IterateWith(ctx, job, BackfillArgs{Rows: 10}, first, iterjobtest.Options{StartCursor: 6})
	require.NoError(t, err)
	require.Equal(t, []int64{6, 7, 8, 9}, job.done, "the resumed run follows its saved cursor, not the start")
	require.Equal(t, int64(4), rest.Total)

	bad := &backfill{}
	run, err := iterjobtest.IterateWith(ctx, bad, BackfillArgs{Rows: 10}, nil, iterjobtest.Options{StartCursor: map[string]int{"page": 3}})
	require.ErrorIs(t, err, cursor.ErrInvalid)
	require.ErrorIs(t, err, iterable.ErrSkipRetry)
	require.ErrorContains(t, err, "start cursor")
	require.Equal(t, "dead", run.Action)
	require.Empty(t, bad.done)

	_, err = iterjobtest.IterateWith(ctx, bad, BackfillArgs{Rows: 10}, nil, iterjobtest.Options{StartCursor: func() {}})
	require.ErrorContains(t, err, "encode StartCursor")
}

// Time is controlled with testing/synctest: in the bubble the clock moves
// only when every goroutine waits, so a job whose items take a second each
// meets its checkpoint interval and MaxRuntime at exact items.
func TestControlledTime(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		job := &backfill{cost: time.Second}
		run, err := iterjobtest.IterateWith(t.Context(), job, BackfillArgs{Rows: 100}, nil, iterjobtest.Options{MaxRuntime: 30*time.Second + time.Millisecond})
		require.NoError(t, err)
		require.Equal(t, "requeue", run.Action, "MaxRuntime interrupts the run")
		require.Equal(t, iterable.Interrupted, run.Stop)
		require.Equal(t, int64(31), run.Items, "the run stops after the item during which MaxRuntime passed")

		// Checkpoints every 5 s, so a crash at item 12 loses 2 items.
		job = &backfill{cost: time.Second}
		crashed, err := iterjobtest.IterateWith(t.Context(), job, BackfillArgs{Rows: 100}, nil,
			iterjobtest.Options{CheckpointInterval: 5*time.Second - time.Millisecond, CrashAfter: 12})
		require.NoError(t, err)
		require.Equal(t, iterjobtest.Crashed, crashed.Stop)
		require.Equal(t, int64(10), crashed.Total)
		require.JSONEq(t, "10", string(crashed.Cursor))

		// The retry of a failure is due after the backoff, on the test's clock.
		start := time.Now()
		failing := &flaky{failAt: 1}
		failed, err := iterjobtest.IterateWith(t.Context(), failing, 3, nil,
			iterjobtest.Options{Backoff: func(attempt int) time.Duration { return time.Duration(attempt) * time.Minute }})
		require.ErrorContains(t, err, "boom")
		require.Equal(t, "retry", failed.Action)
		require.Equal(t, start.Add(time.Minute), failed.RunAt)
		require.Equal(t, 2, failed.Attempt)
	})
}
