package runner_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// slow is an iterable job over Range(0, N) whose items take itemTime and
// whose enumerator takes buildTime to build.
type slow struct {
	itemTime, buildTime time.Duration
	mu                  sync.Mutex
	done                map[int64]int
	perRun              []int // items done per run
	stops               []iterable.StopReason
	completes           int
	started             chan struct{}
	once                sync.Once
}

func newSlow(item, build time.Duration) *slow {
	return &slow{itemTime: item, buildTime: build, done: map[int64]int{}, started: make(chan struct{})}
}

func (j *slow) BuildEnumerator(_ context.Context, a countArgs, c *int64) (enumerators.Enumerator[int64, int64], error) {
	time.Sleep(j.buildTime)
	j.mu.Lock()
	j.perRun = append(j.perRun, 0)
	j.mu.Unlock()
	return enumerators.Range(0, int64(a.N), c), nil
}

func (j *slow) EachIteration(_ context.Context, _ countArgs, i int64) error {
	j.once.Do(func() { close(j.started) })
	time.Sleep(j.itemTime)
	j.mu.Lock()
	j.done[i]++
	j.perRun[len(j.perRun)-1]++
	j.mu.Unlock()
	return nil
}

func (j *slow) OnStop(_ context.Context, _ countArgs, r iterable.StopReason) error {
	j.mu.Lock()
	j.stops = append(j.stops, r)
	j.mu.Unlock()
	return nil
}

func (j *slow) OnComplete(context.Context, countArgs) error {
	j.mu.Lock()
	j.completes++
	j.mu.Unlock()
	return nil
}

func TestMaxRuntimeReenqueuesAndAlwaysProgresses(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		// Building the enumerator alone takes longer than the maximum
		// runtime: every run must still finish at least one item.
		job := newSlow(2*time.Millisecond, 30*time.Millisecond)
		runner.RegisterIterable(b.reg, "slow", job, &runner.KindOpts{MaxRuntime: 20 * time.Millisecond, MaxAttempts: 1})
		b.start(t, nil)
		res, err := b.client.Enqueue(t.Context(), "slow", countArgs{N: 40}, nil)
		require.NoError(t, err)
		ev := b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		require.GreaterOrEqual(t, ev.Progress.TimesInterrupted, 2, "the job was cut into several runs")
		job.mu.Lock()
		defer job.mu.Unlock()
		require.Len(t, job.done, 40)
		for i, n := range job.done {
			require.Equal(t, 1, n, "item %d once", i)
		}
		for run, n := range job.perRun[:len(job.perRun)-1] {
			require.GreaterOrEqual(t, n, 1, "run %d finished at least one item", run)
		}
		// The last run may find nothing left: the one before it can stop
		// right after the last item, before the enumeration says it is done.
		require.Equal(t, 1, job.completes)
		require.Equal(t, iterable.Completed, job.stops[len(job.stops)-1])
	})
}

func TestCancelRunningIterableJob(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		const item = 10 * time.Millisecond
		job := newSlow(item, 0)
		runner.RegisterIterable(b.reg, "slow", job, &runner.KindOpts{})
		// The default cancel check interval: one read of the flags a second.
		b.start(t, func(c *runner.Config) { c.CancelCheckInterval = 0 })
		res, err := b.client.Enqueue(t.Context(), "slow", countArgs{N: 100_000}, &queue.EnqueueOpts{UniqueKey: "only-one"})
		require.NoError(t, err)
		<-job.started
		t0 := time.Now()
		st, err := b.client.Cancel(t.Context(), res.Job.ID)
		require.NoError(t, err)
		require.Equal(t, jobtype.StateRunning, st)
		b.ev.wait(t, res.Job.ID, jobtype.EventCancelled)
		latency := time.Since(t0)
		t.Logf("cancel latency: %s (target ≤ 1s + one %s item)", latency, item)
		require.Less(t, latency, runner.CancelCheckIntervalDefault+item+2*time.Second, "the runner reads cancel flags about once a second")

		job.mu.Lock()
		require.Equal(t, []iterable.StopReason{iterable.Cancelled}, job.stops)
		require.Zero(t, job.completes, "OnComplete does not fire for a cancelled job")
		job.mu.Unlock()
		st2, err := b.store.Load(t.Context(), res.Job.ID)
		require.NoError(t, err)
		require.Equal(t, cursor.StatusCancelled, st2.Status)
		// Not re-enqueued, and its uniqueness key is free again.
		infos, err := b.client.Queues(t.Context())
		require.NoError(t, err)
		require.Zero(t, infos[0].Size)
		again, err := b.client.Enqueue(t.Context(), "slow", countArgs{N: 1}, &queue.EnqueueOpts{UniqueKey: "only-one"})
		require.NoError(t, err)
		require.False(t, again.Duplicate)
		b.ev.wait(t, again.Job.ID, jobtype.EventSucceeded)
	})
}

