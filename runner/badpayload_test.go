package runner_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// A payload whose length fields overflow once panicked the fetch loop,
// outside any recover: the process died, the reaper handed the job to the
// next worker, which died too. A running runner must dead-letter it, with
// the parse error and the payload as stored, and go on.
func TestMalformedPayloadIsDeadLetteredAndTheRunnerGoesOn(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := &plain{}
		runner.Register(b.reg, "plain", job, nil)
		b.start(t, nil)
		ctx := t.Context()

		// A first job proves the runner is up and fetching.
		first, err := b.client.Enqueue(ctx, "plain", countArgs{}, nil)
		require.NoError(t, err)
		b.ev.wait(t, first.Job.ID, jobtype.EventSucceeded)

		const raw = "1|badjob|plain|default|1|0|-|0|0|9223372036854775807|9223372036854775807|{}"
		require.NoError(t, r.Client.RPush(ctx, dq(r).Jobs(), raw).Err())
		require.NoError(t, r.Client.Publish(ctx, rdb.NewKeys(r.Namespace).Notify(), "default").Err())
		good, err := b.client.Enqueue(ctx, "plain", countArgs{}, nil)
		require.NoError(t, err)
		b.ev.wait(t, good.Job.ID, jobtype.EventSucceeded)

		dead, err := b.client.SetJobs(ctx, queue.SetDead, 0, 10)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.Equal(t, "badjob", dead[0].ID)
		require.Equal(t, raw, dead[0].RawPayload)
		require.NotNil(t, dead[0].LastError)
		require.Contains(t, dead[0].LastError.Message, "invalid job payload")
		require.Contains(t, dead[0].LastError.Message, "exceed the 2 bytes left")
		require.Equal(t, 2, job.runs)
	})
}
