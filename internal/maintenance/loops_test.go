package maintenance_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/exec"
	"github.com/iterjob/iterjob/internal/maintenance"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/shutdown"
)

var quiet = slog.New(slog.DiscardHandler)

type bundle struct {
	client *queue.Client
	cons   *consumer.Consumer
	sd     *shutdown.Controller
}

func setup(t *testing.T, r testutil.Redis) bundle {
	t.Helper()
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
	require.NoError(t, err)
	cons, err := consumer.New(r.Client, consumer.Config{Namespace: r.Namespace, Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, cons.Start(t.Context()))
	t.Cleanup(func() { _ = cons.Stop(context.Background()) })
	sd, err := shutdown.New(shutdown.Config{})
	require.NoError(t, err)
	return bundle{client: client, cons: cons, sd: sd}
}

// The promoter wakes for the earliest due job rather than waiting out its
// poll interval, and stops when asked.
func TestPromoterMovesAJobWhenItIsDueNotAtTheNextPoll(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r)
		res, err := b.client.Enqueue(ctx, "report", 1, &queue.EnqueueOpts{In: 300 * time.Millisecond})
		require.NoError(t, err)

		p := maintenance.NewPromoter(b.cons, b.sd, time.Hour, quiet)
		p.Start()
		defer p.Stop()
		q := rdb.NewKeys(r.Namespace).Q("default")
		testutil.Eventually(t, 10*time.Second, func() bool {
			ids, _ := r.Client.LRange(ctx, q.Jobs(), 0, -1).Result()
			return len(ids) == 1 && strings.Contains(ids[0], res.Job.ID)
		}, "the job due in 300ms reached its queue, with a poll interval of an hour")
	})
}

// running is a process's running executions, as the producer reports them.
type running struct {
	mu sync.Mutex
	es []*exec.Execution
}

func (r *running) Running() []*exec.Execution {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*exec.Execution(nil), r.es...)
}

func (r *running) Current(e *exec.Execution, fn func()) { fn() }

// The cancel poller asks exactly the runs whose job was cancelled to stop.
func TestCancelPollerStopsOnlyTheRunsOfCancelledJobs(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r)
		for range 2 {
			_, err := b.client.Enqueue(ctx, "report", 1, nil)
			require.NoError(t, err)
		}
		jobs, err := b.cons.Fetch(ctx, 2)
		require.NoError(t, err)
		require.Len(t, jobs, 2)

		run := &running{}
		causes := make([]chan error, 2)
		for i, j := range jobs {
			e := exec.NewExecution(j)
			causes[i] = make(chan error, 1)
			cause := causes[i]
			e.Begin(time.Now(), func(err error) {
				select {
				case cause <- err:
				default:
				}
			}, false)
			run.es = append(run.es, e)
		}
		c := maintenance.NewCancelPoller(b.cons, run, 10*time.Millisecond, quiet)
		c.Start()
		defer c.Stop()

		_, err = b.client.Cancel(ctx, jobs[1].ID)
		require.NoError(t, err)
		select {
		case err := <-causes[1]:
			require.ErrorIs(t, err, exec.ErrCancelled)
		case <-time.After(10 * time.Second):
			t.Fatal("the run of the cancelled job was not asked to stop")
		}
		select {
		case err := <-causes[0]:
			t.Fatalf("the run of a job nobody cancelled was stopped: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	})
}
