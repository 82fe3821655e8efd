package consumer_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

func TestScheduledJobsWaitUntilDue(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		later, err := b.client.Enqueue(ctx, "k", "later", &queue.EnqueueOpts{In: time.Hour})
		require.NoError(t, err)
		require.True(t, later.Scheduled)
		past, err := b.client.Enqueue(ctx, "k", "past", &queue.EnqueueOpts{At: time.Now().Add(-time.Minute)})
		require.NoError(t, err)
		require.False(t, past.Scheduled, "a job due in the past is queued at once")
		// Due in a second: long enough that a slow machine still sees it
		// not due at the first Promote below.
		dueAt := time.Now().Add(time.Second)
		soon, err := b.client.Enqueue(ctx, "k", "soon", &queue.EnqueueOpts{At: dueAt})
		require.NoError(t, err)
		require.True(t, soon.Scheduled)

		jobs, err := b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		require.Equal(t, past.Job.ID, jobs[0].ID)

		n, next, err := b.cons.Promote(ctx, 100)
		require.NoError(t, err)
		require.Zero(t, n, "nothing is due yet")
		require.WithinDuration(t, dueAt, next, 10*time.Millisecond, "the poller learns when the next job is due")

		testutil.Eventually(t, 5*time.Second, func() bool {
			n, _, err = b.cons.Promote(ctx, 100)
			require.NoError(t, err)
			return n == 1
		}, "the due job is promoted")
		jobs, err = b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		require.Equal(t, soon.Job.ID, jobs[0].ID)
		size, err := b.client.SetSize(ctx, queue.SetScheduled)
		require.NoError(t, err)
		require.Equal(t, int64(1), size, "the job due in an hour still waits")
	})
}

func TestUniqueJobs(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		opts := &queue.EnqueueOpts{UniqueKey: "backfill:acme|2026 ✓"}
		first, err := b.client.Enqueue(ctx, "backfill", nil, opts)
		require.NoError(t, err)
		require.False(t, first.Duplicate)
		dup, err := b.client.Enqueue(ctx, "backfill", nil, opts)
		require.NoError(t, err)
		require.True(t, dup.Duplicate, "the caller learns it was a duplicate")
		require.Equal(t, first.Job.ID, dup.Job.ID, "and which job holds the key")

		// Held while the job runs and across an interruption.
		jobs, err := b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Len(t, jobs, 1, "one job, not two")
		require.NoError(t, b.cons.Requeue(ctx, jobs[0], nil))
		dup, err = b.client.Enqueue(ctx, "backfill", nil, opts)
		require.NoError(t, err)
		require.True(t, dup.Duplicate, "an interruption keeps the key")
		jobs, err = b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Equal(t, "backfill:acme|2026 ✓", jobs[0].UniqueKey)

		// Released at success.
		_, err = b.cons.Ack(ctx, []consumer.Done{{Job: jobs[0]}})
		require.NoError(t, err)
		again, err := b.client.Enqueue(ctx, "backfill", nil, opts)
		require.NoError(t, err)
		require.False(t, again.Duplicate, "success releases the key")

		// Released at death.
		jobs, err = b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.NoError(t, b.cons.Kill(ctx, jobs[0], jobtype.NewJobError(errors.New("boom"), nil, 1, time.Now()), nil))
		again, err = b.client.Enqueue(ctx, "backfill", nil, opts)
		require.NoError(t, err)
		require.False(t, again.Duplicate, "death releases the key")

		// Released at cancel.
		_, err = b.client.Cancel(ctx, again.Job.ID)
		require.NoError(t, err)
		again, err = b.client.Enqueue(ctx, "backfill", nil, opts)
		require.NoError(t, err)
		require.False(t, again.Duplicate, "cancel releases the key")
	})
}

func TestUniqueForExpires(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		opts := &queue.EnqueueOpts{UniqueKey: "k", UniqueFor: 100 * time.Millisecond}
		first, err := b.client.Enqueue(ctx, "k", nil, opts)
		require.NoError(t, err)
		dup, err := b.client.Enqueue(ctx, "k", nil, opts)
		require.NoError(t, err)
		require.True(t, dup.Duplicate)
		time.Sleep(200 * time.Millisecond) // the TTL under test
		second, err := b.client.Enqueue(ctx, "k", nil, opts)
		require.NoError(t, err)
		require.False(t, second.Duplicate, "the key expired after UniqueFor")
		require.NotEqual(t, first.Job.ID, second.Job.ID)
	})
}

