package queue

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
)

// A bug in the payload decoder must not crash an admin call: the listing
// shows the job with the panic as its error, stack included, and logs it.
func TestDecoderPanicIsContained(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		var logged strings.Builder
		client, err := NewClient(r.Client, Config{Namespace: r.Namespace, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
		require.NoError(t, err)
		// The decoder panics on jobs of kind "boom".
		boom := func(s string) (*jobtype.Job, error) {
			if strings.Contains(s, "|boom|") {
				panic("decoder bug")
			}
			return rdb.ParseJob(s)
		}
		client.parse = boom

		bad, err := client.Enqueue(ctx, "boom", nil, nil)
		require.NoError(t, err)
		_, err = client.Enqueue(ctx, "fine", nil, nil)
		require.NoError(t, err)

		listed, err := client.QueueJobs(ctx, QueueDefault, 0, 10)
		require.NoError(t, err)
		require.Len(t, listed, 2)
		require.Equal(t, bad.Job.ID, listed[0].ID)
		require.Contains(t, listed[0].LastError.Message, "invalid job payload: decoder panicked: decoder bug")
		require.Contains(t, listed[0].LastError.Trace, "decode_internal_test.go", "the stack is kept")
		require.Contains(t, logged.String(), "payload decoder panicked", "a decoder panic is logged")

	})
}
