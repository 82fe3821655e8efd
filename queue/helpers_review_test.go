package queue_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
)

// afterHook runs fn once, right after the first command that match accepts
// has been executed, before its reply reaches the caller: it puts another
// actor's change between two round trips of one API call.
type afterHook struct {
	match func(redis.Cmder) bool
	fn    func()
	fired bool
}

func (h *afterHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *afterHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *afterHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !h.fired && h.match(cmd) {
			h.fired = true
			h.fn()
		}
		return err
	}
}

// otherClient returns a new client on the same server as r.Client, closed at
// cleanup, so hooks added to it do not affect r.Client.
func otherClient(t *testing.T, r testutil.Redis) *redis.Client {
	t.Helper()
	c := redis.NewClient(freshOptions(r))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newConsumer(t *testing.T, r testutil.Redis, cc queue.ConsumerConfig) *queue.Consumer {
	t.Helper()
	cc.Namespace = r.Namespace
	cc.Logger = quiet
	c, err := queue.NewConsumer(r.Client, cc)
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return c
}

// freshOptions returns options for a new client on r's server.
func freshOptions(r testutil.Redis) *redis.Options {
	o := r.Client.(*redis.Client).Options()
	return &redis.Options{Addr: o.Addr, DB: o.DB, Username: o.Username, Password: o.Password}
}