// blocking is a plain job that waits for its context to end.
type blocking struct {
	started chan struct{}
	cause   chan error
}

func (j *blocking) Perform(ctx context.Context, _ countArgs) error {
	close(j.started)
	<-ctx.Done()
	j.cause <- context.Cause(ctx)
	return ctx.Err()
}

func TestCancelRunningPlainJobCancelsItsContext(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := &blocking{started: make(chan struct{}), cause: make(chan error, 1)}
		runner.Register(b.reg, "block", job, nil)
		b.start(t, nil)
		res, err := b.client.Enqueue(t.Context(), "block", countArgs{}, nil)
		require.NoError(t, err)
		<-job.started
		_, err = b.client.Cancel(t.Context(), res.Job.ID)
		require.NoError(t, err)
		require.ErrorIs(t, <-job.cause, runner.ErrCancelled)
		b.ev.wait(t, res.Job.ID, jobtype.EventCancelled)
		_, err = b.client.Cancel(t.Context(), res.Job.ID)
		require.ErrorIs(t, err, queue.ErrNotFound, "a cancelled job is gone")
	})
}

// steer is a plain job that returns what it is told to, per attempt.
type steer struct {
	mu    sync.Mutex
	errs  []error
	calls []iterable.Info
}

func (j *steer) Perform(ctx context.Context, _ countArgs) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	info, _ := iterable.InfoFromContext(ctx)
	j.calls = append(j.calls, info)
	if len(j.errs) == 0 {
		return nil
	}
	err := j.errs[0]
	j.errs = j.errs[1:]
	return err
}

func TestSnoozeIsNotAnAttempt(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := &steer{errs: []error{iterable.Snooze(50 * time.Millisecond), iterable.Snooze(10 * time.Millisecond)}}
		runner.Register(b.reg, "steer", job, &runner.KindOpts{MaxAttempts: 1})
		b.start(t, nil)
		res, err := b.client.Enqueue(t.Context(), "steer", countArgs{}, nil)
		require.NoError(t, err)
		ev := b.ev.wait(t, res.Job.ID, jobtype.EventScheduled)
		require.Equal(t, 50*time.Millisecond, ev.RunAt.Sub(ev.At), "rescheduled for the snooze's duration")
		b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		job.mu.Lock()
		defer job.mu.Unlock()
		require.Len(t, job.calls, 3)
		for _, c := range job.calls {
			require.Equal(t, 1, c.Attempt, "snoozing does not consume an attempt (MaxAttempts is 1)")
		}
	})
}

