package runner_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// The one helper set of the runner's tests: a bundle (client, registry,
// events, store) per Redis, runners started with test-friendly intervals and
// stopped at cleanup, and the default queue's keys.

var quiet = slog.New(slog.DiscardHandler)

// events collects lifecycle events delivered in-process.
type events struct {
	mu     sync.Mutex
	all    []jobtype.Event
	change chan struct{}
}

func newEvents() *events { return &events{change: make(chan struct{}, 1)} }

func (e *events) handle(_ context.Context, ev jobtype.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
	select {
	case e.change <- struct{}{}:
	default:
	}
}

// wait returns the first event of type typ for job id, waiting for it.
func (e *events) wait(t *testing.T, id string, typ jobtype.EventType) jobtype.Event {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		e.mu.Lock()
		for _, ev := range e.all {
			if ev.JobID == id && ev.Type == typ {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
		select {
		case <-e.change:
		case <-timeout:
			t.Fatalf("no %s event for job %s; saw %v", typ, id, e.types(id))
		}
	}
}

func (e *events) types(id string) []jobtype.EventType {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []jobtype.EventType
	for _, ev := range e.all {
		if ev.JobID == id {
			out = append(out, ev.Type)
		}
	}
	return out
}

type bundle struct {
	r      testutil.Redis
	client *queue.Client
	reg    *runner.Registry
	ev     *events
	store  *cursor.RedisStore
}

func setup(t *testing.T, r testutil.Redis) *bundle {
	t.Helper()
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
	require.NoError(t, err)
	store, err := cursor.NewRedisStore(r.Client, cursor.RedisConfig{Namespace: r.Namespace})
	require.NoError(t, err)
	return &bundle{r: r, client: client, reg: runner.NewRegistry(), ev: newEvents(), store: store}
}

// start starts a runner on the bundle's registry; it is stopped at cleanup.
func (b *bundle) start(t *testing.T, mod func(*runner.Config)) *runner.Runner {
	t.Helper()
	cfg := runner.Config{
		Redis: b.r.Client, Registry: b.reg, Namespace: b.r.Namespace, Logger: quiet,
		Concurrency: 4, CheckpointInterval: time.Hour, OnEvent: b.ev.handle,
		HeartbeatInterval: 100 * time.Millisecond, DeadAfter: time.Second,
		PollInterval: 20 * time.Millisecond, CancelCheckInterval: 20 * time.Millisecond,
		Backoff: func(int) time.Duration { return time.Millisecond },
	}
	if mod != nil {
		mod(&cfg)
	}
	run, err := runner.New(cfg)
	require.NoError(t, err)
	require.NoError(t, run.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = run.Stop(ctx)
	})
	return run
}

func stopRunner(t *testing.T, run *runner.Runner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, run.Stop(ctx))
}

// startRunner starts a runner with cfg as given (a quiet logger when it has
// none) and stops it at cleanup.
func startRunner(t *testing.T, cfg runner.Config) *runner.Runner {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	run, err := runner.New(cfg)
	require.NoError(t, err)
	require.NoError(t, run.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = run.Stop(ctx)
	})
	return run
}

// newClient returns a queue client on r's namespace.
func newClient(t *testing.T, r testutil.Redis) *queue.Client {
	t.Helper()
	c, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
	require.NoError(t, err)
	return c
}

// queueOpts1 enqueues a job with a single attempt.
var queueOpts1 = queue.EnqueueOpts{MaxAttempts: 1}

// dq returns the keys of r's namespace's default queue.
func dq(r testutil.Redis) rdb.QKeys { return rdb.NewKeys(r.Namespace).Q("default") }
