package consumer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

// eventLog collects the events a client handles in-process and those
// published on the namespace's channel.
type eventLog struct {
	mu      sync.Mutex
	handled []jobtype.Event
	sub     *queue.Subscription
}

func (l *eventLog) handle(_ context.Context, ev jobtype.Event) {
	l.mu.Lock()
	l.handled = append(l.handled, ev)
	l.mu.Unlock()
}

// last returns the last event handled in-process, which must be of type typ.
func (l *eventLog) last(t *testing.T, typ jobtype.EventType) jobtype.Event {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	require.NotEmpty(t, l.handled)
	ev := l.handled[len(l.handled)-1]
	require.Equal(t, typ, ev.Type)
	return ev
}

// published returns the next published event of type typ.
func (l *eventLog) published(t *testing.T, typ jobtype.EventType) jobtype.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-l.sub.Events():
			if ev.Type == typ {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event published", typ)
		}
	}
}

// eventClient returns a client on c that publishes events and handles them
// in-process, and its log, subscribed.
func eventClient(t *testing.T, r testutil.Redis, c redis.UniversalClient) (*queue.Client, *eventLog) {
	t.Helper()
	log := &eventLog{}
	client, err := queue.NewClient(c, queue.Config{Namespace: r.Namespace, Logger: quiet, PublishEvents: true, OnEvent: log.handle})
	require.NoError(t, err)
	log.sub, err = client.Subscribe(t.Context(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = log.sub.Close() })
	return client, log
}

// requireJob checks that ev describes job id of kind "report" in queue
// "reports" at attempt, with its meta.
func requireJob(t *testing.T, ev jobtype.Event, id string, attempt int) {
	t.Helper()
	require.Equal(t, id, ev.JobID)
	require.Equal(t, "report", ev.Kind)
	require.Equal(t, "reports", ev.Queue)
	require.Equal(t, attempt, ev.Attempt)
	require.Equal(t, map[string]string{"tenant": "acme"}, ev.Meta)
}

var reportOpts = queue.EnqueueOpts{Queue: "reports", Meta: map[string]string{"tenant": "acme"}}

// Events of admin calls carry the job's kind, queue, attempt and meta, in
// process and as published, like every other event.
func TestAdminEventsDescribeTheJob(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r, consumer.Config{Queues: []consumer.Queue{{Name: "reports", Weight: 1}}, PublishEvents: true})
		client, log := eventClient(t, r, r.Client)
		later := reportOpts
		later.In = time.Hour

		both := func(typ jobtype.EventType, id string, attempt int) jobtype.Event {
			t.Helper()
			ev := log.last(t, typ)
			requireJob(t, ev, id, attempt)
			pub := log.published(t, typ)
			requireJob(t, pub, id, attempt)
			return pub
		}

		// RunNow from the scheduled set.
		res, err := client.Enqueue(ctx, "report", 1, &later)
		require.NoError(t, err)
		log.published(t, jobtype.EventScheduled)
		require.NoError(t, client.RunNow(ctx, queue.SetScheduled, res.Job.ID))
		both(jobtype.EventEnqueued, res.Job.ID, 1)

		// A job that failed once waits in the retry set for its second
		// attempt: RunNow says so, then Kill.
		jobs, err := b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		require.NoError(t, b.cons.Retry(ctx, jobs[0], time.Now().Add(time.Hour), jobtype.NewJobError(context.Canceled, nil, 1, time.Now()), nil))
		require.NoError(t, client.RunNow(ctx, queue.SetRetry, res.Job.ID))
		both(jobtype.EventEnqueued, res.Job.ID, 2)
		jobs, err = b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.NoError(t, b.cons.Retry(ctx, jobs[0], time.Now().Add(time.Hour), jobtype.NewJobError(context.Canceled, nil, 2, time.Now()), nil))
		require.NoError(t, client.Kill(ctx, queue.SetRetry, res.Job.ID))
		dead := both(jobtype.EventDead, res.Job.ID, 3)
		require.Equal(t, "killed through the admin API", dead.Error)

		// Delete from the dead set.
		require.NoError(t, client.Delete(ctx, queue.SetDead, res.Job.ID))
		both(jobtype.EventDeleted, res.Job.ID, 3)

		// Cancel a scheduled job, and a queued one.
		sched, err := client.Enqueue(ctx, "report", 2, &later)
		require.NoError(t, err)
		st, err := client.Cancel(ctx, sched.Job.ID)
		require.NoError(t, err)
		require.Equal(t, jobtype.StateScheduled, st)
		both(jobtype.EventCancelled, sched.Job.ID, 1)
		queued, err := client.Enqueue(ctx, "report", 3, &reportOpts)
		require.NoError(t, err)
		st, err = client.Cancel(ctx, queued.Job.ID)
		require.NoError(t, err)
		require.Equal(t, jobtype.StateQueued, st)
		both(jobtype.EventCancelled, queued.Job.ID, 1)

		// DeleteQueued.
		queued, err = client.Enqueue(ctx, "report", 4, &reportOpts)
		require.NoError(t, err)
		require.NoError(t, client.DeleteQueued(ctx, "reports", queued.Job.ID))
		both(jobtype.EventDeleted, queued.Job.ID, 1)

		// A job whose cancellation is pending when it is fetched is
		// dropped by the fetch, which publishes its cancelled event.
		queued, err = client.Enqueue(ctx, "report", 5, &reportOpts)
		require.NoError(t, err)
		jobs, err = b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		st, err = client.Cancel(ctx, queued.Job.ID)
		require.NoError(t, err)
		require.Equal(t, jobtype.StateRunning, st)
		require.NoError(t, b.cons.Requeue(ctx, jobs[0], nil))
		none, err := b.cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Empty(t, none, "the cancelled job is dropped")
		requireJob(t, log.published(t, jobtype.EventCancelled), queued.Job.ID, 1)
	})
}