func TestMaxAttemptsPerKindPerJobAndSkipRetry(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		boom := errors.New("boom")
		perKind := &steer{errs: []error{boom, boom, boom, boom}}
		perJob := &steer{errs: []error{boom, boom, boom, boom}}
		skip := &steer{errs: []error{iterable.SkipRetry(boom)}}
		runner.Register(b.reg, "kind2", perKind, &runner.KindOpts{MaxAttempts: 2})
		runner.Register(b.reg, "job3", perJob, &runner.KindOpts{MaxAttempts: 2})
		runner.Register(b.reg, "skip", skip, nil)
		b.start(t, nil)
		ctx := t.Context()
		k, err := b.client.Enqueue(ctx, "kind2", countArgs{}, nil)
		require.NoError(t, err)
		j, err := b.client.Enqueue(ctx, "job3", countArgs{}, &queue.EnqueueOpts{MaxAttempts: 3})
		require.NoError(t, err)
		s, err := b.client.Enqueue(ctx, "skip", countArgs{}, nil)
		require.NoError(t, err)
		b.ev.wait(t, k.Job.ID, jobtype.EventDead)
		b.ev.wait(t, j.Job.ID, jobtype.EventDead)
		ev := b.ev.wait(t, s.Job.ID, jobtype.EventDead)
		require.Contains(t, ev.Error, "boom")
		for _, j := range []*steer{perKind, perJob, skip} {
			j.mu.Lock()
			defer j.mu.Unlock()
		}
		require.Len(t, perKind.calls, 2, "the kind's cap")
		require.Len(t, perJob.calls, 3, "the job's own cap wins over the kind's")
		require.Len(t, skip.calls, 1, "SkipRetry goes straight to the dead set")
		require.Equal(t, []int{1, 2, 3}, []int{perJob.calls[0].Attempt, perJob.calls[1].Attempt, perJob.calls[2].Attempt})
	})
}

func TestServerMiddlewareWrapsEveryRun(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := &steer{errs: []error{errors.New("first attempt fails")}}
		runner.Register(b.reg, "steer", job, nil)
		runner.Register(b.reg, "forbidden", &steer{}, nil)
		var mu sync.Mutex
		var seen []string
		mw := func(ctx context.Context, j *jobtype.Job, next func(context.Context) error) error {
			if j.Kind == "forbidden" {
				return iterable.SkipRetry(errors.New("not allowed here"))
			}
			err := next(ctx)
			mu.Lock()
			seen = append(seen, j.Meta["tenant"]+":"+errString(err))
			mu.Unlock()
			return err
		}
		b.start(t, func(c *runner.Config) { c.Middleware = []runner.Middleware{mw} })
		res, err := b.client.Enqueue(t.Context(), "steer", countArgs{}, &queue.EnqueueOpts{Meta: map[string]string{"tenant": "acme"}})
		require.NoError(t, err)
		b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		mu.Lock()
		require.Equal(t, []string{"acme:first attempt fails", "acme:<nil>"}, seen, "middleware sees each run and its error")
		mu.Unlock()
		f, err := b.client.Enqueue(t.Context(), "forbidden", countArgs{}, nil)
		require.NoError(t, err)
		ev := b.ev.wait(t, f.Job.ID, jobtype.EventDead)
		require.Contains(t, ev.Error, "not allowed here", "middleware can stop a run")
	})
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestUniquenessAndClientMiddlewareAcrossInterruptions(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		var enqueues atomic.Int32
		client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet, Middleware: []queue.Middleware{
			func(ctx context.Context, j *jobtype.Job, next func(context.Context, *jobtype.Job) error) error {
				enqueues.Add(1)
				return next(ctx, j)
			},
		}})
		require.NoError(t, err)
		b := setup(t, r)
		b.client = client
		job := newRecorder()
		job.pauseAt, job.paused, job.release = 5, make(chan struct{}), make(chan struct{})
		runner.RegisterIterable(b.reg, "count", job, nil)
		first := b.start(t, nil)
		opts := &queue.EnqueueOpts{UniqueKey: "count-once"}
		res, err := client.Enqueue(t.Context(), "count", countArgs{N: 10}, opts)
		require.NoError(t, err)
		<-job.paused
		first.Quiet()
		close(job.release)
		b.ev.wait(t, res.Job.ID, jobtype.EventInterrupted)
		dup, err := client.Enqueue(t.Context(), "count", countArgs{N: 10}, opts)
		require.NoError(t, err)
		require.True(t, dup.Duplicate, "the uniqueness key is held across the interruption")
		require.Equal(t, res.Job.ID, dup.Job.ID)
		stopRunner(t, first)
		b.start(t, nil)
		b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		require.Equal(t, int32(2), enqueues.Load(), "the interruption re-enqueue ran no client middleware")
		again, err := client.Enqueue(t.Context(), "count", countArgs{N: 1}, opts)
		require.NoError(t, err)
		require.False(t, again.Duplicate, "released at success")
	})
}

