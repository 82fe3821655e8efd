package consumer_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

// hugeLengths returns a job envelope whose two length fields are the
// largest int64: their sum overflows, which once passed the parser's bounds
// check and panicked the process (every worker that fetched it, in turn).
func hugeLengths(id string, enqueuedAt time.Time) string {
	return "1|" + id + "|email|default|1|0|-|0|" + strconv.FormatInt(enqueuedAt.UnixMicro(), 10) +
		"|9223372036854775807|9223372036854775807|{}"
}

func TestMalformedPayloadIsListedAndDeadLettered(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r, consumer.Config{})
		ctx := t.Context()
		enqueued := time.Now().Add(-time.Minute)
		raw := hugeLengths("badjob", enqueued)
		require.NoError(t, r.Client.RPush(ctx, b.q().Jobs(), raw).Err())
		require.NoError(t, r.Client.SAdd(ctx, b.keys().Queues(), "default").Err())
		good, err := b.client.Enqueue(ctx, "email", nil, nil)
		require.NoError(t, err)

		qs, err := b.client.Queues(ctx)
		require.NoError(t, err)
		require.Len(t, qs, 1)
		require.Equal(t, int64(2), qs[0].Size)
		require.InDelta(t, time.Minute, qs[0].Latency, float64(10*time.Second), "the latency is read from the header")

		listed, err := b.client.QueueJobs(ctx, "default", 0, 10)
		require.NoError(t, err)
		require.Len(t, listed, 2)
		require.Equal(t, "badjob", listed[0].ID)
		require.Equal(t, raw, listed[0].RawPayload)
		require.Equal(t, jobtype.StateQueued, listed[0].State)
		require.NotNil(t, listed[0].LastError)
		require.Contains(t, listed[0].LastError.Message, "invalid job payload")
		require.Contains(t, listed[0].LastError.Message, "exceed the 2 bytes left")
		require.Equal(t, good.Job.ID, listed[1].ID)
		require.Empty(t, listed[1].RawPayload)

		jobs, err := b.cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Len(t, jobs, 1, "the bad payload is not handed out, the good job is")
		require.Equal(t, good.Job.ID, jobs[0].ID)

		dead, err := b.client.SetJobs(ctx, queue.SetDead, 0, 10)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.Equal(t, "badjob", dead[0].ID)
		require.Equal(t, jobtype.StateDead, dead[0].State)
		require.Equal(t, raw, dead[0].RawPayload, "the payload is kept as stored")
		require.NotNil(t, dead[0].LastError)
		require.Contains(t, dead[0].LastError.Message, "invalid job payload")
		require.Contains(t, dead[0].LastError.Message, "lengths 9223372036854775807+9223372036854775807")
		require.WithinDuration(t, time.Now(), dead[0].LastError.At, time.Minute, "the error recorded at death is shown")

		// A bad payload waiting in the scheduled set lists too.
		require.NoError(t, r.Client.HSet(ctx, b.q().Parked(), "badsched", hugeLengths("badsched", enqueued)).Err())
		require.NoError(t, r.Client.ZAdd(ctx, b.q().Sched(), redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: "badsched"}).Err())
		sched, err := b.client.SetJobs(ctx, queue.SetScheduled, 0, 10)
		require.NoError(t, err)
		require.Len(t, sched, 1)
		require.Equal(t, "badsched", sched[0].ID)
		require.NotNil(t, sched[0].LastError)
		require.Contains(t, sched[0].LastError.Message, "invalid job payload")
		require.NotEmpty(t, sched[0].RawPayload)
	})
}
