package rdb

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"weak"

	"github.com/redis/go-redis/v9"
)

// reloadEvery bounds how often a cluster client's failing calls ask it to
// reload the cluster's layout.
const reloadEvery = 250 * time.Millisecond

// withReload holds the cluster clients that have a reloadHook.
var withReload sync.Map // weak.Pointer[redis.ClusterClient] → struct{}

// followFailovers makes c reload the cluster's layout soon after a call
// fails on the network or with CLUSTERDOWN, once per client however many
// DBs share it. go-redis learns that a replica was promoted from a MOVED
// reply, which a dead primary never sends, or from its periodic reload
// (ClusterStateReloadInterval, 60 s by default): until then every call to
// the dead primary's slots fails. With the hook, calls follow the new
// primary within a reload of the cluster electing it.
func followFailovers(c *redis.ClusterClient) {
	if _, loaded := withReload.LoadOrStore(weak.Make(c), struct{}{}); loaded {
		return
	}
	c.AddHook(&reloadHook{c: c})
}

// reloadHook asks its client to reload the cluster's layout after a call
// failed in a way a failover explains, at most every reloadEvery.
type reloadHook struct {
	c    *redis.ClusterClient
	last atomic.Int64 // UnixNano of the last reload asked for
}

func (h *reloadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *reloadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.after(err)
		return err
	}
}

func (h *reloadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.after(err)
		return err
	}
}

func (h *reloadHook) after(err error) {
	if err == nil || !failoverError(err) {
		return
	}
	now := time.Now().UnixNano()
	last := h.last.Load()
	if now-last < int64(reloadEvery) || !h.last.CompareAndSwap(last, now) {
		return
	}
	h.c.ReloadState(context.Background())
}

// failoverError reports whether err is what a call to a primary that died,
// or to a cluster without a primary for a slot, returns.
func failoverError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	return strings.HasPrefix(err.Error(), "CLUSTERDOWN")
}
