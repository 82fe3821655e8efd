package consumer_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/testutil"
)

// A process that was presumed dead and reaped (a stall, a partition) goes on
// fetching: its runner's fetch loops do not wait for the heartbeat that would
// tell it. The fetch script files the jobs in its in-flight hash although the
// process is no longer in the procs set, so no reaper ever looks at that hash
// again. If the process then dies before its next heartbeat re-registers it
// (kill -9 within one HeartbeatInterval), those jobs are stuck forever.
func TestJobsFetchedByAReapedProcessAreRecoveredWhenItDies(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		cc := consumer.Config{HeartbeatInterval: time.Millisecond, DeadAfter: 2 * time.Millisecond}
		b := setup(t, r, cc) // b.cons is process A
		reaper := newConsumer(t, r, cc)
		procs := b.keys().Procs()

		// A beat once at Start and then stalled: the reaper presumes it dead.
		testutil.Eventually(t, 5*time.Second, func() bool {
			_, err := reaper.Reap(ctx)
			require.NoError(t, err)
			return r.Client.ZScore(ctx, procs, b.cons.ProcessID()).Err() != nil
		}, "A is reaped")

		// A wakes up and its fetch loop tries to take a job before its next
		// beat: refused, so the job cannot sit where no reaper looks.
		res, err := b.client.Enqueue(ctx, "k", 1, nil)
		require.NoError(t, err)
		_, err = b.cons.Fetch(ctx, 10)
		require.ErrorIs(t, err, consumer.ErrReaped)
		require.Equal(t, int64(1), r.Client.LLen(ctx, b.q().Jobs()).Val(), "job %s is still queued", res.Job.ID)
		require.Zero(t, r.Client.HLen(ctx, b.q().Inflight(b.cons.ProcessID())).Val())

		// Its heartbeat reports the reap and registers it again; then it
		// may fetch.
		status, err := b.cons.Heartbeat(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, consumer.BeatReaped, status)
		jobs, err := b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		require.Equal(t, res.Job.ID, jobs[0].ID)
	})
}
