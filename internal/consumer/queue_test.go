package consumer_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

var quiet = slog.New(slog.DiscardHandler)

type bundle struct {
	r      testutil.Redis
	client *queue.Client
	cons   *consumer.Consumer
}

func setup(t *testing.T, r testutil.Redis, cc consumer.Config) bundle {
	t.Helper()
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
	require.NoError(t, err)
	cc.Namespace = r.Namespace
	if cc.Logger == nil {
		cc.Logger = quiet
	}
	cons, err := consumer.New(r.Client, cc)
	require.NoError(t, err)
	require.NoError(t, cons.Start(t.Context()))
	t.Cleanup(func() { _ = cons.Stop(context.Background()) })
	return bundle{r: r, client: client, cons: cons}
}

// keys are the bundle's namespace keys; q its default queue's.
func (b bundle) keys() rdb.Keys { return rdb.NewKeys(b.r.Namespace) }
func (b bundle) q() rdb.QKeys   { return b.keys().Q("default") }

func TestEnqueueFetchAck(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		res, err := b.client.Enqueue(ctx, "email", map[string]string{"to": "zoë@example.com"}, nil)
		require.NoError(t, err)
		require.False(t, res.Duplicate)
		require.False(t, res.Scheduled)
		require.Len(t, res.Job.ID, 24)

		jobs, err := b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		j := jobs[0]
		require.Equal(t, res.Job.ID, j.ID)
		require.Equal(t, "email", j.Kind)
		require.Equal(t, queue.QueueDefault, j.Queue)
		require.JSONEq(t, `{"to":"zoë@example.com"}`, string(j.Args))
		require.Equal(t, 1, j.Attempt)
		require.Positive(t, j.Lease)
		require.WithinDuration(t, time.Now(), j.EnqueuedAt, time.Minute)

		inflight := b.q().Inflight(b.cons.ProcessID())
		require.Equal(t, []string{j.ID}, r.Client.HKeys(ctx, inflight).Val(), "a fetched job is in flight")

		more, err := b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Empty(t, more, "a job is fetched once")

		stale, err := b.cons.Ack(ctx, []consumer.Done{{Job: j}})
		require.NoError(t, err)
		require.Empty(t, stale)
		require.Empty(t, r.Client.HKeys(ctx, inflight).Val())
		require.Equal(t, "1", r.Client.HGet(ctx, b.q().Stats(), "processed").Val())
	})
}

func TestFetchKeepsFIFOOrderAndBatches(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		var params []queue.Params
		for i := range 25 {
			params = append(params, queue.Params{Kind: "n", Args: i})
		}
		res, err := b.client.EnqueueMany(ctx, params)
		require.NoError(t, err)
		require.Len(t, res, 25)
		var got []int
		for len(got) < 25 {
			jobs, err := b.cons.Fetch(ctx, 10)
			require.NoError(t, err)
			require.NotEmpty(t, jobs)
			require.LessOrEqual(t, len(jobs), 10)
			for _, j := range jobs {
				var n int
				require.NoError(t, json.Unmarshal(j.Args, &n))
				got = append(got, n)
			}
		}
		for i := range 25 {
			require.Equal(t, i, got[i])
		}
	})
}

func TestRequeueGoesToHeadKeepsIdentityAndIsFenced(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		first, err := b.client.Enqueue(ctx, "long", 1, &queue.EnqueueOpts{Queue: "bulk", MaxAttempts: 7})
		require.NoError(t, err)
		_, err = b.client.Enqueue(ctx, "long", 2, &queue.EnqueueOpts{Queue: "bulk"})
		require.NoError(t, err)
		b2 := setup(t, r, consumer.Config{Queues: []consumer.Queue{{Name: "bulk"}}})

		jobs, err := b2.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, first.Job.ID, jobs[0].ID)
		require.NoError(t, b2.cons.Requeue(ctx, jobs[0], nil))
		require.ErrorIs(t, b2.cons.Requeue(ctx, jobs[0], nil), consumer.ErrLeaseLost, "finishing twice is refused")

		again, err := b2.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, first.Job.ID, again[0].ID, "an interrupted job goes to the head of its queue")
		require.Equal(t, "bulk", again[0].Queue)
		require.Equal(t, 7, again[0].MaxAttempts)
		require.Equal(t, 1, again[0].Attempt, "an interruption is not an attempt")
		require.Greater(t, again[0].Lease, jobs[0].Lease, "each run gets a new lease")

		// The old run's ack is refused: it no longer owns the job.
		stale, err := b2.cons.Ack(ctx, []consumer.Done{{Job: jobs[0]}})
		require.NoError(t, err)
		require.Equal(t, []string{first.Job.ID}, stale)
		require.Equal(t, int64(1), r.Client.HLen(ctx, b.keys().Q("bulk").Inflight(b2.cons.ProcessID())).Val(), "a stale ack leaves the new run in flight")
	})
}

func TestRetrySetPromotesWithAttemptAndError(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		res, err := b.client.Enqueue(ctx, "flaky", nil, nil)
		require.NoError(t, err)
		jobs, err := b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		j := jobs[0]
		due := time.Now().Add(-time.Millisecond)
		jerr := jobtype.NewJobError(context.DeadlineExceeded, []byte("trace"), j.Attempt, time.Now())
		require.NoError(t, b.cons.Retry(ctx, j, due, jerr, nil))
		require.Equal(t, "1", r.Client.HGet(ctx, b.q().Stats(), "failed").Val())
		require.Equal(t, int64(1), r.Client.ZCard(ctx, b.q().Retry()).Val())

		n, next, err := b.cons.Promote(ctx, 100)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.True(t, next.IsZero(), "nothing else waits")
		jobs, err = b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		require.Equal(t, res.Job.ID, jobs[0].ID)
		require.Equal(t, 2, jobs[0].Attempt)
	})
}

