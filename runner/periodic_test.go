package runner_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

type tickArgs struct {
	Report string `json:"report"`
}

// ticks records the periodic jobs it runs.
type ticks struct {
	mu  sync.Mutex
	ids map[string]int
	ch  chan string
}

func (j *ticks) Perform(ctx context.Context, a tickArgs) error {
	info, _ := iterable.InfoFromContext(ctx)
	j.mu.Lock()
	j.ids[info.JobID]++
	j.mu.Unlock()
	j.ch <- info.JobID + " " + a.Report
	return nil
}

// Two runners with the same schedule in their Config run each tick's job
// once; the job carries the schedule's args and its tick in its id and
// meta.
func TestPeriodicJobsFromConfig(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		job := &ticks{ids: map[string]int{}, ch: make(chan string, 100)}
		runner.Register(b.reg, "report", job, nil)
		sched := queue.PeriodicJob{Name: "report", Spec: "@every 1s", Kind: "report", Args: tickArgs{Report: "daily"}}
		for range 2 {
			b.start(t, func(c *runner.Config) { c.Periodic = []queue.PeriodicJob{sched} })
		}
		var seen []string
		for len(seen) < 3 {
			select {
			case s := <-job.ch:
				seen = append(seen, s)
			case <-time.After(15 * time.Second):
				t.Fatalf("only %v ran", seen)
			}
		}
		for _, s := range seen {
			require.True(t, strings.HasPrefix(s, "periodic:report:"), s)
			require.True(t, strings.HasSuffix(s, " daily"), s)
		}
		ev := b.ev.wait(t, strings.Fields(seen[0])[0], jobtype.EventSucceeded)
		require.Equal(t, "report", ev.Meta["periodic"])
		tick, err := time.Parse(time.RFC3339, ev.Meta["periodic_tick"])
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("periodic:report:%d", tick.Unix()), ev.JobID)
		list, err := b.client.PeriodicJobs(t.Context())
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.False(t, list[0].LastTick.IsZero())
		job.mu.Lock()
		defer job.mu.Unlock()
		for id, n := range job.ids {
			require.Equal(t, 1, n, "job %s ran %d times", id, n)
		}
	})
}

func TestInvalidPeriodicConfigIsRefused(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	_, err := runner.New(runner.Config{Redis: r.Client, Registry: runner.NewRegistry(),
		Periodic: []queue.PeriodicJob{{Name: "x", Spec: "every minute", Kind: "k"}}})
	require.ErrorIs(t, err, queue.ErrInvalidPeriodic)
	require.ErrorContains(t, err, `"every minute"`)
}