func TestCancelWaitingAndRunningJobs(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		queued, err := b.client.Enqueue(ctx, "k", 1, nil)
		require.NoError(t, err)
		scheduled, err := b.client.Enqueue(ctx, "k", 2, &queue.EnqueueOpts{In: time.Hour})
		require.NoError(t, err)
		running, err := b.client.Enqueue(ctx, "k", 3, nil)
		require.NoError(t, err)

		st, err := b.client.Cancel(ctx, queued.Job.ID)
		require.NoError(t, err)
		require.Equal(t, jobtype.StateQueued, st)
		st, err = b.client.Cancel(ctx, scheduled.Job.ID)
		require.NoError(t, err)
		require.Equal(t, jobtype.StateScheduled, st)

		jobs, err := b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Len(t, jobs, 1, "the cancelled queued job is gone")
		require.Equal(t, running.Job.ID, jobs[0].ID)
		flags, err := b.cons.CancelRequested(ctx, []*jobtype.Job{running.Job})
		require.NoError(t, err)
		require.False(t, flags[0])

		st, err = b.client.Cancel(ctx, running.Job.ID)
		require.NoError(t, err)
		require.Equal(t, jobtype.StateRunning, st)
		flags, err = b.cons.CancelRequested(ctx, []*jobtype.Job{running.Job})
		require.NoError(t, err)
		require.True(t, flags[0], "a running job is flagged for its runner")
		require.NoError(t, b.cons.Cancelled(ctx, jobs[0], nil))

		_, err = b.client.Cancel(ctx, "nosuchjob")
		require.ErrorIs(t, err, queue.ErrNotFound)
		size, err := b.client.SetSize(ctx, queue.SetScheduled)
		require.NoError(t, err)
		require.Zero(t, size)
	})
}

func TestPauseAndResumeQueue(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{IdleWake: time.Hour, Queues: []consumer.Queue{{Name: "a"}, {Name: "b"}}})
		ctx := t.Context()
		require.NoError(t, b.client.PauseQueue(ctx, "a"))
		_, err := b.client.Enqueue(ctx, "k", nil, &queue.EnqueueOpts{Queue: "a"})
		require.NoError(t, err)
		_, err = b.client.Enqueue(ctx, "k", nil, &queue.EnqueueOpts{Queue: "b"})
		require.NoError(t, err)
		jobs, err := b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		require.Equal(t, "b", jobs[0].Queue, "a paused queue is not fetched from")
		infos, err := b.client.Queues(ctx)
		require.NoError(t, err)
		require.Equal(t, "a", infos[0].Name)
		require.True(t, infos[0].Paused)
		require.Equal(t, int64(1), infos[0].Size)

		jobs, err = b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Empty(t, jobs)
		woke := make(chan struct{})
		go func() { b.cons.Wait(ctx); close(woke) }()
		require.NoError(t, b.client.ResumeQueue(ctx, "a"))
		select {
		case <-woke:
		case <-time.After(10 * time.Second):
			t.Fatal("resuming a queue did not wake the idle consumer")
		}
		jobs, err = b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		require.Equal(t, "a", jobs[0].Queue)
	})
}

func TestWeightedAndStrictQueueOrder(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		qs := []consumer.Queue{{Name: "default", Weight: 1}, {Name: "urgent", Weight: 10}}
		weighted := setup(t, r, consumer.Config{Queues: qs})
		strict := setup(t, r, consumer.Config{Queues: qs, StrictPriority: true})
		var params []queue.Params
		for range 600 {
			params = append(params, queue.Params{Kind: "k", Opts: &queue.EnqueueOpts{Queue: "urgent"}}, queue.Params{Kind: "k"})
		}
		_, err := weighted.client.EnqueueMany(ctx, params)
		require.NoError(t, err)

		for range 20 {
			jobs, err := strict.cons.Fetch(ctx, 1)
			require.NoError(t, err)
			require.Equal(t, "urgent", jobs[0].Queue, "strict priority takes the heaviest queue first")
		}
		counts := map[string]int{}
		for range 550 {
			jobs, err := weighted.cons.Fetch(ctx, 1)
			require.NoError(t, err)
			counts[jobs[0].Queue]++
		}
		ratio := float64(counts["urgent"]) / float64(counts["default"])
		t.Logf("weighted 10:1 fetches: %v (ratio %.1f)", counts, ratio)
		require.Greater(t, ratio, 5.0, "urgent is looked at first about ten times as often")
		require.Less(t, ratio, 20.0)
	})
}

