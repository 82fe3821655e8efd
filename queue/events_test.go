package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

// next returns the next event of s, failing after a few seconds.
func next(t *testing.T, s *queue.Subscription) jobtype.Event {
	t.Helper()
	select {
	case ev, ok := <-s.Events():
		require.True(t, ok, "the subscription ended")
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
		return jobtype.Event{}
	}
}

// Events come from a stream: a subscriber that reconnects with the id of
// the last event it handled gets every event after it, those of a batch
// included, and nothing twice.
func TestSubscriptionResumesAfterAnEventID(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		c, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet, PublishEvents: true})
		require.NoError(t, err)
		sub, err := c.Subscribe(ctx, nil)
		require.NoError(t, err)
		// One batch of three events, then one more.
		res, err := c.EnqueueMany(ctx, []queue.Params{{Kind: "a"}, {Kind: "b"}, {Kind: "c"}})
		require.NoError(t, err)
		first := next(t, sub)
		require.Equal(t, res[0].Job.ID, first.JobID)
		require.Equal(t, jobtype.EventEnqueued, first.Type)
		require.NotEmpty(t, first.ID)
		require.NoError(t, sub.Close())

		// Meanwhile, more happens.
		d, err := c.Enqueue(ctx, "d", nil, nil)
		require.NoError(t, err)

		again, err := c.Subscribe(ctx, &queue.SubscribeOpts{After: first.ID})
		require.NoError(t, err)
		defer again.Close()
		var ids []string
		var last string
		for range 3 {
			ev := next(t, again)
			ids = append(ids, ev.JobID)
			require.NotEqual(t, last, ev.ID)
			last = ev.ID
		}
		require.Equal(t, []string{res[1].Job.ID, res[2].Job.ID, d.Job.ID}, ids, "the rest of the batch, then the next event")

		// "0" starts with the oldest event kept.
		all, err := c.Subscribe(ctx, &queue.SubscribeOpts{After: "0"})
		require.NoError(t, err)
		defer all.Close()
		require.Equal(t, res[0].Job.ID, next(t, all).JobID)

		_, err = c.Subscribe(ctx, &queue.SubscribeOpts{After: "not-an-id"})
		require.ErrorIs(t, err, queue.ErrInvalidEventID)
	})
}

// A subscription after EventsPosition gets exactly the events written after
// the position was taken, even those written before Subscribe; on an empty
// stream too.
func TestSubscriptionAfterEventsPosition(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		c, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet, PublishEvents: true})
		require.NoError(t, err)

		empty, err := c.EventsPosition(ctx)
		require.NoError(t, err)
		before, err := c.EnqueueMany(ctx, []queue.Params{{Kind: "a"}, {Kind: "b"}})
		require.NoError(t, err)
		pos, err := c.EventsPosition(ctx)
		require.NoError(t, err)
		// Written after the position, before anyone subscribes.
		between, err := c.Enqueue(ctx, "c", nil, nil)
		require.NoError(t, err)

		sub, err := c.Subscribe(ctx, &queue.SubscribeOpts{After: pos})
		require.NoError(t, err)
		defer sub.Close()
		require.Equal(t, between.Job.ID, next(t, sub).JobID, "the event between the position and Subscribe, and none before it")

		fromEmpty, err := c.Subscribe(ctx, &queue.SubscribeOpts{After: empty})
		require.NoError(t, err)
		defer fromEmpty.Close()
		for _, want := range []string{before[0].Job.ID, before[1].Job.ID, between.Job.ID} {
			require.Equal(t, want, next(t, fromEmpty).JobID)
		}
	})
}

// A subscription to one job delivers only its events and ends after its
// final one.
func TestSubscriptionToOneJobEndsWithIt(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		c, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet, PublishEvents: true})
		require.NoError(t, err)
		mine, err := c.Enqueue(ctx, "mine", nil, &queue.EnqueueOpts{In: time.Hour})
		require.NoError(t, err)
		sub, err := c.Subscribe(ctx, &queue.SubscribeOpts{After: "0", JobID: mine.Job.ID})
		require.NoError(t, err)
		defer sub.Close()
		_, err = c.Enqueue(ctx, "other", nil, nil)
		require.NoError(t, err)
		require.NoError(t, c.Delete(ctx, queue.SetScheduled, mine.Job.ID))

		require.Equal(t, jobtype.EventScheduled, next(t, sub).Type)
		deleted := next(t, sub)
		require.Equal(t, jobtype.EventDeleted, deleted.Type)
		require.Equal(t, "mine", deleted.Kind)
		select {
		case _, ok := <-sub.Events():
			require.False(t, ok, "the subscription ends after the job's final event")
		case <-time.After(10 * time.Second):
			t.Fatal("the subscription did not end")
		}
	})
}

// The stream keeps about EventsMax events: the oldest go first, and a
// subscriber resuming after one of them is told it missed some.
func TestEventsStreamIsCappedAndTrimmingIsReported(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		c, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet, PublishEvents: true, EventsMax: 10})
		require.NoError(t, err)
		sub, err := c.Subscribe(ctx, &queue.SubscribeOpts{After: "0"})
		require.NoError(t, err)
		_, err = c.Enqueue(ctx, "first", nil, nil)
		require.NoError(t, err)
		first := next(t, sub)
		require.NoError(t, sub.Close())
		for range 30 {
			_, err = c.Enqueue(ctx, "k", nil, nil)
			require.NoError(t, err)
		}
		n, err := r.Client.XLen(ctx, "{"+r.Namespace+"}:events").Result()
		require.NoError(t, err)
		require.LessOrEqual(t, n, int64(10), "the stream is trimmed")

		late, err := c.Subscribe(context.Background(), &queue.SubscribeOpts{After: first.ID})
		require.NoError(t, err)
		defer late.Close()
		select {
		case err := <-late.Errors():
			require.ErrorIs(t, err, queue.ErrEventsTrimmed)
		case <-time.After(10 * time.Second):
			t.Fatal("no report of the missed events")
		}
		require.Equal(t, "k", next(t, late).Kind, "it goes on from the oldest kept")
	})
}
