package runner

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
)

var quietLog = slog.New(slog.DiscardHandler)

// procHook calls after for every command the client ran, once it returned.
type procHook struct {
	after func(ctx context.Context, cmd redis.Cmder, err error)
}

func (h procHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h procHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h procHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.after(ctx, cmd, err)
		return err
	}
}

// hookedClient returns a new client on r's server (or cluster) with hook
// added.
func hookedClient(t *testing.T, r testutil.Redis, hook redis.Hook) redis.UniversalClient {
	t.Helper()
	c := testutil.OtherClient(t, r)
	if hook != nil {
		c.AddHook(hook)
	}
	return c
}

// scriptArg returns argument i of an EVAL/EVALSHA command that succeeded
// (err is what the command returned), or nil.
func scriptArg(cmd redis.Cmder, err error, i int) any {
	if n := cmd.Name(); (n != "evalsha" && n != "eval") || err != nil {
		return nil
	}
	args := cmd.Args()
	if i >= len(args) {
		return nil
	}
	return args[i]
}

// startRunner starts a runner and stops it at cleanup.
func startRunner(t *testing.T, cfg Config) *Runner {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLog
	}
	run, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, run.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = run.Stop(ctx)
	})
	return run
}

func newClient(t *testing.T, r testutil.Redis) *queue.Client {
	t.Helper()
	c, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quietLog})
	require.NoError(t, err)
	return c
}

// waitFor polls cond until it holds or timeout passes, and reports whether it
// held.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// queueOpts1 enqueues a job with a single attempt.
var queueOpts1 = queue.EnqueueOpts{MaxAttempts: 1}

// dq returns the keys of r's namespace's default queue.
func dq(r testutil.Redis) rdb.QKeys { return rdb.NewKeys(r.Namespace).Q("default") }
