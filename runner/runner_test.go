package runner_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-redis keeps a pool reaper per client; clients are closed by
		// t.Cleanup, after goleak's check for the package would run.
		goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
		goleak.IgnoreAnyFunction("github.com/alicebob/miniredis/v2/server.(*Server).servePeer"),
	)
}

// countArgs is the argument of the test jobs.
type countArgs struct {
	N int `json:"n"`
}

// recorder is an iterable job over Range(0, N) that records every call.
type recorder struct {
	mu    sync.Mutex
	calls []string
	done  map[int64]int

	// failAt makes item i fail its first failAt[i] times.
	failAt map[int64]int
	// panicAt makes item i panic its first panicAt[i] times.
	panicAt map[int64]int
	// pauseAt blocks item i (once) until release is closed, after closing
	// paused.
	pauseAt int64
	paused  chan struct{}
	release chan struct{}
}

func newRecorder() *recorder {
	return &recorder{done: map[int64]int{}, failAt: map[int64]int{}, panicAt: map[int64]int{}, pauseAt: -1}
}

func (j *recorder) log(s string) {
	j.mu.Lock()
	j.calls = append(j.calls, s)
	j.mu.Unlock()
}

func (j *recorder) BuildEnumerator(_ context.Context, a countArgs, c *int64) (enumerators.Enumerator[int64, int64], error) {
	at := "nil"
	if c != nil {
		at = fmt.Sprint(*c)
	}
	j.log("build:" + at)
	return enumerators.Range(0, int64(a.N), c), nil
}

func (j *recorder) EachIteration(_ context.Context, _ countArgs, i int64) error {
	j.mu.Lock()
	if j.failAt[i] > 0 {
		j.failAt[i]--
		j.mu.Unlock()
		return fmt.Errorf("item %d failed", i)
	}
	if j.panicAt[i] > 0 {
		j.panicAt[i]--
		j.mu.Unlock()
		panic(fmt.Sprintf("item %d panicked", i))
	}
	pause := i == j.pauseAt
	if pause {
		j.pauseAt = -1
	}
	j.done[i]++
	j.mu.Unlock()
	if pause {
		close(j.paused)
		<-j.release
	}
	return nil
}

func (j *recorder) OnStart(context.Context, countArgs) error  { j.log("start"); return nil }
func (j *recorder) OnResume(context.Context, countArgs) error { j.log("resume"); return nil }
func (j *recorder) OnComplete(context.Context, countArgs) error {
	j.log("complete")
	return nil
}
func (j *recorder) OnStop(_ context.Context, _ countArgs, r iterable.StopReason) error {
	j.log("stop:" + string(r))
	return nil
}

func (j *recorder) hooks() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.calls)
}

// requireEachOnce checks every item 0..n-1 was done exactly once.
func (j *recorder) requireEachOnce(t *testing.T, n int) {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	require.Len(t, j.done, n, "items done")
	for i := range int64(n) {
		require.Equal(t, 1, j.done[i], "item %d done once", i)
	}
}

func TestIterableJobRunsToCompletionWithHooks(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := newRecorder()
		runner.RegisterIterable(b.reg, "count", job, nil)
		run := b.start(t, nil)
		res, err := b.client.Enqueue(t.Context(), "count", countArgs{N: 50}, nil)
		require.NoError(t, err)
		ev := b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		require.NotNil(t, ev.Progress)
		require.Equal(t, int64(50), ev.Progress.ItemsProcessed)
		require.InDelta(t, 1.0, ev.Progress.Fraction, 1e-9)

		job.requireEachOnce(t, 50)
		require.Equal(t, []string{"start", "build:nil", "complete", "stop:completed"}, job.hooks())
		require.Equal(t, []jobtype.EventType{jobtype.EventStarted, jobtype.EventSucceeded}, b.ev.types(res.Job.ID))

		st, err := b.store.Load(t.Context(), res.Job.ID)
		require.NoError(t, err)
		require.Equal(t, cursor.StatusCompleted, st.Status)
		require.JSONEq(t, "50", string(st.Cursor))
		require.Equal(t, int64(50), st.ItemsProcessed)
		require.Equal(t, 1, st.Executions)
		ttl := r.Client.TTL(t.Context(), rdb.NewKeys(r.Namespace).Iter(res.Job.ID)).Val()
		require.Greater(t, ttl, time.Hour, "completed state is kept for inspection")
		require.LessOrEqual(t, ttl, cursor.CompletedTTLDefault)
		require.Zero(t, r.Client.HLen(t.Context(), dq(r).Inflight(run.ProcessID())).Val(), "the finished job is no longer in flight")
		require.Zero(t, r.Client.LLen(t.Context(), dq(r).Jobs()).Val())
	})
}

