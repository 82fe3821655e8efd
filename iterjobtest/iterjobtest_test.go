package iterjobtest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/iterjobtest"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/runner"
)

type flaky struct {
	failAt int64
	panics bool
	hooks  []string
	done   []int64
}

func (f *flaky) BuildEnumerator(_ context.Context, n int64, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(0, n, c), nil
}

func (f *flaky) EachIteration(_ context.Context, _ int64, i int64) error {
	if i == f.failAt {
		f.failAt = -1
		if f.panics {
			panic("boom")
		}
		return errors.New("boom")
	}
	f.done = append(f.done, i)
	return nil
}

func (f *flaky) OnStart(context.Context, int64) error { f.hooks = append(f.hooks, "start"); return nil }
func (f *flaky) OnResume(context.Context, int64) error {
	f.hooks = append(f.hooks, "resume")
	return nil
}
func (f *flaky) OnComplete(context.Context, int64) error {
	f.hooks = append(f.hooks, "complete")
	return nil
}
func (f *flaky) OnStop(_ context.Context, _ int64, r iterable.StopReason) error {
	f.hooks = append(f.hooks, "stop:"+string(r))
	return nil
}

func TestFailureResumesAtTheFailedItem(t *testing.T) {
	t.Parallel()
	for _, panics := range []bool{false, true} {
		job := &flaky{failAt: 3, panics: panics}
		first, err := iterjobtest.Iterate(t.Context(), job, 6, nil, 0)
		require.ErrorContains(t, err, "boom")
		require.Equal(t, iterable.Failed, first.Stop)
		require.JSONEq(t, "3", string(first.Cursor), "the cursor of the last good item")
		rest, err := iterjobtest.Iterate(t.Context(), job, 6, first, 0)
		require.NoError(t, err)
		require.Equal(t, iterable.Completed, rest.Stop)
		require.Equal(t, int64(6), rest.Total)
		require.Equal(t, 2, rest.Runs)
		require.Equal(t, []int64{0, 1, 2, 3, 4, 5}, job.done)
		require.Equal(t, []string{"start", "stop:failed", "resume", "complete", "stop:completed"}, job.hooks)
	}
}

func TestBadCursorIsReported(t *testing.T) {
	t.Parallel()
	_, err := iterjobtest.Iterate(t.Context(), &flaky{failAt: -1}, 6, &iterjobtest.Run{Cursor: []byte(`"three"`)}, 0)
	require.ErrorIs(t, err, cursor.ErrInvalid)
	_, err = iterjobtest.Iterate(t.Context(), &flaky{failAt: -1}, 6, &iterjobtest.Run{Cursor: []byte(`9`)}, 0)
	require.ErrorIs(t, err, enumerators.ErrInvalidCursor)
}

// A crash between checkpoints loses the items since the last one: the next
// run resumes there and does them again, and no hook ran after the crash.
func TestCrashResumesFromTheLastCheckpoint(t *testing.T) {
	t.Parallel()
	job := &flaky{failAt: -1}
	first, err := iterjobtest.IterateWith(t.Context(), job, 10, nil, iterjobtest.Options{CheckpointEvery: 4, CrashAfter: 6})
	require.NoError(t, err)
	require.Equal(t, iterjobtest.Crashed, first.Stop)
	require.Equal(t, int64(6), first.Items)
	require.JSONEq(t, "4", string(first.Cursor), "the last checkpoint")
	require.Equal(t, []string{"start"}, job.hooks, "no OnStop after a crash")

	rest, err := iterjobtest.Iterate(t.Context(), job, 10, first, 0)
	require.NoError(t, err)
	require.Equal(t, iterable.Completed, rest.Stop)
	require.Equal(t, []int64{0, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9}, job.done, "items 4 and 5 ran again")
	require.Equal(t, int64(10), rest.Total)
	require.Equal(t, 2, rest.Info.Executions)
}

// An interruption re-enqueues the job; the next run resumes after the last
// item and counts the interruption.
func TestInterruptAfter(t *testing.T) {
	t.Parallel()
	job := &flaky{failAt: -1}
	first, err := iterjobtest.Iterate(t.Context(), job, 5, nil, 2)
	require.NoError(t, err)
	require.Equal(t, "requeue", first.Action)
	require.Equal(t, iterable.Interrupted, first.Stop)
	rest, err := iterjobtest.Iterate(t.Context(), job, 5, first, 0)
	require.NoError(t, err)
	require.Equal(t, 1, rest.Info.TimesInterrupted)
	require.Equal(t, int64(2), rest.Info.ItemsProcessed)
	require.Equal(t, []int64{0, 1, 2, 3, 4}, job.done)
}

// A job that keeps failing dies after MaxAttempts, with its attempts counted
// as the runner counts them.
func TestRetriesUntilDead(t *testing.T) {
	t.Parallel()
	var prev *iterjobtest.Run
	var actions []string
	var attempts []int
	for range 3 {
		job := &flaky{failAt: 0}
		run, err := iterjobtest.IterateWith(t.Context(), job, 3, prev, iterjobtest.Options{MaxAttempts: 3})
		require.ErrorContains(t, err, "boom")
		actions, attempts = append(actions, run.Action), append(attempts, run.Info.Attempt)
		prev = run
	}
	require.Equal(t, []string{"retry", "retry", "dead"}, actions)
	require.Equal(t, []int{1, 2, 3}, attempts)
}

type sendEmail struct{ sent []string }

func (s *sendEmail) Perform(ctx context.Context, to string) error {
	if to == "" {
		return iterable.SkipRetry(errors.New("no address"))
	}
	s.sent = append(s.sent, to)
	return nil
}

// A plain job runs through the runner's middleware.
func TestPerformRunsThroughMiddleware(t *testing.T) {
	t.Parallel()
	job := &sendEmail{}
	var seen []string
	mw := func(ctx context.Context, j *jobtype.Job, next func(context.Context) error) error {
		seen = append(seen, "before")
		err := next(ctx)
		seen = append(seen, "after")
		return err
	}
	run, err := iterjobtest.Perform(t.Context(), job, "ada@example.com", nil, iterjobtest.Options{Middleware: []runner.Middleware{mw}})
	require.NoError(t, err)
	require.Equal(t, "ack", run.Action)
	require.Equal(t, []string{"ada@example.com"}, job.sent)
	require.Equal(t, []string{"before", "after"}, seen)

	run, err = iterjobtest.Perform(t.Context(), job, "", nil, iterjobtest.Options{})
	require.ErrorIs(t, err, iterable.ErrSkipRetry)
	require.Equal(t, "dead", run.Action)
}