func TestDeadSetKeepsErrorsAndIsCapped(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{DeadMaxJobs: 3})
		ctx := t.Context()
		var ids []string
		for i := range 5 {
			res, err := b.client.Enqueue(ctx, "k", i, nil)
			require.NoError(t, err)
			ids = append(ids, res.Job.ID)
		}
		jobs, err := b.cons.Fetch(ctx, 5)
		require.NoError(t, err)
		trace := []byte(strings.Repeat("frame\n", 2000))
		for i, j := range jobs {
			jerr := jobtype.NewJobError(&customErr{n: i}, trace, 1, time.Now())
			require.NoError(t, b.cons.Kill(ctx, j, jerr, nil))
			time.Sleep(2 * time.Millisecond) // deaths in distinct milliseconds, to check their order
		}
		dead, err := b.client.SetJobs(ctx, queue.SetDead, 0, 10)
		require.NoError(t, err)
		require.Len(t, dead, 3, "the dead set is capped by count, oldest deaths dropped")
		require.Equal(t, ids[4], dead[0].ID, "most recent death first")
		require.Equal(t, "custom failure 4", dead[0].LastError.Message)
		require.Equal(t, "*consumer_test.customErr", dead[0].LastError.Class)
		require.LessOrEqual(t, len(dead[0].LastError.Trace), jobtype.MaxTraceBytes+10, "the trace is bounded")
		require.True(t, strings.HasPrefix(dead[0].LastError.Trace, "frame\n"))
		require.Equal(t, jobtype.StateDead, dead[0].State)

		// Age cap.
		aged := setup(t, r, consumer.Config{DeadMaxAge: time.Millisecond})
		res, err := aged.client.Enqueue(ctx, "k", "x", nil)
		require.NoError(t, err)
		jobs, err = aged.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		time.Sleep(5 * time.Millisecond) // let the existing deaths age past DeadMaxAge
		require.NoError(t, aged.cons.Kill(ctx, jobs[0], jobtype.NewJobError(errors.New("x"), nil, 1, time.Now()), nil))
		dead, err = aged.client.SetJobs(ctx, queue.SetDead, 0, 10)
		require.NoError(t, err)
		require.Len(t, dead, 1, "deaths older than DeadMaxAge are dropped")
		require.Equal(t, res.Job.ID, dead[0].ID)
	})
}

type customErr struct{ n int }

func (e *customErr) Error() string { return "custom failure " + string(rune('0'+e.n)) }

