package rdb_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
)

// The quick path (a silent process without its liveness connection is
// marked, then reaped half an interval later) is taken only by a reaper
// whose own liveness channel the server sees: after a failover or restart
// the server knows no subscription at all, and a reaper that has not
// reconnected itself cannot tell the dead from the reconnecting. Without a
// channel, or with one nobody subscribes to, only DeadAfter reaps.
func TestReapTakesTheQuickPathOnlyWhenTheReaperIsSeenAlive(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		db := rdb.New(r.Client, r.Namespace)
		const hb = 100 * time.Millisecond
		// A process that declares a liveness channel nobody subscribes to,
		// beats once and falls silent.
		reply, err := db.Heartbeat(ctx, rdb.Beat{ProcID: "silent", Info: []byte("{}"), Busy: []byte("[]"), TTL: time.Hour,
			First: true, Alive: db.Keys.Alive("silent"), Interval: hb, NewEpoch: "e"})
		require.NoError(t, err)
		require.Equal(t, rdb.BeatAlive, reply.Status)
		time.Sleep(2 * hb) // silent for longer than 1.5 intervals

		for _, alive := range []string{"", db.Keys.Alive("reaper")} {
			res, err := db.Reap(ctx, time.Hour, hb*3/2, "reaper", alive)
			require.NoError(t, err)
			require.Empty(t, res.Procs)
			require.LessOrEqual(t, res.Recheck, time.Duration(0), "no quick path with reaper channel %q", alive)
			require.Empty(t, r.Client.HGet(ctx, db.Keys.Proc("silent"), "gone").Val(), "not even marked")
		}

		// Once the server sees the reaper's own connection, the quick path
		// marks the silent process, then reaps it.
		ps := r.Client.Subscribe(ctx, db.Keys.Alive("reaper"))
		defer ps.Close()
		_, err = ps.Receive(ctx)
		require.NoError(t, err)
		res, err := db.Reap(ctx, time.Hour, hb*3/2, "reaper", db.Keys.Alive("reaper"))
		require.NoError(t, err)
		require.Empty(t, res.Procs)
		require.Positive(t, res.Recheck, "marked, to be confirmed")
		testutil.Eventually(t, 10*time.Second, func() bool {
			res, err := db.Reap(ctx, time.Hour, hb*3/2, "reaper", db.Keys.Alive("reaper"))
			require.NoError(t, err)
			return len(res.Procs) == 1
		}, "the silent process reaped by the quick path")
	})
}
