package runner_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/runner"
)

// A run of a job recovered from dead workers makes its first items durable
// at once (checkpoints after its 1st, 2nd and 4th item, long before the
// checkpoint interval) and its first save forgives the recoveries: a job
// that progresses between crashes never becomes a poison pill, however
// fast its workers die. A run of a job never recovered saves nothing early.
func TestRecoveredRunCheckpointsItsFirstItemsAndIsForgiven(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r)
		job := newRecorder()
		job.pauseAt, job.paused, job.release = 5, make(chan struct{}), make(chan struct{})
		runner.RegisterIterable(b.reg, "count", job, nil)
		fresh := newRecorder()
		fresh.pauseAt, fresh.paused, fresh.release = 5, make(chan struct{}), make(chan struct{})
		runner.RegisterIterable(b.reg, "fresh", fresh, nil)

		res, err := b.client.Enqueue(ctx, "count", countArgs{N: 10}, nil)
		require.NoError(t, err)
		// As the reaper leaves it: recovered twice from dead workers.
		qk := dq(r).Jobs()
		env, err := rdb.ParseEnvelope(r.Client.LIndex(ctx, qk, 0).Val())
		require.NoError(t, err)
		env.Recovered = 2
		require.NoError(t, r.Client.LSet(ctx, qk, 0, string(env.Append(nil))).Err())
		other, err := b.client.Enqueue(ctx, "fresh", countArgs{N: 10}, nil)
		require.NoError(t, err)

		run := b.start(t, nil) // CheckpointInterval: an hour
		var releaseOnce sync.Once
		release := func() {
			releaseOnce.Do(func() {
				close(job.release)
				close(fresh.release)
			})
		}
		t.Cleanup(release) // before the runner stops, should a check fail
		<-job.paused
		<-fresh.paused
		// Items 0..4 are done and item 5 is running.
		st, err := b.store.Load(ctx, res.Job.ID)
		require.NoError(t, err)
		require.JSONEq(t, "4", string(st.Cursor), "saved after the 1st, 2nd and 4th item")
		require.Equal(t, cursor.StatusRunning, st.Status)
		held := r.Client.HGet(ctx, dq(r).Inflight(run.ProcessID()), res.Job.ID).Val()
		_, raw, ok := strings.Cut(held, "|")
		require.True(t, ok, held)
		env, err = rdb.ParseEnvelope(raw)
		require.NoError(t, err)
		require.Zero(t, env.Recovered, "a run that saved progress is forgiven")

		st, err = b.store.Load(ctx, other.Job.ID)
		require.NoError(t, err)
		require.Nil(t, st.Cursor, "a run of a job never recovered checkpoints at the interval only")

		release()
		b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		b.ev.wait(t, other.Job.ID, jobtype.EventSucceeded)
		job.requireEachOnce(t, 10)
	})
}
