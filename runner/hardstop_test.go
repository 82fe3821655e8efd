package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/runner"
)

// slowBuild is an iterable job whose BuildEnumerator waits for its context,
// as any builder doing I/O (a first page query, opening a remote file) does.
type slowBuild struct{ building chan struct{} }

func (j slowBuild) BuildEnumerator(ctx context.Context, _ struct{}, c *int64) (enumerators.Enumerator[int64, int64], error) {
	close(j.building)
	<-ctx.Done()
	return nil, ctx.Err()
}

func (slowBuild) EachIteration(context.Context, struct{}, int64) error { return nil }

// A hard stop cancels job contexts and must re-enqueue iterable jobs ("iterable
// jobs resume from their last checkpoint"; an interruption "uses no
// attempt"). loop() checks interruptedBy for errors of EachIteration and of
// the enumerator, but errors before the loop (store Begin, the cancel-flag
// read, OnStart, OnResume, BuildEnumerator, and OnComplete after it) are
// recorded as failures: the job uses an attempt and waits for backoff, and a
// job on its last attempt dies because a deploy hard-stopped it.
func TestHardStopDuringBuildEnumeratorIsAnInterruption(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		job := slowBuild{building: make(chan struct{})}
		reg := runner.NewRegistry()
		runner.RegisterIterable(reg, "slow", job, nil)
		rr := startRunner(t, runner.Config{
			Redis: r.Client, Registry: reg, Namespace: r.Namespace,
			HeartbeatInterval: time.Hour, DeadAfter: 2 * time.Hour, PollInterval: time.Hour,
		})
		client := newClient(t, r)
		res, err := client.Enqueue(t.Context(), "slow", struct{}{}, &queueOpts1)
		require.NoError(t, err)
		<-job.building

		rr.Shutdown().HardStop()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		require.NoError(t, rr.Stop(ctx))

		require.Empty(t, r.Client.ZRange(ctx, dq(r).Dead(), 0, -1).Val(), "a hard stop killed job %s", res.Job.ID)
		require.Empty(t, r.Client.ZRange(ctx, dq(r).Retry(), 0, -1).Val(), "a hard stop counted as a failed attempt")
		require.Equal(t, int64(1), r.Client.LLen(ctx, dq(r).Jobs()).Val(), "the job is back in its queue")
	})
}
