package consumer_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
)

// A process that dies loses its liveness connection with its other sockets:
// it is reaped about two heartbeat intervals after its last beat, long before
// DeadAfter. A process that stops beating but keeps its connection (hung,
// SIGSTOPped, partitioned with its sockets open) keeps its jobs until
// DeadAfter.
func TestProcessWithoutLivenessConnectionIsReapedBeforeDeadAfter(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		const hb = 100 * time.Millisecond
		cc := consumer.Config{HeartbeatInterval: hb, DeadAfter: time.Hour}
		reaper := setup(t, r, cc)
		victim := newConsumer(t, r, cc)
		hung := newConsumer(t, r, cc)
		params := []queue.Params{{Kind: "k"}, {Kind: "k"}}
		_, err := reaper.client.EnqueueMany(ctx, params)
		require.NoError(t, err)
		vj, err := victim.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Len(t, vj, 1)
		hj, err := hung.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Len(t, hj, 1)

		// The victim dies: its connections close (Stop closes the pub/sub
		// connection and, with a job in flight, leaves it registered) and
		// it beats no more. The hung process beats no more either.
		require.NoError(t, victim.Stop(ctx))
		beat := r.Client.ZScore(ctx, reaper.keys().Procs(), victim.ProcessID()).Val()
		lastBeat := time.UnixMilli(int64(beat))

		// The first reap that finds it silent only marks it.
		testutil.Eventually(t, 10*time.Second, func() bool {
			_, err := reaper.cons.Heartbeat(ctx, nil)
			require.NoError(t, err)
			n, err := reaper.cons.Reap(ctx)
			require.NoError(t, err)
			require.Zero(t, n, "a process without its liveness connection is seen twice before it is reaped")
			return reaper.cons.NextReap() > 0
		}, "a reap to find the victim without its liveness connection")
		require.NotEmpty(t, r.Client.HGet(ctx, reaper.keys().Proc(victim.ProcessID()), "gone").Val())
		require.LessOrEqual(t, reaper.cons.NextReap(), hb/2)

		// A later reap confirms it.
		var reapedAt time.Time
		testutil.Eventually(t, 10*time.Second, func() bool {
			_, err := reaper.cons.Heartbeat(ctx, nil)
			require.NoError(t, err)
			n, err := reaper.cons.Reap(ctx)
			require.NoError(t, err)
			reapedAt = time.Now()
			return n == 1
		}, "the victim reaped")
		t.Logf("reaped %s after its last beat (heartbeat %s, DeadAfter %s)", reapedAt.Sub(lastBeat).Round(time.Millisecond), hb, cc.DeadAfter)
		require.GreaterOrEqual(t, reapedAt.Sub(lastBeat), 2*hb-5*time.Millisecond, "silent for 1.5 intervals, then confirmed half an interval later")
		got, err := reaper.cons.Fetch(ctx, 2)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, vj[0].ID, got[0].ID)

		// The hung process, silent as long and longer, keeps its job.
		require.NoError(t, r.Client.ZScore(ctx, reaper.keys().Procs(), hung.ProcessID()).Err(), "the hung process is still registered")
		require.Equal(t, []string{hj[0].ID}, r.Client.HKeys(ctx, reaper.q().Inflight(hung.ProcessID())).Val())
		require.Empty(t, r.Client.HGet(ctx, reaper.keys().Proc(hung.ProcessID()), "gone").Val())
	})
}

// A live process that keeps beating is never reaped, even without its
// liveness connection (its pub/sub connection is reconnecting); one that
// missed its beats and was seen without it is cleared by its next beat.
func TestBeatingProcessWithoutLivenessConnectionIsNotReaped(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		// Long enough that a loaded machine does not make the beats late.
		const hb = time.Second
		cc := consumer.Config{HeartbeatInterval: hb, DeadAfter: time.Hour}
		reaper := setup(t, r, cc)
		db := rdb.New(r.Client, r.Namespace)
		// A process that declares a liveness channel nobody subscribes to.
		b := rdb.Beat{ProcID: "lonely", Info: []byte("{}"), Busy: []byte("[]"), TTL: time.Hour, First: true,
			Alive: db.Keys.Alive("lonely"), Interval: hb, NewEpoch: "e"}
		beat := func() {
			reply, err := db.Heartbeat(ctx, b)
			require.NoError(t, err)
			require.Equal(t, rdb.BeatAlive, reply.Status, "never reaped")
			b.First, b.Epoch = false, reply.Epoch
		}
		beat()
		require.NoError(t, r.Client.HSet(ctx, db.Keys.Q("default").Inflight("lonely"), "j", "1|x").Err())

		// Beating on time, it is never even looked at.
		deadline := time.Now().Add(5 * hb / 2)
		for time.Now().Before(deadline) {
			beat()
			n, err := reaper.cons.Reap(ctx)
			require.NoError(t, err)
			require.Zero(t, n)
			require.Zero(t, reaper.cons.NextReap())
			time.Sleep(hb / 10) // the beat cadence, not a wait for a condition
		}

		// Silent, it is marked; its next beat clears the mark.
		testutil.Eventually(t, 10*time.Second, func() bool {
			n, err := reaper.cons.Reap(ctx)
			require.NoError(t, err)
			require.Zero(t, n)
			return reaper.cons.NextReap() > 0
		}, "the silent process marked")
		beat()
		require.Empty(t, r.Client.HGet(ctx, db.Keys.Proc("lonely"), "gone").Val(), "a beat clears the mark")
		n, err := reaper.cons.Reap(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Zero(t, reaper.cons.NextReap())
		require.Equal(t, int64(1), r.Client.HLen(ctx, db.Keys.Q("default").Inflight("lonely")).Val())
		require.NoError(t, r.Client.Del(context.Background(), db.Keys.Q("default").Inflight("lonely")).Err())
		require.NoError(t, r.Client.Del(context.Background(), db.Keys.Proc("lonely")).Err())
	})
}