// interruptCase runs a job, pauses it at item 20, applies interrupt to the
// first runner, and resumes the job on a second runner.
// A run that completed its job but died before the batched ack reached
// Redis leaves the job in flight with its state saved as completed; the job
// is recovered and fetched again. That run acknowledges it without running
// anything again: no OnResume, no BuildEnumerator, no second OnComplete.
func TestCompletedJobWhoseAckWasLostIsNotRunAgain(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r)
		job := newRecorder()
		runner.RegisterIterable(b.reg, "count", job, nil)
		res, err := b.client.Enqueue(ctx, "count", countArgs{N: 50}, nil)
		require.NoError(t, err)

		// The state the completed run left: owned by an earlier lease than
		// the next fetch hands out.
		require.NoError(t, r.Client.IncrBy(ctx, dq(r).Leases(), 10).Err())
		_, err = b.store.Begin(ctx, res.Job.ID, 5)
		require.NoError(t, err)
		done := cursor.State{Cursor: []byte("50"), Started: true, ItemsProcessed: 50, Status: cursor.StatusCompleted,
			FirstStartedAt: time.Now().Add(-time.Minute), LastCheckpointAt: time.Now()}
		require.NoError(t, b.store.Save(ctx, res.Job.ID, 5, done))

		b.start(t, nil)
		ev := b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		require.NotNil(t, ev.Progress)
		require.Equal(t, int64(50), ev.Progress.ItemsProcessed)
		require.Empty(t, job.hooks(), "no hook and no enumerator ran again")
		require.Equal(t, []jobtype.EventType{jobtype.EventSucceeded}, b.ev.types(res.Job.ID))

		st, err := b.store.Load(ctx, res.Job.ID)
		require.NoError(t, err)
		require.Equal(t, cursor.StatusCompleted, st.Status)
		require.JSONEq(t, "50", string(st.Cursor))
		require.Equal(t, 2, st.Executions)
		ttl := r.Client.TTL(ctx, rdb.NewKeys(r.Namespace).Iter(res.Job.ID)).Val()
		require.LessOrEqual(t, ttl, cursor.CompletedTTLDefault, "the state keeps a finished job's TTL")
		require.Zero(t, r.Client.LLen(ctx, dq(r).Jobs()).Val())
	})
}