func TestScheduledJobRunsWhenDue(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := &steer{}
		runner.Register(b.reg, "steer", job, nil)
		b.start(t, func(c *runner.Config) { c.PollInterval = 50 * time.Millisecond })
		due := time.Now().Add(200 * time.Millisecond)
		res, err := b.client.Enqueue(t.Context(), "steer", countArgs{}, &queue.EnqueueOpts{At: due})
		require.NoError(t, err)
		require.True(t, res.Scheduled)
		ev := b.ev.wait(t, res.Job.ID, jobtype.EventStarted)
		require.False(t, ev.At.Before(due), "not run before it is due")
		require.Less(t, ev.At.Sub(due), 2*time.Second, "run soon after it is due")
	})
}

func TestProcessesShowIterationProgress(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := newSlow(5*time.Millisecond, 0)
		runner.RegisterIterable(b.reg, "slow", job, nil)
		run := b.start(t, func(c *runner.Config) { c.CheckpointInterval = 30 * time.Millisecond })
		res, err := b.client.Enqueue(t.Context(), "slow", countArgs{N: 100_000}, nil)
		require.NoError(t, err)
		var busy jobtype.BusyJob
		testutil.Eventually(t, 10*time.Second, func() bool {
			procs, err := b.client.Processes(t.Context())
			require.NoError(t, err)
			for _, p := range procs {
				if p.ID == run.ProcessID() && len(p.Busy) == 1 && p.Busy[0].Progress != nil && p.Busy[0].Progress.ItemsProcessed > 0 {
					busy = p.Busy[0]
					require.Equal(t, float64(4), p.Extra["concurrency"])
					return true
				}
			}
			return false
		}, "the runner's heartbeat shows its job's progress")
		require.Equal(t, res.Job.ID, busy.ID)
		require.True(t, busy.Iterable)
		require.Equal(t, int64(100_000), busy.Progress.Total)
		require.NotEmpty(t, busy.Progress.Cursor)
		_, err = b.client.Cancel(t.Context(), res.Job.ID)
		require.NoError(t, err)
	})
}

// gate is a plain job that blocks until released when its argument says so.
type gate struct {
	started chan struct{}
	release chan struct{}
	done    atomic.Int32
}

func (g *gate) Perform(_ context.Context, a countArgs) error {
	if a.N == 1 {
		close(g.started)
		<-g.release
	}
	g.done.Add(1)
	return nil
}

func TestFetchedAheadJobsGoBackWhenWorkersAreBusy(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := &gate{started: make(chan struct{}), release: make(chan struct{})}
		runner.Register(b.reg, "gate", job, nil)
		busy := b.start(t, func(c *runner.Config) {
			c.Concurrency, c.FetchAhead, c.FetchAheadHold = 1, 5, 50*time.Millisecond
		})
		long, err := b.client.Enqueue(t.Context(), "gate", countArgs{N: 1}, nil)
		require.NoError(t, err)
		<-job.started
		var short []string
		for range 5 {
			res, err := b.client.Enqueue(t.Context(), "gate", countArgs{N: 0}, nil)
			require.NoError(t, err)
			short = append(short, res.Job.ID)
		}
		// The busy runner may fetch the short jobs ahead; held past the
		// hold time they go back, and another runner runs them while the
		// long job still blocks the first.
		b.start(t, nil)
		for _, id := range short {
			b.ev.wait(t, id, jobtype.EventSucceeded)
		}
		require.Equal(t, int32(5), job.done.Load(), "the long job is still running")
		close(job.release)
		b.ev.wait(t, long.Job.ID, jobtype.EventSucceeded)
		_ = busy
	})
}

// throttled is an iterable job whose enumeration is throttled while
// pressure is up.
type throttled struct {
	pressure atomic.Bool
	done     sync.Map
	count    atomic.Int32
}