// A process that finds itself unregistered tells why: reaped by another
// process (its jobs went to others), or Redis lost the namespace's data (a
// restart without persistence, a flush): then nobody has its jobs, and it
// puts back their in-flight entries, with their leases, so its runs can
// finish them. Later leases exceed the restored ones.
func TestHeartbeatTellsDataLossFromReapAndJobsArePutBack(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r, consumer.Config{})
		other := newConsumer(t, r, consumer.Config{})
		_, err := b.client.EnqueueMany(ctx, []queue.Params{{Kind: "k"}, {Kind: "k"}})
		require.NoError(t, err)
		jobs, err := b.cons.Fetch(ctx, 2)
		require.NoError(t, err)
		require.Len(t, jobs, 2)
		status, err := b.cons.Heartbeat(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, consumer.BeatAlive, status)

		// Redis loses everything in the namespace.
		testutil.DeleteNamespace(ctx, r.Client, r.Namespace)
		_, err = b.cons.Fetch(ctx, 1)
		require.ErrorIs(t, err, consumer.ErrReaped, "an unregistered process may not fetch")
		require.ErrorIs(t, b.cons.Requeue(ctx, jobs[0], nil), consumer.ErrLeaseLost, "the entry is gone")
		status, err = b.cons.Heartbeat(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, consumer.BeatDataLost, status)
		status, err = other.Heartbeat(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, consumer.BeatDataLost, status, "every process learns it, whoever beats first")
		status, err = b.cons.Heartbeat(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, consumer.BeatAlive, status, "registered again")

		n, err := b.cons.Restore(ctx, []consumer.HeldJob{{Job: jobs[0], Started: true}, {Job: jobs[1]}})
		require.NoError(t, err)
		require.Equal(t, 2, n)
		n, err = b.cons.Restore(ctx, []consumer.HeldJob{{Job: jobs[0]}})
		require.NoError(t, err)
		require.Zero(t, n, "an entry present is left alone")
		stale, err := b.cons.Ack(ctx, []consumer.Done{{Job: jobs[0]}})
		require.NoError(t, err)
		require.Empty(t, stale, "the run finishes its job")
		require.NoError(t, b.cons.Requeue(ctx, jobs[1], nil))
		again, err := b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Len(t, again, 1)
		require.Equal(t, jobs[1].ID, again[0].ID)
		require.Greater(t, again[0].Lease, max(jobs[0].Lease, jobs[1].Lease))

		// Reaped, by contrast: the epoch is still there.
		require.NoError(t, r.Client.ZRem(ctx, b.keys().Procs(), b.cons.ProcessID()).Err())
		status, err = b.cons.Heartbeat(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, consumer.BeatReaped, status)
	})
}

// failing makes every command of a client fail while it is set.
type failing struct{ on *atomic.Bool }

func (f failing) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f failing) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if f.on.Load() {
			return errors.New("injected: connection lost")
		}
		return next(ctx, cmds)
	}
}
func (f failing) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if f.on.Load() {
			return errors.New("injected: connection lost")
		}
		return next(ctx, cmd)
	}
}

// For two heartbeat intervals after its own heartbeat failed (a failover or
// restart, which also drops every other process's connections), a reaper
// takes no quick path: a silent process without its liveness connection is
// not even marked. After that, it is.
func TestReaperTakesNoQuickPathRightAfterItsOwnCallsFailed(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		const hb = time.Second
		var fail atomic.Bool
		reaper, err := consumer.New(testutil.HookedClient(t, r, failing{&fail}),
			consumer.Config{Namespace: r.Namespace, Logger: quiet, HeartbeatInterval: hb, DeadAfter: time.Hour})
		require.NoError(t, err)
		require.NoError(t, reaper.Start(ctx))
		t.Cleanup(func() { _ = reaper.Stop(context.Background()) })
		db := rdb.New(r.Client, r.Namespace)
		reply, err := db.Heartbeat(ctx, rdb.Beat{ProcID: "lonely", Info: []byte("{}"), Busy: []byte("[]"), TTL: time.Hour,
			First: true, Alive: db.Keys.Alive("lonely"), Interval: hb, NewEpoch: "e"})
		require.NoError(t, err)
		require.Equal(t, rdb.BeatAlive, reply.Status)
		time.Sleep(hb * 8 / 5) // silent for longer than 1.5 intervals

		fail.Store(true)
		_, err = reaper.Heartbeat(ctx, nil)
		require.Error(t, err)
		fail.Store(false)
		failed := time.Now()
		for time.Since(failed) < hb {
			_, err := reaper.Reap(ctx)
			require.NoError(t, err)
			require.Zero(t, reaper.NextReap(), "no quick path right after the reaper's own heartbeat failed")
			require.Empty(t, r.Client.HGet(ctx, db.Keys.Proc("lonely"), "gone").Val())
			time.Sleep(hb / 10) // the reap cadence, not a wait for a condition
		}
		testutil.Eventually(t, 10*time.Second, func() bool {
			_, err := reaper.Reap(ctx)
			require.NoError(t, err)
			return reaper.NextReap() > 0
		}, "the quick path to mark the silent process once the reaper's trouble is two intervals old")
		require.GreaterOrEqual(t, time.Since(failed), 2*hb)
		require.NoError(t, r.Client.Del(context.Background(), db.Keys.Proc("lonely")).Err())
	})
}