func interruptCase(t *testing.T, r testutil.Redis, interrupt func(*runner.Runner)) {
	b := setup(t, r)
	job := newRecorder()
	job.pauseAt, job.paused, job.release = 20, make(chan struct{}), make(chan struct{})
	runner.RegisterIterable(b.reg, "count", job, nil)
	first := b.start(t, nil)
	res, err := b.client.Enqueue(t.Context(), "count", countArgs{N: 100}, &queue.EnqueueOpts{MaxAttempts: 1})
	require.NoError(t, err)
	<-job.paused
	interrupt(first)
	close(job.release)
	ev := b.ev.wait(t, res.Job.ID, jobtype.EventInterrupted)
	require.Equal(t, int64(21), ev.Progress.ItemsProcessed)
	require.JSONEq(t, "21", string(ev.Progress.Cursor), "the cursor is the position after the last finished item")

	st, err := b.store.Load(t.Context(), res.Job.ID)
	require.NoError(t, err)
	require.Equal(t, cursor.StatusInterrupted, st.Status)
	require.Equal(t, 1, st.TimesInterrupted)
	require.JSONEq(t, "21", string(st.Cursor))
	stopRunner(t, first)

	b.start(t, nil)
	resumed := b.ev.wait(t, res.Job.ID, jobtype.EventResumed)
	require.NotNil(t, resumed.Progress)
	require.Equal(t, int64(21), resumed.Progress.Done, "the resumed event reports the saved progress")
	require.Equal(t, int64(100), resumed.Progress.Total, "the last checkpoint knew the total")
	require.InDelta(t, 0.21, resumed.Progress.Fraction, 1e-9)
	b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
	job.requireEachOnce(t, 100)
	require.Equal(t, []string{
		"start", "build:nil", "stop:interrupted",
		"resume", "build:21", "complete", "stop:completed",
	}, job.hooks())
	st, err = b.store.Load(t.Context(), res.Job.ID)
	require.NoError(t, err)
	require.Equal(t, 2, st.Executions)
	require.Equal(t, int64(100), st.ItemsProcessed)
	require.Equal(t, cursor.StatusCompleted, st.Status)
	// MaxAttempts is 1: had the interruption counted as an attempt, the
	// job would have died instead of finishing.
	require.Zero(t, r.Client.ZCard(t.Context(), dq(r).Dead()).Val())
	require.Empty(t, r.Client.HGet(t.Context(), dq(r).Stats(), "failed").Val())
}

func TestQuietInterruptsAndResumes(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		interruptCase(t, r, func(run *runner.Runner) { run.Quiet() })
	})
}

func TestStopInterruptsAndResumes(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		interruptCase(t, r, func(run *runner.Runner) { run.Shutdown().Stop() })
	})
}

func TestErrorResumesFromLastGoodCursor(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := newRecorder()
		job.failAt[30] = 2
		runner.RegisterIterable(b.reg, "count", job, nil)
		b.start(t, nil)
		res, err := b.client.Enqueue(t.Context(), "count", countArgs{N: 60}, nil)
		require.NoError(t, err)
		fail := b.ev.wait(t, res.Job.ID, jobtype.EventFailed)
		require.Contains(t, fail.Error, "item 30 failed")
		require.JSONEq(t, "30", string(fail.Progress.Cursor), "checkpointed at the last good item")
		b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		job.requireEachOnce(t, 60)
		require.Equal(t, []string{
			"start", "build:nil", "stop:failed",
			"resume", "build:30", "stop:failed",
			"resume", "build:30", "complete", "stop:completed",
		}, job.hooks())
		require.Equal(t, "2", r.Client.HGet(t.Context(), dq(r).Stats(), "failed").Val())
	})
}

func TestPanicIsRecoveredAndRetried(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := newRecorder()
		job.panicAt[7] = 1
		runner.RegisterIterable(b.reg, "count", job, nil)
		b.start(t, nil)
		res, err := b.client.Enqueue(t.Context(), "count", countArgs{N: 20}, nil)
		require.NoError(t, err)
		fail := b.ev.wait(t, res.Job.ID, jobtype.EventFailed)
		require.Contains(t, fail.Error, "item 7 panicked")
		b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		job.requireEachOnce(t, 20)
		require.Equal(t, []string{"start", "build:nil", "stop:failed", "resume", "build:7", "complete", "stop:completed"}, job.hooks())

		// The worker kept running: another job goes through.
		res2, err := b.client.Enqueue(t.Context(), "count", countArgs{N: 3}, nil)
		require.NoError(t, err)
		b.ev.wait(t, res2.Job.ID, jobtype.EventSucceeded)
	})
}

