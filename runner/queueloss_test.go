package runner_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/runner"
)

// On a cluster, the shard of a queue can lose recent writes (a failover to
// a replica that lagged) while the shard of the process registry keeps
// its own. If what it loses is the runner's registration in the queue, the
// runner's fetches are refused (a process not registered in a queue may
// not fetch from it), yet its heartbeat finds it registered in the
// registry. It must register in the queue again and go on working it.
func TestRunnerRegistersAgainInAQueueThatLostItsRegistration(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r)
		g := &gate{}
		runner.Register(b.reg, "gate", g, nil)
		b.start(t, nil)
		first, err := b.client.Enqueue(ctx, "gate", countArgs{}, nil)
		require.NoError(t, err)
		b.ev.wait(t, first.Job.ID, jobtype.EventSucceeded)

		// What the queue's shard lost: the runner's registration in it.
		require.NoError(t, r.Client.Del(ctx, dq(r).Procs()).Err())
		second, err := b.client.Enqueue(ctx, "gate", countArgs{}, nil)
		require.NoError(t, err)
		b.ev.wait(t, second.Job.ID, jobtype.EventSucceeded)
		require.Equal(t, int32(2), g.done.Load())
	})
}
