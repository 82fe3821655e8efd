package consumer

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

// A bug in the payload decoder must not crash a worker: the panic becomes
// an ErrInvalidPayload error with its stack, the job goes to the dead set
// and the fetch goes on.
func TestDecoderPanicIsContained(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		quiet := slog.New(slog.DiscardHandler)
		client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
		require.NoError(t, err)
		cons, err := New(r.Client, Config{Namespace: r.Namespace, Logger: quiet})
		require.NoError(t, err)
		require.NoError(t, cons.Start(ctx))
		t.Cleanup(func() { _ = cons.Stop(context.Background()) })
		// The decoder panics on jobs of kind "boom".
		boom := func(s string) (*jobtype.Job, error) {
			if strings.Contains(s, "|boom|") {
				panic("decoder bug")
			}
			return rdb.ParseJob(s)
		}
		cons.parse = boom

		bad, err := client.Enqueue(ctx, "boom", nil, nil)
		require.NoError(t, err)
		good, err := client.Enqueue(ctx, "fine", nil, nil)
		require.NoError(t, err)

		jobs, err := cons.Fetch(ctx, 10)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		require.Equal(t, good.Job.ID, jobs[0].ID)

		dead, err := client.SetJobs(ctx, queue.SetDead, 0, 10)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.Equal(t, bad.Job.ID, dead[0].ID)
		require.Contains(t, dead[0].LastError.Message, "decoder panicked: decoder bug")
		require.Contains(t, dead[0].LastError.Trace, "decode_internal_test.go")
	})
}