func TestAdminListsMovesAndDeletes(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		var got []jobtype.Event
		events := make(chan jobtype.Event, 100)
		client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet, PublishEvents: true,
			OnEvent: func(_ context.Context, ev jobtype.Event) { got = append(got, ev) }})
		require.NoError(t, err)
		sub, err := client.Subscribe(ctx, nil)
		require.NoError(t, err)
		defer sub.Close()
		go func() {
			for ev := range sub.Events() {
				events <- ev
			}
		}()

		var ids []string
		for i := range 5 {
			res, err := client.Enqueue(ctx, "k", i, &queue.EnqueueOpts{Meta: map[string]string{"user": "zoë"}})
			require.NoError(t, err)
			ids = append(ids, res.Job.ID)
		}
		ev := <-events
		require.Equal(t, jobtype.EventEnqueued, ev.Type)
		require.Equal(t, ids[0], ev.JobID)
		require.Equal(t, "k", ev.Kind)
		require.Equal(t, map[string]string{"user": "zoë"}, ev.Meta)

		page, err := client.QueueJobs(ctx, queue.QueueDefault, 1, 2)
		require.NoError(t, err)
		require.Equal(t, []string{ids[1], ids[2]}, []string{page[0].ID, page[1].ID}, "pages follow queue order")
		infos, err := client.Queues(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(5), infos[0].Size)
		require.Greater(t, infos[0].Latency, time.Duration(0))

		require.NoError(t, client.DeleteQueued(ctx, queue.QueueDefault, ids[0]))
		require.ErrorIs(t, client.DeleteQueued(ctx, queue.QueueDefault, ids[0]), queue.ErrNotFound)
		for ev = <-events; ev.Type != jobtype.EventDeleted; ev = <-events {
		}
		require.Equal(t, ids[0], ev.JobID, "deleting through the admin API emits deleted")

		// Two failures: one to retry, one dead.
		jobs, err := b.cons.Fetch(ctx, 2)
		require.NoError(t, err)
		require.NoError(t, b.cons.Retry(ctx, jobs[0], time.Now().Add(time.Hour), jobtype.NewJobError(errors.New("later"), nil, 1, time.Now()), nil))
		require.NoError(t, b.cons.Kill(ctx, jobs[1], jobtype.NewJobError(errors.New("dead"), nil, 1, time.Now()), nil))

		retry, err := client.SetJobs(ctx, queue.SetRetry, 0, 10)
		require.NoError(t, err)
		require.Len(t, retry, 1)
		require.Equal(t, 2, retry[0].Attempt)
		require.Equal(t, "later", retry[0].LastError.Message)
		require.WithinDuration(t, time.Now().Add(time.Hour), retry[0].At, time.Minute)

		require.NoError(t, client.RunNow(ctx, queue.SetRetry, retry[0].ID))
		require.ErrorIs(t, client.RunNow(ctx, queue.SetRetry, retry[0].ID), queue.ErrNotFound)
		require.NoError(t, client.RunNow(ctx, queue.SetDead, jobs[1].ID), "retry from dead")
		page, err = client.QueueJobs(ctx, queue.QueueDefault, 0, 10)
		require.NoError(t, err)
		require.Len(t, page, 4, "5 enqueued, 1 deleted, 2 failed and run again")
		require.Equal(t, jobs[0].ID, page[2].ID, "run now puts jobs at the tail")
		require.Equal(t, jobs[1].ID, page[3].ID)

		s, err := client.Enqueue(ctx, "k", nil, &queue.EnqueueOpts{In: time.Hour})
		require.NoError(t, err)
		require.NoError(t, client.Kill(ctx, queue.SetScheduled, s.Job.ID))
		dead, err := client.SetJobs(ctx, queue.SetDead, 0, 10)
		require.NoError(t, err)
		require.Equal(t, s.Job.ID, dead[0].ID)
		require.NoError(t, client.Delete(ctx, queue.SetDead, s.Job.ID))
		require.ErrorIs(t, client.Delete(ctx, queue.SetDead, s.Job.ID), queue.ErrNotFound)
		for ev = <-events; ev.Type != jobtype.EventDeleted; ev = <-events {
		}
		require.Equal(t, s.Job.ID, ev.JobID)

		days, total, err := client.Stats(ctx, 3)
		require.NoError(t, err)
		require.Len(t, days, 3)
		require.Equal(t, time.Now().UTC().Format(time.DateOnly), days[0].Day)
		require.Equal(t, int64(2), days[0].Failed)
		require.Equal(t, int64(2), total.Failed)

		procs, err := client.Processes(ctx)
		require.NoError(t, err)
		require.NotEmpty(t, procs)
		require.Contains(t, []string{procs[0].ID}, b.cons.ProcessID())
		require.NotZero(t, procs[0].PID)
		require.Contains(t, []jobtype.EventType{got[0].Type}, jobtype.EventEnqueued, "the in-process handler sees events too")
	})
}

