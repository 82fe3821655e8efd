package consumer_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/testutil"
)

// On a cluster a queue and the process registry live on different shards,
// and a failover to a replica that lagged can lose a queue's recent writes
// while the registry keeps its own. A process whose registration in a queue
// was lost so is refused fetches from it, yet its heartbeat finds it
// registered: the heartbeat after a refused fetch must register it in its
// queues again, or it never fetches from that queue again.
func TestHeartbeatRegistersAgainInAQueueThatLostTheRegistration(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r, consumer.Config{})
		res, err := b.client.Enqueue(ctx, "k", 1, nil)
		require.NoError(t, err)

		// The queue's shard lost the process's registration, nothing else.
		require.NoError(t, r.Client.Del(ctx, b.q().Procs()).Err())
		_, err = b.cons.Fetch(ctx, 10)
		require.ErrorIs(t, err, consumer.ErrReaped)
		status, err := b.cons.Heartbeat(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, consumer.BeatAlive, status, "nobody reaped it and the registry kept it")
		jobs, err := b.cons.Fetch(ctx, 10)
		require.NoError(t, err, "registered again in its queue")
		require.Len(t, jobs, 1)
		require.Equal(t, res.Job.ID, jobs[0].ID)
	})
}
