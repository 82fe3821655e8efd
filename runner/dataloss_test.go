package runner_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/runner"
)

// Redis loses all its data while a runner runs an iterable job and a plain
// job (a restart without persistence). Heartbeats are an hour apart, so the
// runs themselves find out: the iterable job's save and the plain job's ack
// are refused, a heartbeat tells that Redis lost the data (not that another
// process took the jobs), the runner registers again and puts the jobs back,
// the iterable job's state is restored from its run, and both jobs finish
// in the runs that had them: nothing repeated, nothing lost.
func TestRunsGoOnWhenRedisLosesItsData(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r)
		job := newRecorder()
		job.pauseAt, job.paused, job.release = 20, make(chan struct{}), make(chan struct{})
		runner.RegisterIterable(b.reg, "count", job, nil)
		g := &gate{started: make(chan struct{}), release: make(chan struct{})}
		runner.Register(b.reg, "gate", g, nil)
		it, err := b.client.Enqueue(ctx, "count", countArgs{N: 50}, nil)
		require.NoError(t, err)
		plain, err := b.client.Enqueue(ctx, "gate", countArgs{N: 1}, nil)
		require.NoError(t, err)
		run := b.start(t, func(c *runner.Config) {
			c.HeartbeatInterval, c.DeadAfter = time.Hour, 2*time.Hour
		})
		var once sync.Once
		release := func() {
			once.Do(func() {
				close(job.release)
				close(g.release)
			})
		}
		t.Cleanup(release)
		<-job.paused
		<-g.started

		testutil.DeleteNamespace(ctx, r.Client, r.Namespace)
		release()

		b.ev.wait(t, it.Job.ID, jobtype.EventSucceeded)
		b.ev.wait(t, plain.Job.ID, jobtype.EventSucceeded)
		job.requireEachOnce(t, 50)
		require.Equal(t, int32(1), g.done.Load())
		st, err := b.store.Load(ctx, it.Job.ID)
		require.NoError(t, err)
		require.Equal(t, cursor.StatusCompleted, st.Status)
		require.JSONEq(t, "50", string(st.Cursor))
		require.Equal(t, int64(50), st.ItemsProcessed)
		require.Equal(t, 1, st.Executions, "the same run, restored")
		require.Equal(t, []string{"start", "build:nil", "complete", "stop:completed"}, job.hooks())
		testutil.Eventually(t, 5*time.Second, func() bool {
			return r.Client.HLen(ctx, dq(r).Inflight(run.ProcessID())).Val() == 0
		}, "both jobs acknowledged")
		procs, err := b.client.Processes(ctx)
		require.NoError(t, err)
		require.Len(t, procs, 1, "registered again")
	})
}