func TestClientMiddlewareAnnotatesAndStops(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		var calls atomic.Int32
		stop := errors.New("quota exceeded")
		client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet, Middleware: []queue.Middleware{
			func(ctx context.Context, j *jobtype.Job, next func(context.Context, *jobtype.Job) error) error {
				calls.Add(1)
				if j.Kind == "blocked" {
					return stop
				}
				if j.Meta == nil {
					j.Meta = map[string]string{}
				}
				j.Meta["request_id"] = "r-42"
				return next(ctx, j)
			},
		}})
		require.NoError(t, err)
		_, err = client.Enqueue(ctx, "blocked", nil, nil)
		require.ErrorIs(t, err, stop, "a middleware error stops the enqueue")
		res, err := client.Enqueue(ctx, "ok", nil, nil)
		require.NoError(t, err)
		require.Equal(t, "r-42", res.Job.Meta["request_id"])

		b := setup(t, r, consumer.Config{})
		jobs, err := b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Len(t, jobs, 1, "the stopped job was not added")
		require.Equal(t, "r-42", jobs[0].Meta["request_id"], "annotations travel with the job")
		require.NoError(t, b.cons.Requeue(ctx, jobs[0], nil))
		require.Equal(t, int32(2), calls.Load(), "an interruption re-enqueue does not run client middleware")
	})
}

// roundTrips counts round trips to Redis (a pipeline is one).
type roundTrips struct{ n atomic.Int64 }

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

func TestRoundTripsPerJob(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r, consumer.Config{})
		rt := &roundTrips{}
		r.Client.AddHook(rt)
		// Scripts are loaded once per process; count from a warm state.
		_, err := b.client.Enqueue(ctx, "warm", nil, nil)
		require.NoError(t, err)
		warm, err := b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		_, err = b.cons.Ack(ctx, []consumer.Done{{Job: warm[0]}})
		require.NoError(t, err)

		params := make([]queue.Params, 100)
		for i := range params {
			params[i] = queue.Params{Kind: "k"}
		}
		rt.n.Store(0)
		_, err = b.client.EnqueueMany(ctx, params)
		require.NoError(t, err)
		require.Equal(t, int64(1), rt.n.Load(), "100 jobs enqueued in one round trip")

		rt.n.Store(0)
		jobs, err := b.cons.Fetch(ctx, 100)
		require.NoError(t, err)
		require.Len(t, jobs, 100)
		require.Equal(t, int64(1), rt.n.Load(), "100 jobs fetched crash-safely in one round trip")

		rt.n.Store(0)
		done := make([]consumer.Done, len(jobs))
		for i, j := range jobs {
			done[i] = consumer.Done{Job: j}
		}
		stale, err := b.cons.Ack(ctx, done)
		require.NoError(t, err)
		require.Empty(t, stale)
		require.Equal(t, int64(1), rt.n.Load(), "100 jobs acknowledged in one round trip")
	})
}

// reapDead has live, beating, reap the processes that stopped beating, and
// returns how many jobs it recovered.
func reapDead(t *testing.T, live bundle) int {
	t.Helper()
	var n int
	testutil.Eventually(t, 5*time.Second, func() bool {
		_, err := live.cons.Heartbeat(t.Context(), nil)
		require.NoError(t, err)
		n, err = live.cons.Reap(t.Context())
		require.NoError(t, err)
		return n > 0
	}, "a dead process reaped")
	return n
}

func TestPoisonPillGoesToDeadSet(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		cc := consumer.Config{HeartbeatInterval: 20 * time.Millisecond, DeadAfter: 60 * time.Millisecond, MaxRecoveries: 2}
		live := setup(t, r, cc)
		res, err := live.client.Enqueue(ctx, "crashy", nil, nil)
		require.NoError(t, err)
		for crash := 1; crash <= 3; crash++ {
			victim := setup(t, r, cc)
			jobs, err := victim.cons.Fetch(ctx, 1)
			require.NoError(t, err)
			require.Len(t, jobs, 1, "crash %d: the job is handed out again", crash)
			require.Equal(t, crash-1, jobs[0].Recovered)
			require.Equal(t, 1, jobs[0].Attempt, "a recovery does not consume an attempt")
			if jobs[0].Recovered > 0 {
				// What the runner does before it runs a recovered job.
				require.NoError(t, victim.cons.MarkStarted(ctx, jobs[0]))
			}
			// The victim dies: it stops beating; the live process reaps it.
			require.Equal(t, 1, reapDead(t, live), "crash %d recovered", crash)
		}
		jobs, err := live.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Empty(t, jobs, "a job that killed its worker three times is not handed out a fourth")
		dead, err := live.client.SetJobs(ctx, queue.SetDead, 0, 10)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.Equal(t, res.Job.ID, dead[0].ID)
		require.Contains(t, dead[0].LastError.Message, "poison pill")
	})
}

