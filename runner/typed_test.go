package runner_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// ReindexArgs name their kind, so registration and enqueue share it.
type ReindexArgs struct {
	Docs int64 `json:"docs"`
}

func (ReindexArgs) Kind() string { return "reindex" }

// PingArgs is a plain job's typed arguments.
type PingArgs struct{ Host string }

func (PingArgs) Kind() string { return "ping" }

type reindex struct {
	mu   sync.Mutex
	seen []int64
}

func (j *reindex) BuildEnumerator(_ context.Context, a ReindexArgs, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(0, a.Docs, c), nil
}

func (j *reindex) EachIteration(_ context.Context, _ ReindexArgs, doc int64) error {
	j.mu.Lock()
	j.seen = append(j.seen, doc)
	j.mu.Unlock()
	return nil
}

func (j *reindex) items() []int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]int64(nil), j.seen...)
}

type ping struct{ hosts chan string }

func (p ping) Perform(_ context.Context, a PingArgs) error { p.hosts <- a.Host; return nil }

// Typed jobs: the kind comes from the arguments' type at registration and
// at enqueue; a client given the registry refuses kinds nobody registered,
// in either form, and adds nothing.
func TestTypedJobsRunUnderTheirArgsKind(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r)
		job := &reindex{}
		runner.RegisterIterableArgs(b.reg, job, nil)
		p := ping{hosts: make(chan string, 1)}
		runner.RegisterArgs(b.reg, p, nil)
		client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet, Kinds: b.reg})
		require.NoError(t, err)
		b.start(t, nil)

		res, err := client.EnqueueArgs(ctx, ReindexArgs{Docs: 5}, nil)
		require.NoError(t, err)
		require.Equal(t, "reindex", res.Job.Kind)
		b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
		require.Equal(t, []int64{0, 1, 2, 3, 4}, job.items())

		_, err = client.EnqueueMany(ctx, []queue.Params{{Args: PingArgs{Host: "db1"}}})
		require.NoError(t, err, "EnqueueMany takes the kind from typed args too")
		require.Equal(t, "db1", <-p.hosts)

		_, err = client.Enqueue(ctx, "reindx", ReindexArgs{Docs: 1}, nil)
		require.ErrorIs(t, err, queue.ErrUnknownKind)
		_, err = client.EnqueueMany(ctx, []queue.Params{{Args: PingArgs{}}, {Kind: "nobody", Args: 1}})
		require.ErrorIs(t, err, queue.ErrUnknownKind)
		qs, err := client.Queues(ctx)
		require.NoError(t, err)
		for _, q := range qs {
			require.Zero(t, q.Size, "a refused batch adds nothing")
		}

		other, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet, Kinds: queue.KnownKinds("ping")})
		require.NoError(t, err)
		_, err = other.EnqueueArgs(ctx, ReindexArgs{}, nil)
		require.ErrorIs(t, err, queue.ErrUnknownKind, "a client that lists its kinds refuses the others")
	})
}

// StartCursor starts an iterable job's first run at a given cursor, on
// either store; a later run resumes from its own saved cursor; a start
// cursor of the wrong shape fails the job once, without retries, saying so.
func TestIterableJobStartsAtTheGivenCursor(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"redis-store", "memory-store"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
				ctx := t.Context()
				b := setup(t, r)
				job := &reindex{}
				runner.RegisterIterableArgs(b.reg, job, nil)
				mod := func(c *runner.Config) {
					if name == "memory-store" {
						c.Store = cursor.NewMemoryStore()
					}
				}
				b.start(t, mod)

				res, err := b.client.EnqueueArgs(ctx, ReindexArgs{Docs: 50}, &queue.EnqueueOpts{StartCursor: int64(45)})
				require.NoError(t, err)
				ev := b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)
				require.Equal(t, []int64{45, 46, 47, 48, 49}, job.items())
				require.Equal(t, int64(5), ev.Progress.ItemsProcessed)

				bad, err := b.client.EnqueueArgs(ctx, ReindexArgs{Docs: 50}, &queue.EnqueueOpts{StartCursor: "page-3", MaxAttempts: 5})
				require.NoError(t, err)
				dead := b.ev.wait(t, bad.Job.ID, jobtype.EventDead)
				require.Contains(t, dead.Error, "start cursor")
				require.Equal(t, 1, dead.Attempt, "a cursor of the wrong shape is not retried")
				require.Len(t, job.items(), 5, "no item ran from a cursor it could not read")
			})
		})
	}
}

// An enqueuer can check that runners in its namespace serve its kinds: a
// client configured for another namespace than the runners learns it.
func TestRequireServedCatchesAnotherNamespace(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r)
		runner.RegisterIterableArgs(b.reg, &reindex{}, nil)
		runner.RegisterArgs(b.reg, ping{hosts: make(chan string, 1)}, nil)

		err := b.client.RequireServed(ctx, "reindex")
		require.ErrorIs(t, err, queue.ErrUnknownKind, "no runner is up yet")
		require.ErrorContains(t, err, "no runner heartbeats in namespace")

		b.start(t, nil)
		testutil.Eventually(t, 10*time.Second, func() bool { return b.client.RequireServed(ctx, "reindex", "ping") == nil }, "the runner's kinds to be served")
		kinds, err := b.client.ServedKinds(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"ping", "reindex"}, kinds)
		err = b.client.RequireServed(ctx, "reindex", "reindx")
		require.ErrorIs(t, err, queue.ErrUnknownKind)
		require.ErrorContains(t, err, "serves reindx")

		other, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace + "-typo", Logger: quiet})
		require.NoError(t, err)
		err = other.RequireServed(ctx, "reindex")
		require.ErrorIs(t, err, queue.ErrUnknownKind, "an enqueuer in another namespace finds no runner")
		require.ErrorContains(t, err, r.Namespace+"-typo")
	})
}

// A client given the registry checks a start cursor's type at enqueue: the
// wrong shape, or a start cursor for a plain kind, is refused and nothing is
// added; a cursor of the right type is accepted.
func TestStartCursorCheckedAtEnqueue(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	ctx := t.Context()
	reg := runner.NewRegistry()
	runner.RegisterIterableArgs(reg, &reindex{}, nil)
	runner.RegisterArgs(reg, ping{}, nil)
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet, Kinds: reg})
	require.NoError(t, err)

	_, err = client.EnqueueArgs(ctx, ReindexArgs{Docs: 9}, &queue.EnqueueOpts{StartCursor: "page-3"})
	require.ErrorIs(t, err, queue.ErrInvalidStartCursor)
	require.ErrorIs(t, err, cursor.ErrInvalid)
	_, err = client.EnqueueArgs(ctx, PingArgs{}, &queue.EnqueueOpts{StartCursor: 3})
	require.ErrorIs(t, err, queue.ErrInvalidStartCursor)
	require.ErrorContains(t, err, "not iterable")
	qs, err := client.Queues(ctx)
	require.NoError(t, err)
	for _, q := range qs {
		require.Zero(t, q.Size, "a refused start cursor adds nothing")
	}
	_, err = client.EnqueueArgs(ctx, ReindexArgs{Docs: 9}, &queue.EnqueueOpts{StartCursor: int64(3)})
	require.NoError(t, err)
}
