package testutil

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// AfterHook is a go-redis hook that runs Fn once, right after the first
// command that Match accepts has been executed, before its reply reaches the
// caller: it puts another actor's change between two round trips of one
// call.
type AfterHook struct {
	Match func(redis.Cmder) bool
	Fn    func()
	// fired is set once Fn ran; the client may run commands from several
	// goroutines (a subscription's reads among them).
	fired atomic.Bool
}

// DialHook implements redis.Hook.
func (h *AfterHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessPipelineHook implements redis.Hook.
func (h *AfterHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// ProcessHook implements redis.Hook.
func (h *AfterHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if h.Match(cmd) && h.fired.CompareAndSwap(false, true) {
			h.Fn()
		}
		return err
	}
}

// OtherClient returns a new client on the same server (or cluster) as
// r.Client, closed at cleanup, so hooks added to it do not affect r.Client.
func OtherClient(t testing.TB, r Redis) redis.UniversalClient {
	t.Helper()
	var c redis.UniversalClient
	if cc, ok := r.Client.(*redis.ClusterClient); ok {
		o := cc.Options()
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: o.Addrs, Username: o.Username, Password: o.Password})
	} else {
		c = redis.NewClient(FreshOptions(r))
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// FreshOptions returns options for a new client on r's server; r must not
// be a cluster (see SingleOnly).
func FreshOptions(r Redis) *redis.Options {
	o := r.Client.(*redis.Client).Options()
	return &redis.Options{Addr: o.Addr, DB: o.DB, Username: o.Username, Password: o.Password}
}

// SingleOnly skips t on a cluster, saying why: for tests that put a proxy
// or a server of their own in front of one Redis.
func SingleOnly(t testing.TB, r Redis, why string) {
	t.Helper()
	if _, ok := r.Client.(*redis.ClusterClient); ok {
		t.Skip("testutil: single Redis only: " + why)
	}
}

// CmdHook is a go-redis hook that calls After for every command the client
// ran, once it returned, with the command's error.
type CmdHook struct {
	After func(ctx context.Context, cmd redis.Cmder, err error)
}

// DialHook implements redis.Hook.
func (h CmdHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessPipelineHook implements redis.Hook.
func (h CmdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// ProcessHook implements redis.Hook.
func (h CmdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.After(ctx, cmd, err)
		return err
	}
}

// HookedClient returns a new client on r's server (or cluster) with hook
// added (when not nil), closed at cleanup.
func HookedClient(t testing.TB, r Redis, hook redis.Hook) redis.UniversalClient {
	t.Helper()
	c := OtherClient(t, r)
	if hook != nil {
		c.AddHook(hook)
	}
	return c
}

// ScriptArg returns argument i of an EVAL/EVALSHA command that succeeded
// (err is what the command returned), or nil.
func ScriptArg(cmd redis.Cmder, err error, i int) any {
	if n := cmd.Name(); (n != "evalsha" && n != "eval") || err != nil {
		return nil
	}
	args := cmd.Args()
	if i >= len(args) {
		return nil
	}
	return args[i]
}
