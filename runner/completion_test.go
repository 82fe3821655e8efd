package runner_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/runner"
)

// lastItemJob has two items; item 1 (the last) quiets the runner before it
// returns, so the stop is decided after the last item. It counts builds and
// items per run.
type lastItemJob struct {
	rr  func() *runner.Runner
	mu  sync.Mutex
	per []int
}

func (j *lastItemJob) BuildEnumerator(_ context.Context, _ struct{}, c *int64) (enumerators.Enumerator[int64, int64], error) {
	j.mu.Lock()
	j.per = append(j.per, 0)
	j.mu.Unlock()
	return enumerators.Range(0, 2, c), nil
}

func (j *lastItemJob) EachIteration(ctx context.Context, _ struct{}, i int64) error {
	if i == 1 {
		j.rr().Quiet()
	}
	j.mu.Lock()
	j.per[len(j.per)-1]++
	j.mu.Unlock()
	return nil
}

// "Every run finishes at least one item" (Config.MaxRuntime, README). The
// stop check runs after each item, before the enumerator can tell whether
// another item follows, so a run whose last item ends once MaxRuntime has
// passed (or while the process quiets) re-enqueues a finished job: the next
// run resumes at the end, finishes no item, and only then completes (an
// extra OnResume/BuildEnumerator, and on quiet an extra hand-over). This is
// also why the existing TestMaxRuntimeReenqueuesAndAlwaysProgresses fails
// from time to time under load ("run N finished at least one item").
func TestARunThatFinishesTheLastItemCompletesInsteadOfRequeueing(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		var rr *runner.Runner
		job := &lastItemJob{rr: func() *runner.Runner { return rr }}
		reg := runner.NewRegistry()
		runner.RegisterIterable(reg, "last", job, nil)
		done := make(chan struct{})
		var once sync.Once
		run, err := runner.New(runner.Config{
			Redis: r.Client, Registry: reg, Namespace: r.Namespace, Logger: quiet,
			CheckpointInterval: time.Hour, HeartbeatInterval: time.Hour, DeadAfter: 2 * time.Hour,
			OnEvent: func(_ context.Context, ev jobtype.Event) {
				if ev.Type == jobtype.EventSucceeded {
					once.Do(func() { close(done) })
				}
			},
		})
		require.NoError(t, err)
		rr = run
		require.NoError(t, rr.Start(t.Context()))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = rr.Stop(ctx)
		})
		_, err = newClient(t, r).Enqueue(t.Context(), "last", struct{}{}, nil)
		require.NoError(t, err)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("the job never succeeded")
		}
		job.mu.Lock()
		defer job.mu.Unlock()
		require.Equal(t, []int{2}, job.per, "one run did both items and completed")
	})
}
