package queue_test

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
)

// replyDropper is a TCP proxy in front of Redis. Once armed, it lets the next
// EVALSHA through to Redis, so the script runs, and then closes the client's
// connection instead of passing the reply on: a reply lost to a dropped
// connection. go-redis retries a command that fails with io.EOF, so the
// script runs a second time.
type replyDropper struct {
	ln      net.Listener
	target  string
	armed   atomic.Bool
	dropped atomic.Int32
	wg      sync.WaitGroup
}

func newReplyDropper(t *testing.T, target string) *replyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &replyDropper{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func (p *replyDropper) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		var drop atomic.Bool
		p.wg.Add(2)
		go func() { // client -> Redis
			defer p.wg.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if bytes.Contains(bytes.ToLower(buf[:n]), []byte("evalsha")) && p.armed.CompareAndSwap(true, false) {
						drop.Store(true)
					}
					if _, werr := s.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					_ = s.Close()
					return
				}
			}
		}()
		go func() { // Redis -> client
			defer p.wg.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 && drop.Load() {
					p.dropped.Add(1)
					_ = c.Close()
					_ = s.Close()
					return
				}
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					_ = c.Close()
					return
				}
			}
		}()
	}
}

func proxiedClient(t *testing.T, r testutil.Redis) (*redis.Client, *replyDropper) {
	t.Helper()
	testutil.SingleOnly(t, r, "the proxy that drops replies stands in front of one server")
	o := testutil.FreshOptions(r)
	p := newReplyDropper(t, o.Addr)
	o.Addr = p.ln.Addr().String()
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c, p
}

// The enqueue script is not idempotent, yet go-redis retries it when its
// reply is lost (the runner relies on that retry happening for fetches, see
// sweepOrphans). The retried call adds the same job a second time: two
// envelopes with one id, so the job runs twice, possibly at once (the
// in-flight hash and the runner's bookkeeping are keyed by id, and a fetch of
// both copies into one process files them under one field).
func TestEnqueueWhoseReplyIsLostAddsTheJobOnce(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		c, p := proxiedClient(t, r)
		client, err := queue.NewClient(c, queue.Config{Namespace: r.Namespace, Logger: quiet})
		require.NoError(t, err)
		_, err = client.Enqueue(ctx, "warmup", nil, nil) // the script is cached: the next call is an EVALSHA
		require.NoError(t, err)

		p.armed.Store(true)
		res, err := client.Enqueue(ctx, "k", 1, nil)
		require.NoError(t, err, "go-redis retried the call transparently")
		require.EqualValues(t, 1, p.dropped.Load(), "one reply was lost")

		envs := r.Client.LRange(ctx, rdb.NewKeys(r.Namespace).Q("default").Jobs(), 0, -1).Val()
		copies := 0
		for _, e := range envs {
			if bytes.HasPrefix([]byte(e), []byte("1|"+res.Job.ID+"|")) {
				copies++
			}
		}
		require.Equal(t, 1, copies, "job %s is queued once", res.Job.ID)
	})
}

// The same retry makes a unique job report itself as its own duplicate: the
// caller is told nothing was added while the job was added.
func TestUniqueEnqueueWhoseReplyIsLostIsNotReportedAsDuplicate(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		c, p := proxiedClient(t, r)
		client, err := queue.NewClient(c, queue.Config{Namespace: r.Namespace, Logger: quiet})
		require.NoError(t, err)
		_, err = client.Enqueue(ctx, "warmup", nil, nil)
		require.NoError(t, err)

		p.armed.Store(true)
		res, err := client.Enqueue(ctx, "k", 1, &queue.EnqueueOpts{UniqueKey: "only-one"})
		require.NoError(t, err)
		require.EqualValues(t, 1, p.dropped.Load())
		require.Equal(t, int64(2), r.Client.LLen(ctx, rdb.NewKeys(r.Namespace).Q("default").Jobs()).Val(), "warmup + the unique job")
		require.False(t, res.Duplicate, "the job this call added (%s) is not a duplicate of another", res.Job.ID)
	})
}
