package consumer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
)

// holdHook holds the first command whose arguments mention "started" until
// release is closed, after closing entered.
type holdHook struct {
	entered, release chan struct{}
	held             *bool
}

func (h holdHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h holdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h holdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !*h.held && strings.Contains(fmt.Sprint(cmd.Args()...), `"started"`) {
			*h.held = true
			close(h.entered)
			<-h.release
		}
		return next(ctx, cmd)
	}
}

// A job's events reach the stream in the order they happened: the ack of a
// job cannot overtake the slower call still carrying its "started" event, so
// a subscriber never sees a job start after it succeeded.
func TestEventsOfAJobReachTheStreamInOrder(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		held := false
		hook := holdHook{entered: make(chan struct{}), release: make(chan struct{}), held: &held}
		c := testutil.HookedClient(t, r, hook)
		b := setup(t, r, consumer.Config{})
		cons, err := consumer.New(c, consumer.Config{Namespace: r.Namespace, Logger: quiet, PublishEvents: true})
		require.NoError(t, err)
		require.NoError(t, cons.Start(ctx))
		t.Cleanup(func() { _ = cons.Stop(context.Background()) })

		res, err := b.client.Enqueue(ctx, "report", 1, nil)
		require.NoError(t, err)
		jobs, err := cons.Fetch(ctx, 1)
		require.NoError(t, err)
		require.Len(t, jobs, 1)

		// The "started" event waits for a carrier; no queue change comes, so
		// the flush loop writes it, and the hook holds that call.
		cons.Publish(ctx, jobtype.NewEvent(jobtype.EventStarted, jobs[0], time.Now()))
		select {
		case <-hook.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the buffered event was never written")
		}
		acked := make(chan error, 1)
		go func() {
			_, err := cons.Ack(ctx, []consumer.Done{{Job: jobs[0]}})
			acked <- err
		}()
		select {
		case err := <-acked:
			close(hook.release)
			t.Fatalf("the ack (err %v) returned while the call carrying the job's earlier event was still in flight", err)
		case <-time.After(200 * time.Millisecond):
		}
		close(hook.release)
		require.NoError(t, <-acked)

		entries, err := r.Client.XRange(ctx, rdb.NewKeys(r.Namespace).Events(), "-", "+").Result()
		require.NoError(t, err)
		var types []string
		for _, e := range entries {
			s := fmt.Sprint(e.Values)
			for _, typ := range []string{"started", "succeeded"} {
				if strings.Contains(s, `"`+typ+`"`) && strings.Contains(s, res.Job.ID) {
					types = append(types, typ)
				}
			}
		}
		require.Equal(t, []string{"started", "succeeded"}, types)
	})
}