func (j *throttled) BuildEnumerator(_ context.Context, a countArgs, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Throttle(enumerators.Range(0, int64(a.N), c), enumerators.ThrottleConfig{
		Pressure:   func(context.Context) (bool, error) { return j.pressure.Load(), nil },
		Wait:       time.Hour, // the test moves it back with RunNow
		CheckEvery: -1,
	}), nil
}

func (j *throttled) EachIteration(_ context.Context, _ countArgs, i int64) error {
	if _, dup := j.done.LoadOrStore(i, true); dup {
		return errors.New("item repeated")
	}
	if j.count.Add(1) == 10 {
		j.pressure.Store(true) // the database falls behind after 10 items
	}
	return nil
}

func TestThrottledJobIsRescheduledAndResumes(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := &throttled{}
		runner.RegisterIterable(b.reg, "throttled", job, &runner.KindOpts{MaxAttempts: 1})
		b.start(t, nil)
		res, err := b.client.Enqueue(t.Context(), "throttled", countArgs{N: 30}, nil)
		require.NoError(t, err)
		ev := b.ev.wait(t, res.Job.ID, jobtype.EventScheduled)
		require.NotNil(t, ev.RunAt)
		require.Equal(t, time.Hour, ev.RunAt.Sub(ev.At), "rescheduled after the throttle's wait")
		require.JSONEq(t, "10", string(ev.Progress.Cursor), "checkpointed after the last item done")
		st, err := b.store.Load(t.Context(), res.Job.ID)
		require.NoError(t, err)
		require.Equal(t, cursor.StatusInterrupted, st.Status)
		require.Equal(t, 1, st.TimesInterrupted)
		size, err := b.client.SetSize(t.Context(), queue.SetScheduled)
		require.NoError(t, err)
		require.Equal(t, int64(1), size, "waiting in the scheduled set, not the retry set")

		job.pressure.Store(false)
		require.NoError(t, b.client.RunNow(t.Context(), queue.SetScheduled, res.Job.ID))
		done := b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		require.Equal(t, int64(30), done.Progress.ItemsProcessed)
		require.Equal(t, int32(30), job.count.Load())
	})
}

// An idle runner is woken by every enqueue: with the polling safety net set
// to an hour, a notification lost between the two fetch loops would leave a
// job waiting and fail the test.
func TestIdleRunnerIsWokenByEveryEnqueue(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := &steer{}
		runner.Register(b.reg, "steer", job, nil)
		b.start(t, func(c *runner.Config) { c.IdleWake = time.Hour })
		var worst time.Duration
		for i := range 300 {
			// Enqueue at varied moments after the last job ended, while the
			// runner's fetch loops settle back to waiting.
			time.Sleep(time.Duration(i%4) * time.Millisecond)
			t0 := time.Now()
			res, err := b.client.Enqueue(t.Context(), "steer", countArgs{}, nil)
			require.NoError(t, err)
			b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
			worst = max(worst, time.Since(t0))
		}
		t.Logf("slowest pickup of 300 on an idle runner: %s", worst)
	})
}

// markCheck is a plain job that reads, while it runs, the start mark its
// runner left for it.
type markCheck struct {
	rdb  redis.UniversalClient
	key  func(string) string
	seen chan [2]string // job id, what it saw
}

func (m markCheck) Perform(ctx context.Context, _ struct{}) error {
	info, _ := iterable.InfoFromContext(ctx)
	v, err := m.rdb.HGet(ctx, m.key(info.JobID), info.JobID).Result()
	if err != nil {
		v = err.Error()
	}
	m.seen <- [2]string{info.JobID, fmt.Sprintf("%s run %d", v, info.Run)}
	return nil
}

