package completer_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/iterjob/iterjob/internal/completer"
	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/exec"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/shutdown"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
		goleak.IgnoreAnyFunction("github.com/alicebob/miniredis/v2/server.(*Server).servePeer"),
	)
}

var quiet = slog.New(slog.DiscardHandler)

// alive is a heartbeat that finds nothing to repair.
type alive struct{}

func (alive) Beat(context.Context) bool { return true }
func (alive) Restores() int64           { return 0 }

// Acknowledgements made while Redis is unreachable are written once it is
// back, nothing is dropped, and every run is forgotten only after its ack
// is recorded.
func TestAcksMadeDuringAnOutageAreWrittenWhenRedisReturns(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	ctx := t.Context()
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
	require.NoError(t, err)
	cons, err := consumer.New(r.Client, consumer.Config{Namespace: r.Namespace, Logger: quiet, ProcessID: "p1"})
	require.NoError(t, err)
	require.NoError(t, cons.Start(ctx))
	t.Cleanup(func() { _ = cons.Stop(context.Background()) })
	for range 3 {
		_, err := client.Enqueue(ctx, "report", 1, nil)
		require.NoError(t, err)
	}
	jobs, err := cons.Fetch(ctx, 3)
	require.NoError(t, err)
	require.Len(t, jobs, 3)
	require.EqualValues(t, 3, r.Client.HLen(ctx, rdb.NewKeys(r.Namespace).Q("default").Inflight("p1")).Val())

	sd, err := shutdown.New(shutdown.Config{})
	require.NoError(t, err)
	var mu sync.Mutex
	forgotten := map[string]bool{}
	inflight := rdb.NewKeys(r.Namespace).Q("default").Inflight("p1")
	c := completer.New(completer.Config{
		Consumer: cons, Liveness: alive{}, Shutdown: sd, Buffer: 8, FinishTimeout: time.Second, Logger: quiet,
		Forget: func(es ...*exec.Execution) {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range es {
				forgotten[e.Job.ID] = true
			}
		},
	})
	c.Start()

	r.Mini.Close()
	for _, j := range jobs {
		c.Complete(ctx, exec.NewExecution(j), exec.Outcome{Action: exec.Ack})
	}
	time.Sleep(50 * time.Millisecond) // the first ack fails at least once
	mu.Lock()
	require.Empty(t, forgotten, "no run is forgotten before its ack is written")
	mu.Unlock()
	require.NoError(t, r.Mini.Restart())

	require.True(t, c.Close(15*time.Second), "the acks were written once Redis came back")
	require.Len(t, forgotten, 3)
	require.Zero(t, r.Client.HLen(ctx, inflight).Val(), "no job is left in flight")
	require.Zero(t, r.Client.LLen(ctx, rdb.NewKeys(r.Namespace).Q("default").Jobs()).Val(), "and none went back to its queue")
}