// A job that processes fetch but never start (fetched ahead, then the
// process dies of something else) counts its first recovery only: it is
// never taken for a poison pill, however many such processes die. A job
// marked started counts every time.
func TestFetchedAheadJobIsNoPoisonPill(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		cc := consumer.Config{HeartbeatInterval: 20 * time.Millisecond, DeadAfter: 60 * time.Millisecond, MaxRecoveries: 2}
		live := setup(t, r, cc)
		ahead, err := live.client.Enqueue(ctx, "bystander", nil, nil)
		require.NoError(t, err)
		culprit, err := live.client.Enqueue(ctx, "crashy", nil, nil)
		require.NoError(t, err)
		recovered := map[string]int{}
		for crash := 1; crash <= 5; crash++ {
			victim := setup(t, r, cc)
			jobs, err := victim.cons.Fetch(ctx, 2)
			require.NoError(t, err)
			for _, j := range jobs {
				recovered[j.ID] = j.Recovered
				if j.ID == culprit.Job.ID && j.Recovered > 0 {
					require.NoError(t, victim.cons.MarkStarted(ctx, j))
				}
			}
			if crash <= 3 {
				require.Len(t, jobs, 2, "crash %d: both jobs are handed out again", crash)
				require.Equal(t, crash-1, recovered[culprit.Job.ID], "crash %d: the started job counts every recovery", crash)
			} else {
				require.Len(t, jobs, 1, "crash %d: the culprit is dead", crash)
			}
			require.Equal(t, min(crash-1, 1), recovered[ahead.Job.ID], "crash %d: the job never started counts its first recovery only", crash)
			require.Positive(t, reapDead(t, live), "crash %d recovered", crash)
			require.Zero(t, r.Client.Exists(ctx, rdb.NewKeys(r.Namespace).Q("default").Started(victim.cons.ProcessID())).Val(), "the reaper drops the dead process's marks")
		}
		dead, err := live.client.SetJobs(ctx, queue.SetDead, 0, 10)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.Equal(t, culprit.Job.ID, dead[0].ID)
		jobs, err := live.cons.Fetch(ctx, 2)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		require.Equal(t, ahead.Job.ID, jobs[0].ID, "the bystander still runs")
	})
}

// A start mark lives as long as its run: the ack or the end of the run drops
// it, and the marks of a process expire a day after the last was set (each
// mark refreshes them), so a process that dies unregistered leaves none for
// good.
func TestStartMarksAreDroppedWithTheRunAndExpire(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r, consumer.Config{})
		for range 2 {
			_, err := b.client.Enqueue(ctx, "k", nil, nil)
			require.NoError(t, err)
		}
		jobs, err := b.cons.Fetch(ctx, 2)
		require.NoError(t, err)
		require.Len(t, jobs, 2)
		key := b.q().Started(b.cons.ProcessID())
		for _, j := range jobs {
			require.NoError(t, b.cons.MarkStarted(ctx, j))
		}
		require.Equal(t, int64(2), r.Client.HLen(ctx, key).Val())
		ttl := r.Client.TTL(ctx, key).Val()
		require.Greater(t, ttl, 23*time.Hour)
		require.LessOrEqual(t, ttl, 24*time.Hour)

		require.NoError(t, r.Client.Expire(ctx, key, time.Minute).Err())
		require.NoError(t, b.cons.MarkStarted(ctx, jobs[0]))
		require.Greater(t, r.Client.TTL(ctx, key).Val(), 23*time.Hour, "each mark refreshes the marks' lifetime")

		stale, err := b.cons.Ack(ctx, []consumer.Done{{Job: jobs[0]}})
		require.NoError(t, err)
		require.Empty(t, stale)
		require.False(t, r.Client.HExists(ctx, key, jobs[0].ID).Val(), "the ack drops the mark")
		require.NoError(t, b.cons.Retry(ctx, jobs[1], time.Now().Add(time.Hour), &jobtype.JobError{Message: "x"}, nil))
		require.Zero(t, r.Client.Exists(ctx, key).Val(), "the end of the run drops the mark")
	})
}