// A job recovered from a dead process is marked started (with its run's
// lease) before its code runs, so that if it kills this process too, the
// recovery counts against it; a job never recovered is not marked (no
// round trip on the common path).
func TestRecoveredJobIsMarkedStartedBeforeItRuns(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r)
		var run *runner.Runner
		job := markCheck{rdb: r.Client, seen: make(chan [2]string, 2), key: func(string) string {
			return dq(r).Started(run.ProcessID())
		}}
		runner.Register(b.reg, "mark", job, nil)
		fresh, err := b.client.Enqueue(ctx, "mark", struct{}{}, nil)
		require.NoError(t, err)
		recovered, err := b.client.Enqueue(ctx, "mark", struct{}{}, nil)
		require.NoError(t, err)

		// A process takes both jobs and dies; another reaps it.
		cc := consumer.Config{Namespace: r.Namespace, Logger: quiet, HeartbeatInterval: 20 * time.Millisecond, DeadAfter: 60 * time.Millisecond}
		victim, err := consumer.New(r.Client, cc)
		require.NoError(t, err)
		require.NoError(t, victim.Start(ctx))
		t.Cleanup(func() { _ = victim.Stop(context.Background()) })
		jobs, err := victim.Fetch(ctx, 2)
		require.NoError(t, err)
		require.Len(t, jobs, 2)
		require.NoError(t, victim.Release(ctx, jobs[:1]), "the first job goes back unharmed")
		reaper, err := consumer.New(r.Client, cc)
		require.NoError(t, err)
		require.NoError(t, reaper.Start(ctx))
		testutil.Eventually(t, 5*time.Second, func() bool {
			_, err := reaper.Heartbeat(ctx, nil)
			require.NoError(t, err)
			n, err := reaper.Reap(ctx)
			require.NoError(t, err)
			return n == 1
		}, "the dead process reaped")
		t.Cleanup(func() { _ = reaper.Stop(context.Background()) })

		run = b.start(t, func(c *runner.Config) { c.Concurrency = 1 })
		b.ev.wait(t, fresh.Job.ID, jobtype.EventSucceeded)
		b.ev.wait(t, recovered.Job.ID, jobtype.EventSucceeded)
		got := map[string]string{}
		for range 2 {
			s := <-job.seen
			got[s[0]] = s[1]
		}
		require.Contains(t, got[fresh.Job.ID], "redis: nil", "a job never recovered is not marked")
		var mark, lease int64
		_, err = fmt.Sscanf(got[recovered.Job.ID], "%d run %d", &mark, &lease)
		require.NoError(t, err, "the recovered job is marked: %q", got[recovered.Job.ID])
		require.Equal(t, lease, mark, "the mark holds the run's lease")
	})
}

// A middleware that turns a completed run into a failure (a post-run step
// that failed) makes the job fail for real: its state is saved failed once
// the middleware has returned, OnStop sees the failure, and retried from the
// dead set it runs again (OnResume, the enumeration, OnComplete) instead of
// being taken for a completed job whose acknowledgement was lost. This holds
// with either store: the final status is written by the executor, not by a
// queue script.
func TestCompletedRunFailedByMiddlewareRunsAgainWhenRetried(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"redis store", "memory store"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
				ctx := t.Context()
				b := setup(t, r)
				var store cursor.Store = b.store
				if name == "memory store" {
					store = cursor.NewMemoryStore()
				}
				job := newRecorder()
				runner.RegisterIterable(b.reg, "count", job, &runner.KindOpts{MaxAttempts: 1})
				var calls atomic.Int32
				mw := func(ctx context.Context, _ *jobtype.Job, next func(context.Context) error) error {
					if err := next(ctx); err != nil {
						return err
					}
					if calls.Add(1) == 1 {
						return errors.New("post-run step failed")
					}
					return nil
				}
				b.start(t, func(c *runner.Config) {
					c.Middleware = []runner.Middleware{mw}
					c.Store = store
				})
				res, err := b.client.Enqueue(ctx, "count", countArgs{N: 5}, nil)
				require.NoError(t, err)
				b.ev.wait(t, res.Job.ID, jobtype.EventDead)
				st, err := store.Load(ctx, res.Job.ID)
				require.NoError(t, err)
				require.Equal(t, cursor.StatusDead, st.Status, "the job did not complete: the middleware failed it, and it died")

				require.NoError(t, b.client.RunNow(ctx, queue.SetDead, res.Job.ID))
				b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
				require.Equal(t, []string{"start", "build:nil", "complete", "stop:failed", "resume", "build:5", "complete", "stop:completed"}, job.hooks())
				job.requireEachOnce(t, 5)
			})
		})
	}
}