// An admin call builds its event from the job as it read it, and moves the
// job only if it is still that job: if it ran and came back meanwhile (an
// attempt later), the call reads it again, and the event is the new one's.
func TestAdminEventIsBuiltFromTheJobAsMoved(t *testing.T) {
	t.Parallel()
	for _, call := range []struct {
		name string
		do   func(ctx context.Context, c *queue.Client, id string) error
		typ  jobtype.EventType
	}{
		{"RunNow", func(ctx context.Context, c *queue.Client, id string) error { return c.RunNow(ctx, queue.SetRetry, id) }, jobtype.EventEnqueued},
		{"Kill", func(ctx context.Context, c *queue.Client, id string) error { return c.Kill(ctx, queue.SetRetry, id) }, jobtype.EventDead},
		{"Cancel", func(ctx context.Context, c *queue.Client, id string) error {
			st, err := c.Cancel(ctx, id)
			if err == nil && st != jobtype.StateRetry {
				return fmt.Errorf("cancelled in state %s, want retry", st)
			}
			return err
		}, jobtype.EventCancelled},
	} {
		t.Run(call.name, func(t *testing.T) {
			t.Parallel()
			testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
				ctx := t.Context()
				b := setup(t, r, consumer.Config{Queues: []consumer.Queue{{Name: "reports", Weight: 1}}})
				res, err := b.client.Enqueue(ctx, "report", 1, &reportOpts)
				require.NoError(t, err)
				retry := func(attempt int) {
					jobs, err := b.cons.Fetch(ctx, 1)
					require.NoError(t, err)
					require.Len(t, jobs, 1)
					require.NoError(t, b.cons.Retry(ctx, jobs[0], time.Now().Add(time.Hour), jobtype.NewJobError(context.Canceled, nil, attempt, time.Now()), nil))
				}
				retry(1) // waits for attempt 2

				hc := testutil.OtherClient(t, r)
				hc.AddHook(&testutil.AfterHook{
					Match: func(c redis.Cmder) bool { return c.Name() == "hget" },
					// Between the read and the move, the job runs its second
					// attempt, fails again and waits for its third.
					Fn: func() {
						require.NoError(t, b.client.RunNow(context.Background(), queue.SetRetry, res.Job.ID))
						retry(2)
					},
				})
				client, log := eventClient(t, r, hc)
				require.NoError(t, call.do(ctx, client, res.Job.ID))
				requireJob(t, log.last(t, call.typ), res.Job.ID, 3)
				requireJob(t, log.published(t, call.typ), res.Job.ID, 3)
			})
		})
	}
}