func TestBadCursorGoesToRetryWithClearErrorAndLosesNothing(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := newRecorder()
		runner.RegisterIterable(b.reg, "count", job, nil)
		res, err := b.client.Enqueue(t.Context(), "count", countArgs{N: 5}, nil)
		require.NoError(t, err)
		// A state left by an older version of the job, whose cursor was an
		// object.
		itKey := rdb.NewKeys(r.Namespace).Iter(res.Job.ID)
		require.NoError(t, r.Client.HSet(t.Context(), itKey, "cursor", `{"page":3}`, "started", "1", "run", "0").Err())

		b.start(t, func(c *runner.Config) { c.Backoff = func(int) time.Duration { return time.Hour } })
		fail := b.ev.wait(t, res.Job.ID, jobtype.EventRetrying)
		require.Contains(t, fail.Error, `stored cursor {"page":3} does not decode into int64`)
		require.Equal(t, []string{res.Job.ID}, r.Client.ZRange(t.Context(), dq(r).Retry(), 0, -1).Val())
		require.Equal(t, `{"page":3}`, r.Client.HGet(t.Context(), itKey, "cursor").Val(), "the stored cursor is kept")
		require.Empty(t, job.hooks(), "no hook ran on a state the job cannot read")
	})
}

// plain is a plain job that counts runs and fails as told.
type plain struct {
	mu    sync.Mutex
	runs  int
	fails int
	err   error
}

func (p *plain) Perform(_ context.Context, a countArgs) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.runs++
	if p.runs <= p.fails {
		return p.err
	}
	return nil
}

func TestPlainJobRetriesThenSucceeds(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := &plain{fails: 2, err: errors.New("flaky")}
		runner.Register(b.reg, "plain", job, nil)
		b.start(t, nil)
		res, err := b.client.Enqueue(t.Context(), "plain", countArgs{N: 1}, nil)
		require.NoError(t, err)
		b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		require.Equal(t, 3, job.runs)
		require.Equal(t, []jobtype.EventType{
			jobtype.EventStarted, jobtype.EventFailed, jobtype.EventRetrying,
			jobtype.EventStarted, jobtype.EventFailed, jobtype.EventRetrying,
			jobtype.EventStarted, jobtype.EventSucceeded,
		}, b.ev.types(res.Job.ID))
	})
}

func TestBadInputLandsWhereDocumented(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		runner.Register(b.reg, "plain", &plain{}, nil)
		b.start(t, func(c *runner.Config) { c.Backoff = func(int) time.Duration { return time.Hour } })
		ctx := t.Context()

		// Arguments that do not decode: dead at once.
		bad, err := b.client.Enqueue(ctx, "plain", "not an object", nil)
		require.NoError(t, err)
		ev := b.ev.wait(t, bad.Job.ID, jobtype.EventDead)
		require.Contains(t, ev.Error, "job arguments do not decode")

		// An unknown kind: retried (a deploy may not have reached this worker).
		unknown, err := b.client.Enqueue(ctx, "nope", nil, nil)
		require.NoError(t, err)
		ev = b.ev.wait(t, unknown.Job.ID, jobtype.EventRetrying)
		require.Contains(t, ev.Error, `unknown job kind "nope"`)

		// The worker keeps running.
		good, err := b.client.Enqueue(ctx, "plain", countArgs{}, nil)
		require.NoError(t, err)
		b.ev.wait(t, good.Job.ID, jobtype.EventSucceeded)
	})
}

// countingStore counts saves.
type countingStore struct {
	cursor.Store
	mu    sync.Mutex
	saves int
}

func (s *countingStore) Save(ctx context.Context, jid string, run int64, st cursor.State) error {
	s.mu.Lock()
	s.saves++
	s.mu.Unlock()
	return s.Store.Save(ctx, jid, run, st)
}

func TestCheckpointsAreTimedNeverPerItem(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	b := setup(t, r)
	store := &countingStore{Store: cursor.NewMemoryStore()}
	job := newRecorder()
	runner.RegisterIterable(b.reg, "count", job, nil)
	b.start(t, func(c *runner.Config) { c.Store = store })
	res, err := b.client.Enqueue(t.Context(), "count", countArgs{N: 100_000}, nil)
	require.NoError(t, err)
	b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
	job.requireEachOnce(t, 100_000)
	// With an hour's checkpoint interval: the save after OnStart, the save
	// of the final cursor before OnComplete, and the completed status.
	require.Equal(t, 3, store.saves)
}

