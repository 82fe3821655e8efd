package iterjobtest_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/iterjobtest"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// bumpy snoozes at item 3 (an interruption) and fails at item 6 (a retry),
// once each, and records the Info every run sees.
type bumpy struct {
	mu      sync.Mutex
	infos   []iterable.Info
	snoozed bool
	failed  bool
}

func (b *bumpy) BuildEnumerator(ctx context.Context, _ struct{}, c *int64) (enumerators.Enumerator[int64, int64], error) {
	info, _ := iterable.InfoFromContext(ctx)
	b.mu.Lock()
	b.infos = append(b.infos, info)
	b.mu.Unlock()
	return enumerators.Range(0, 10, c), nil
}

func (b *bumpy) EachIteration(_ context.Context, _ struct{}, i int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case i == 3 && !b.snoozed:
		b.snoozed = true
		return iterable.Snooze(time.Millisecond)
	case i == 6 && !b.failed:
		b.failed = true
		return errors.New("flaky")
	}
	return nil
}

// counters is the part of Info a job's history decides.
type counters struct{ Attempt, Executions, TimesInterrupted, ItemsProcessed int64 }

func countersOf(infos []iterable.Info) []counters {
	out := make([]counters, len(infos))
	for i, in := range infos {
		out[i] = counters{int64(in.Attempt), int64(in.Executions), int64(in.TimesInterrupted), in.ItemsProcessed}
	}
	return out
}

// iterjobtest reports the Info the runner gives a job, run after run,
// through an interruption (a snooze), a failure and its retry.
func TestIterateReportsTheRunnersInfo(t *testing.T) {
	t.Parallel()
	want := []counters{
		{Attempt: 1, Executions: 1, TimesInterrupted: 0, ItemsProcessed: 0},
		{Attempt: 1, Executions: 2, TimesInterrupted: 1, ItemsProcessed: 3},
		{Attempt: 2, Executions: 3, TimesInterrupted: 1, ItemsProcessed: 6},
	}

	// The runner.
	r := testutil.Miniredis(t)
	quiet := slog.New(slog.DiscardHandler)
	prod := &bumpy{}
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, "bumpy", prod, nil)
	done := make(chan struct{})
	var once sync.Once
	rn, err := runner.New(runner.Config{
		Redis: r.Client, Registry: reg, Namespace: r.Namespace, Logger: quiet,
		PollInterval: 10 * time.Millisecond, Backoff: func(int) time.Duration { return time.Millisecond },
		OnEvent: func(_ context.Context, ev jobtype.Event) {
			if ev.Type == jobtype.EventSucceeded {
				once.Do(func() { close(done) })
			}
		},
	})
	require.NoError(t, err)
	require.NoError(t, rn.Start(t.Context()))
	t.Cleanup(func() { _ = rn.Stop(context.Background()) })
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
	require.NoError(t, err)
	_, err = client.Enqueue(t.Context(), "bumpy", struct{}{}, nil)
	require.NoError(t, err)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the job never succeeded under the runner")
	}
	require.Equal(t, want, countersOf(prod.infos), "the runner's Info")

	// iterjobtest.
	test := &bumpy{}
	var runs []*iterjobtest.Run
	var prev *iterjobtest.Run
	for range 3 {
		run, _ := iterjobtest.Iterate(t.Context(), test, struct{}{}, prev, 0)
		runs = append(runs, run)
		prev = run
	}
	require.Equal(t, want, countersOf(test.infos), "iterjobtest's Info")
	require.Equal(t, []string{"schedule", "retry", "ack"}, []string{runs[0].Action, runs[1].Action, runs[2].Action})
	require.NotEmpty(t, test.infos[0].JobID)
	for i, in := range test.infos {
		require.Equal(t, test.infos[0].JobID, in.JobID, "one job id over all runs")
		require.Equal(t, runs[i].Info, in)
		if i > 0 {
			require.Greater(t, in.Run, test.infos[i-1].Run, "runs are numbered upwards")
		}
	}
}
