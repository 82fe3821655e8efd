package runner_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/runner"
)

type blockingPlain struct {
	started chan struct{}
	release chan struct{}
}

func (p *blockingPlain) Perform(context.Context, struct{}) error {
	close(p.started)
	<-p.release // ignores its context, as much real code does
	return nil
}

// cancelLoop snapshots the running executions under r.mu, reads the cancel
// flags from Redis, and then reads e.iterable and e.cancel WITHOUT r.mu,
// while the worker writes e.cancel = nil under r.mu when the run ends. That
// is a data race (run this test with -race: it fails with "race detected").
// Beyond the race detector: e.cancel is read twice (`e.cancel != nil`, then
// `e.cancel(ErrCancelled)`), so a run ending in between makes cancelLoop call
// a nil func and crash the process; and e.cancel is the worker's context
// cancel, which the worker reuses for its next job, so a cancel meant for a
// job that just ended can cancel the next job run by the same worker (a plain
// job cancelled by nobody, removed from the queue as "cancelled").
//
// The hook lets the job end while cancelLoop's MGET is in flight; the sleep
// only orders the two goroutines (it is not what the test asserts: too short
// a sleep would hide the race, never invent one).
//
// Not parallel: the race detector fails every test running when it reports.
func TestCancelLoopReadsExecutionsUnderTheLock(t *testing.T) {
	r := testutil.Miniredis(t)
	job := &blockingPlain{started: make(chan struct{}), release: make(chan struct{})}
	reg := runner.NewRegistry()
	runner.Register(reg, "block", job, nil)

	var jid atomic.Value
	jid.Store("")
	var armed atomic.Bool
	hook := testutil.CmdHook{After: func(_ context.Context, cmd redis.Cmder, err error) {
		if cmd.Name() != "zmscore" || err != nil || !armed.Load() {
			return
		}
		i := slices.Index(cmd.Args(), any(jid.Load().(string)))
		if i < 2 || cmd.(*redis.FloatSliceCmd).Val()[i-2] == 0 {
			return // not the job's cancellation, or not pending yet
		}
		armed.Store(false)
		close(job.release)                 // the job ends now...
		time.Sleep(200 * time.Millisecond) // ...and its worker clears e.cancel before cancelLoop reads it
	}}
	rr := startRunner(t, runner.Config{
		Redis: testutil.HookedClient(t, r, hook), Registry: reg, Namespace: r.Namespace,
		Concurrency: 1, FetchAhead: -1, CheckpointInterval: time.Hour,
		HeartbeatInterval: time.Hour, DeadAfter: 2 * time.Hour,
		PollInterval: time.Hour, CancelCheckInterval: 5 * time.Millisecond,
	})
	client := newClient(t, r)
	res, err := client.Enqueue(t.Context(), "block", struct{}{}, nil)
	require.NoError(t, err)
	jid.Store(res.Job.ID)
	<-job.started
	// Quiet: no more fetching, so no goroutine but the worker and
	// cancelLoop is involved (the plain job still runs to its end).
	rr.Quiet()
	armed.Store(true)
	st, err := client.Cancel(t.Context(), res.Job.ID)
	require.NoError(t, err)
	require.Equal(t, jobtype.StateRunning, st)
	require.True(t, testutil.WaitFor(10*time.Second, func() bool { return !armed.Load() }), "cancelLoop read the flag")
	require.True(t, testutil.WaitFor(10*time.Second, func() bool {
		return r.Client.HLen(t.Context(), dq(r).Inflight(rr.ProcessID())).Val() == 0
	}), "the job finished")
}
