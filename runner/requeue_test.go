package runner_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/runner"
)

// spinJob is an iterable job over a huge range. Its first run does each item
// at once (so MaxRuntime interrupts it); every later run blocks in its first
// item until hold is closed, recording which runs are inside EachIteration.
type spinJob struct {
	hold    chan struct{}
	entered chan int64

	mu     sync.Mutex
	first  int64
	active map[int64]bool
	most   int // most runs inside EachIteration at once
}

func (j *spinJob) BuildEnumerator(_ context.Context, _ struct{}, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(0, 1<<40, c), nil
}

func (j *spinJob) EachIteration(ctx context.Context, _ struct{}, _ int64) error {
	info, _ := iterable.InfoFromContext(ctx)
	j.mu.Lock()
	if j.first == 0 {
		j.first = info.Run
	}
	if info.Run == j.first {
		j.mu.Unlock()
		return nil
	}
	j.active[info.Run] = true
	j.most = max(j.most, len(j.active))
	j.mu.Unlock()
	select {
	case j.entered <- info.Run:
	default:
	}
	<-j.hold
	j.mu.Lock()
	delete(j.active, info.Run)
	j.mu.Unlock()
	return nil
}

func (j *spinJob) maxConcurrentRuns() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.most
}

// The runner keeps its executions in a map keyed by job id, and a run that
// ends deletes the job's entry by id (finish, ackLoop, releaseUnstarted all
// call forget(id)). A run that re-enqueues its job (MaxRuntime, throttle,
// snooze or a short retry) records that in Redis and only then forgets the
// job: if a fetch loop of the same process takes the job back in between,
// the old run deletes the new run's entry. The new run goes on unknown to its
// runner: the next heartbeat's sweep for orphans finds its in-flight entry
// held by no known run and puts the job back in the queue, so a third run
// starts while the second still runs (and the cancel loop and the busy list
// no longer see the second). The hook below only widens the window between
// the requeue and the forget, which scheduling delays open on their own.
func TestARunThatRequeuesItsJobDoesNotForgetTheNextRun(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		job := &spinJob{hold: make(chan struct{}), entered: make(chan int64, 8), active: map[int64]bool{}}
		reg := runner.NewRegistry()
		runner.RegisterIterable(reg, "spin", job, &runner.KindOpts{MaxRuntime: time.Millisecond})

		var run atomic.Pointer[runner.Runner]
		var armed atomic.Bool
		armed.Store(true)
		hook := testutil.CmdHook{After: func(_ context.Context, cmd redis.Cmder, cerr error) {
			if testutil.ScriptArg(cmd, cerr, 7) != "requeue" || !armed.CompareAndSwap(true, false) {
				return
			}
			jid, lease := testutil.ScriptArg(cmd, cerr, 5).(string), testutil.ScriptArg(cmd, cerr, 6).(int64)
			rr := run.Load()
			// Hold the interrupted run until its process has fetched the job
			// again (at most a few seconds).
			testutil.WaitFor(5*time.Second, func() bool {
				l, ok := runner.KnownLease(rr, jid)
				return ok && l != lease
			})
		}}
		c := testutil.HookedClient(t, r, hook)
		rr, err := runner.New(runner.Config{
			Redis: c, Registry: reg, Namespace: r.Namespace, Logger: quiet,
			Concurrency: 2, CheckpointInterval: time.Hour,
			HeartbeatInterval: 50 * time.Millisecond, DeadAfter: 5 * time.Second,
			PollInterval: 20 * time.Millisecond, CancelCheckInterval: 20 * time.Millisecond,
		})
		require.NoError(t, err)
		run.Store(rr)
		require.NoError(t, rr.Start(ctx))
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = rr.Stop(sctx)
		})
		t.Cleanup(func() { close(job.hold) }) // runs first

		res, err := newClient(t, r).Enqueue(ctx, "spin", struct{}{}, nil)
		require.NoError(t, err)
		jid := res.Job.ID

		var second int64
		select {
		case second = <-job.entered:
		case <-time.After(15 * time.Second):
			t.Fatal("the job never ran a second time")
		}
		// The first run has ended once only the second is running.
		require.True(t, testutil.WaitFor(10*time.Second, func() bool {
			return runner.RunningCount(rr) == 1
		}))
		l, ok := runner.KnownLease(rr, jid)
		if assert.True(t, ok, "the runner still knows the run it is running (lease %d)", second) {
			assert.Equal(t, second, l)
		}

		// The consequence: within a few heartbeats the sweep hands the
		// running job to another run.
		beats, last := 0, ""
		procKey := rdb.NewKeys(r.Namespace).Proc(rr.ProcessID())
		testutil.WaitFor(10*time.Second, func() bool {
			if b := r.Client.HGet(ctx, procKey, "beat").Val(); b != last {
				beats, last = beats+1, b
			}
			return job.maxConcurrentRuns() > 1 || beats > 5
		})
		require.Equal(t, 1, job.maxConcurrentRuns(), "runs of job %s inside EachIteration at once", jid)
	})
}
