package consumer_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

// Redis loses the writes of a fetch (a restart from a snapshot taken just
// before it, a failover to a replica that had not received it): the lease
// counter goes back, the job is queued again, its in-flight entry and its
// iteration state are gone. The same process fetches the job again while
// the first run still works on it. The new run's lease must exceed the old
// one, so the old run can neither checkpoint nor finish the job.
func TestLeasesStayFencedAfterRedisLosesWrites(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r, consumer.Config{})
		store, err := cursor.NewRedisStore(r.Client, cursor.RedisConfig{Namespace: r.Namespace})
		require.NoError(t, err)
		res, err := b.client.Enqueue(ctx, "k", nil, nil)
		require.NoError(t, err)
		jid := res.Job.ID

		// The snapshot Redis will go back to.
		counter := r.Client.Get(ctx, b.q().Leases()).Val()
		env := r.Client.LIndex(ctx, b.q().Jobs(), 0).Val()
		require.Contains(t, env, jid)

		old, err := b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Len(t, old, 1)
		entry := r.Client.HGet(ctx, b.q().Inflight(b.cons.ProcessID()), jid).Val()
		require.Equal(t, strconv.FormatInt(old[0].Lease, 10), strings.SplitN(entry, "|", 2)[0], "the in-flight entry holds the lease exactly")
		st, err := store.Begin(ctx, jid, old[0].Lease)
		require.NoError(t, err)
		st.Cursor = []byte("10")
		require.NoError(t, store.Save(ctx, jid, old[0].Lease, st))

		// Redis goes back to the snapshot.
		if counter == "" {
			require.NoError(t, r.Client.Del(ctx, b.q().Leases()).Err())
		} else {
			require.NoError(t, r.Client.Set(ctx, b.q().Leases(), counter, 0).Err())
		}
		require.NoError(t, r.Client.HDel(ctx, b.q().Inflight(b.cons.ProcessID()), jid).Err())
		require.NoError(t, r.Client.Del(ctx, b.keys().Iter(jid)).Err())
		require.NoError(t, r.Client.LPush(ctx, b.q().Jobs(), env).Err())

		again, err := b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Len(t, again, 1)
		require.Equal(t, jid, again[0].ID)
		require.Greater(t, again[0].Lease, old[0].Lease, "a lease handed out after the rollback exceeds every lease before it")
		_, err = store.Begin(ctx, jid, again[0].Lease)
		require.NoError(t, err)

		// The old run is fenced off everywhere.
		st.Cursor = []byte("99")
		require.ErrorIs(t, store.Save(ctx, jid, old[0].Lease, st), cursor.ErrStaleRun)
		_, err = store.Begin(ctx, jid, old[0].Lease)
		require.ErrorIs(t, err, cursor.ErrStaleRun)
		require.ErrorIs(t, b.cons.Requeue(ctx, old[0], nil), consumer.ErrLeaseLost)
		require.ErrorIs(t, b.cons.Kill(ctx, old[0], jobtype.NewJobError(errors.New("stale"), nil, 1, time.Now()), nil), consumer.ErrLeaseLost)
		stale, err := b.cons.Ack(ctx, []consumer.Done{{Job: old[0]}})
		require.NoError(t, err)
		require.Equal(t, []string{jid}, stale)

		// The new run owns it.
		got, err := store.Load(ctx, jid)
		require.NoError(t, err)
		require.Nil(t, got.Cursor, "the stale checkpoint changed nothing")
		stale, err = b.cons.Ack(ctx, []consumer.Done{{Job: again[0]}})
		require.NoError(t, err)
		require.Empty(t, stale)
	})
}

// A lease is at least the Redis server's time in microseconds; a counter
// ahead of the clock (leases handed out faster than one per microsecond)
// goes on from where it is: leases never repeat.
func TestLeasesFollowTheClockOrACounterAheadOfIt(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r, consumer.Config{})
		_, err := b.client.Enqueue(ctx, "k", nil, nil)
		require.NoError(t, err)
		before := time.Now()
		first, err := b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Len(t, first, 1)
		// The server's clock is this host's: allow for the round trip only.
		require.GreaterOrEqual(t, first[0].Lease, before.Add(-time.Second).UnixMicro())
		require.LessOrEqual(t, first[0].Lease, time.Now().Add(time.Second).UnixMicro())

		ahead := time.Now().Add(time.Hour).UnixMicro()
		require.NoError(t, r.Client.Set(ctx, b.q().Leases(), ahead, 0).Err())
		params := make([]queue.Params, 3)
		for i := range params {
			params[i] = queue.Params{Kind: "k"}
		}
		_, err = b.client.EnqueueMany(ctx, params)
		require.NoError(t, err)
		jobs, err := b.cons.Fetch(ctx, 3)
		require.NoError(t, err)
		require.Len(t, jobs, 3)
		for i, j := range jobs {
			require.Equal(t, ahead+int64(i)+1, j.Lease)
		}
		require.Equal(t, strconv.FormatInt(ahead+3, 10), r.Client.Get(ctx, b.q().Leases()).Val())
	})
}