func TestCheckpointIntervalSavesProgress(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := newRecorder()
		job.pauseAt, job.paused, job.release = 10, make(chan struct{}), make(chan struct{})
		runner.RegisterIterable(b.reg, "count", job, nil)
		b.start(t, func(c *runner.Config) { c.CheckpointInterval = 20 * time.Millisecond })
		res, err := b.client.Enqueue(t.Context(), "count", countArgs{N: 12}, nil)
		require.NoError(t, err)
		<-job.paused
		time.Sleep(300 * time.Millisecond) // let the 20 ms checkpoint interval pass during item 10, even with a late timer on a loaded machine
		close(job.release)
		b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		// On a loaded machine the interval may also pass during earlier
		// items; the one that passed while item 10 ran is saved right after
		// it.
		var cursors []string
		b.ev.mu.Lock()
		for _, ev := range b.ev.all {
			if ev.JobID == res.Job.ID && ev.Type == jobtype.EventCheckpointed {
				cursors = append(cursors, string(ev.Progress.Cursor))
			}
		}
		b.ev.mu.Unlock()
		require.Contains(t, cursors, "11", "the first checkpoint after the interval saves the cursor after item 10")
	})
}

func TestStaleRunCannotOverwriteNewerRun(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := newRecorder()
		job.pauseAt, job.paused, job.release = 5, make(chan struct{}), make(chan struct{})
		runner.RegisterIterable(b.reg, "count", job, nil)
		// A beats once, at start, then looks dead to B, which reaps it
		// while A's run is stuck in item 5.
		b.start(t, func(c *runner.Config) {
			c.HeartbeatInterval, c.DeadAfter, c.CheckpointInterval = time.Hour, 2*time.Hour, 10*time.Millisecond
		})
		res, err := b.client.Enqueue(t.Context(), "count", countArgs{N: 20}, nil)
		require.NoError(t, err)
		<-job.paused
		b.start(t, func(c *runner.Config) {
			c.HeartbeatInterval, c.DeadAfter = 20*time.Millisecond, 200*time.Millisecond
		})
		b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		done, err := b.store.Load(t.Context(), res.Job.ID)
		require.NoError(t, err)
		require.Equal(t, cursor.StatusCompleted, done.Status)

		// A wakes up: its checkpoint is refused and it abandons the job.
		close(job.release)
		testutil.Eventually(t, 10*time.Second, func() bool {
			h := job.hooks()
			return h[len(h)-1] == "stop:interrupted" && len(h) > 4
		}, "the stale run stops; hooks: %v", job.hooks())
		after, err := b.store.Load(t.Context(), res.Job.ID)
		require.NoError(t, err)
		require.Equal(t, cursor.StatusCompleted, after.Status, "the stale run did not overwrite the newer run's state")
		require.JSONEq(t, "20", string(after.Cursor))
		require.Equal(t, done.ItemsProcessed, after.ItemsProcessed)
		require.Equal(t, []string{"start", "build:nil", "resume", "build:nil", "complete", "stop:completed", "stop:interrupted"}, job.hooks())
	})
}

// flakyStart fails OnStart once.
type flakyStart struct {
	*recorder
	failed atomic.Bool
}

func (j *flakyStart) OnStart(ctx context.Context, a countArgs) error {
	j.log("start")
	if j.failed.CompareAndSwap(false, true) {
		return errors.New("cannot start yet")
	}
	return nil
}

func TestOnStartRunsAgainUntilItSucceeds(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := &flakyStart{recorder: newRecorder()}
		runner.RegisterIterable(b.reg, "count", job, nil)
		b.start(t, nil)
		res, err := b.client.Enqueue(t.Context(), "count", countArgs{N: 3}, nil)
		require.NoError(t, err)
		ev := b.ev.wait(t, res.Job.ID, jobtype.EventFailed)
		require.Contains(t, ev.Error, "OnStart: cannot start yet")
		b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		job.requireEachOnce(t, 3)
		require.Equal(t, []string{"start", "start", "build:nil", "complete", "stop:completed"}, job.hooks(),
			"a failed OnStart is retried (no OnStop: the run never started); OnResume is for runs after a successful start")
	})
}