func TestReapRecoversJobsOfDeadProcessToHead(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		cc := consumer.Config{HeartbeatInterval: 50 * time.Millisecond, DeadAfter: 200 * time.Millisecond}
		dead := setup(t, r, cc)
		live := setup(t, r, cc)
		a, err := dead.client.Enqueue(ctx, "k", "a", nil)
		require.NoError(t, err)
		_, err = dead.client.Enqueue(ctx, "k", "b", nil)
		require.NoError(t, err)
		jobs, err := dead.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, a.Job.ID, jobs[0].ID)

		n, err := live.cons.Reap(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "a process that beat recently is alive")

		// The dead process stops beating; the live one keeps beating.
		testutil.Eventually(t, 5*time.Second, func() bool {
			status, err := live.cons.Heartbeat(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, consumer.BeatAlive, status)
			n, err = live.cons.Reap(ctx)
			require.NoError(t, err)
			return n == 1
		}, "the dead process's job is recovered")

		got, err := live.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, a.Job.ID, got[0].ID, "a recovered job goes to the head of its queue")
		require.Equal(t, 1, got[0].Recovered)
		require.Equal(t, 1, got[0].Attempt, "a recovery is not an attempt")

		status, err := dead.cons.Heartbeat(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, consumer.BeatReaped, status, "a reaped process learns it was reaped")
		require.ErrorIs(t, dead.cons.Requeue(ctx, jobs[0], nil), consumer.ErrLeaseLost)
	})
}

func TestReleasePutsUnstartedJobsBackInOrder(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		for i := range 5 {
			_, err := b.client.Enqueue(ctx, "k", i, nil)
			require.NoError(t, err)
		}
		jobs, err := b.cons.Fetch(ctx, 3)
		require.NoError(t, err)
		require.NoError(t, b.cons.Release(ctx, jobs))
		again, err := b.cons.Fetch(ctx, 5)
		require.NoError(t, err)
		require.Len(t, again, 5)
		for i := range 3 {
			require.Equal(t, jobs[i].ID, again[i].ID)
		}
	})
}

func TestUndecodablePayloadGoesToDeadSet(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		require.NoError(t, r.Client.RPush(ctx, b.q().Jobs(), "not an envelope", "1|bad2|k|default|x|0|-|0|0|0|0|{}").Err())
		_, err := b.client.Enqueue(ctx, "ok", nil, nil)
		require.NoError(t, err)

		jobs, err := b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Len(t, jobs, 1, "bad payloads are not handed out")
		require.Equal(t, "ok", jobs[0].Kind)
		dead := r.Client.ZRange(ctx, b.q().Dead(), 0, -1).Val()
		require.Len(t, dead, 2)
		require.Contains(t, dead, "bad2")
		for _, id := range dead {
			require.Contains(t, r.Client.HGet(ctx, b.q().Errors(), id).Val(), "invalid job payload")
		}
		require.Equal(t, "1|bad2|k|default|x|0|-|0|0|0|0|{}", r.Client.HGet(ctx, b.q().Parked(), "bad2").Val(), "the payload is kept for inspection")
		require.Zero(t, r.Client.HLen(ctx, b.q().Inflight(b.cons.ProcessID())).Val()-1, "only the good job stays in flight")
	})
}

func TestWaitWakesOnEnqueue(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{IdleWake: time.Hour})
		ctx := t.Context()
		jobs, err := b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Empty(t, jobs, "the empty fetch raises the idle flag")

		woke := make(chan struct{})
		go func() {
			b.cons.Wait(ctx)
			close(woke)
		}()
		_, err = b.client.Enqueue(ctx, "k", nil, nil)
		require.NoError(t, err)
		select {
		case <-woke:
		case <-time.After(10 * time.Second):
			t.Fatal("Wait did not return after an enqueue (IdleWake is an hour)")
		}
		jobs, err = b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
	})
}

func TestInvalidNames(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	c, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace})
	require.NoError(t, err)
	_, err = c.Enqueue(t.Context(), "", nil, nil)
	require.ErrorIs(t, err, queue.ErrInvalidName)
	_, err = c.Enqueue(t.Context(), "k", nil, &queue.EnqueueOpts{Queue: "a b"})
	require.ErrorIs(t, err, queue.ErrInvalidName)
	_, err = c.Enqueue(t.Context(), "k", func() {}, nil)
	require.ErrorContains(t, err, "encode args")
	_, err = queue.NewClient(r.Client, queue.Config{Namespace: "{x}"})
	require.ErrorIs(t, err, queue.ErrInvalidName)

	qs, err := queue.ParseQueues("urgent:10, default ,low:2")
	require.NoError(t, err)
	require.Equal(t, []queue.QueueWeight{{Name: "urgent", Weight: 10}, {Name: "default", Weight: 1}, {Name: "low", Weight: 2}}, qs)
	_, err = queue.ParseQueues("urgent:0")
	require.Error(t, err)
}
