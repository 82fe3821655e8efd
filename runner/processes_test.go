package runner_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// busyIDs returns the ids of the jobs Processes lists for process id.
func busyIDs(t *testing.T, c *queue.Client, id string) []string {
	t.Helper()
	procs, err := c.Processes(t.Context())
	require.NoError(t, err)
	var ids []string
	for _, p := range procs {
		if p.ID == id {
			for _, j := range p.Busy {
				ids = append(ids, j.ID)
			}
		}
	}
	return ids
}

// The jobs a process runs, as Processes lists them, are current within a
// second whatever the heartbeat interval (an hour here): a job is listed
// within a second of starting, and no longer listed within a second of
// finishing, by success (an acknowledgement) or by cancellation.
func TestProcessesListRunningJobsWithinASecond(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r)
		job := newRecorder()
		job.pauseAt, job.paused, job.release = 3, make(chan struct{}), make(chan struct{})
		runner.RegisterIterable(b.reg, "count", job, nil)
		blk := &blocking{started: make(chan struct{}), cause: make(chan error, 1)}
		runner.Register(b.reg, "block", blk, nil)
		run := b.start(t, func(c *runner.Config) {
			c.HeartbeatInterval, c.DeadAfter = time.Hour, 2*time.Hour
		})
		var once sync.Once
		release := func() { once.Do(func() { close(job.release) }) }
		t.Cleanup(release)
		has := func(jid string) func() bool {
			return func() bool { return slices.Contains(busyIDs(t, b.client, run.ProcessID()), jid) }
		}
		gone := func(jid string) func() bool {
			return func() bool { return !slices.Contains(busyIDs(t, b.client, run.ProcessID()), jid) }
		}

		it, err := b.client.Enqueue(ctx, "count", countArgs{N: 10}, nil)
		require.NoError(t, err)
		<-job.paused
		testutil.Eventually(t, time.Second, has(it.Job.ID), "the iterable job listed within a second of starting")
		plain, err := b.client.Enqueue(ctx, "block", countArgs{}, nil)
		require.NoError(t, err)
		<-blk.started
		testutil.Eventually(t, time.Second, has(plain.Job.ID), "the plain job listed within a second of starting")

		release()
		b.ev.wait(t, it.Job.ID, jobtype.EventSucceeded)
		testutil.Eventually(t, time.Second, gone(it.Job.ID), "the succeeded job unlisted within a second")
		require.True(t, has(plain.Job.ID)(), "the running job is still listed")

		_, err = b.client.Cancel(ctx, plain.Job.ID)
		require.NoError(t, err)
		require.ErrorIs(t, <-blk.cause, runner.ErrCancelled)
		b.ev.wait(t, plain.Job.ID, jobtype.EventCancelled)
		testutil.Eventually(t, time.Second, gone(plain.Job.ID), "the cancelled job unlisted within a second")
	})
}
