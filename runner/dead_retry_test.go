package runner_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// failOnce is an iterable job over Range(0, 10) whose item 5 fails once,
// fatally (SkipRetry), and that records the cursors it was built from and how
// often each item was done.
type failOnce struct {
	mu     sync.Mutex
	failed bool
	builds []string
	done   map[int64]int
}

func (j *failOnce) BuildEnumerator(_ context.Context, _ struct{}, c *int64) (enumerators.Enumerator[int64, int64], error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if c == nil {
		j.builds = append(j.builds, "nil")
	} else {
		j.builds = append(j.builds, fmt.Sprint(*c))
	}
	return enumerators.Range(0, 10, c), nil
}

func (j *failOnce) EachIteration(_ context.Context, _ struct{}, i int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if i == 5 && !j.failed {
		j.failed = true
		return iterable.SkipRetry(errors.New("needs a code fix"))
	}
	j.done[i]++
	return nil
}

// A job in the dead set is meant to be retried from there after a fix (README:
// "retry it from the dead set after the fix"; RunNow "from the dead set is
// retry"), and the dead set keeps jobs for DeadMaxAge (180 days). But the
// iteration state keeps the TTL of its last save, StateTTL (30 days): a dead
// iterable job retried after a month starts over from its first item, OnStart
// included, repeating everything it had done.
func TestDeadIterableJobRetriedAfterAMonthResumesFromItsCursor(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	job := &failOnce{done: map[int64]int{}}
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, "once", job, nil)
	var evMu sync.Mutex
	var succeeded bool
	startRunner(t, runner.Config{
		Redis: r.Client, Registry: reg, Namespace: r.Namespace, CheckpointInterval: time.Hour,
		HeartbeatInterval: time.Hour, DeadAfter: 2 * time.Hour, PollInterval: 10 * time.Millisecond,
		OnEvent: func(_ context.Context, ev jobtype.Event) {
			if ev.Type == jobtype.EventSucceeded {
				evMu.Lock()
				succeeded = true
				evMu.Unlock()
			}
		},
	})
	client := newClient(t, r)
	ctx := t.Context()
	res, err := client.Enqueue(ctx, "once", struct{}{}, nil)
	require.NoError(t, err)
	dead := dq(r).Dead()
	require.True(t, testutil.WaitFor(10*time.Second, func() bool { return r.Client.ZScore(ctx, dead, res.Job.ID).Err() == nil }), "the job died")
	store, err := cursor.NewRedisStore(r.Client, cursor.RedisConfig{Namespace: r.Namespace})
	require.NoError(t, err)
	st, err := store.Load(ctx, res.Job.ID)
	require.NoError(t, err)
	require.JSONEq(t, "5", string(st.Cursor), "the cursor of the last good item was saved")

	// The fix is deployed 31 days later, well within DeadMaxAge.
	r.Mini.FastForward(31 * 24 * time.Hour)
	require.NoError(t, client.RunNow(ctx, queue.SetDead, res.Job.ID))
	require.True(t, testutil.WaitFor(10*time.Second, func() bool {
		evMu.Lock()
		defer evMu.Unlock()
		return succeeded
	}), "the retried job succeeded")

	job.mu.Lock()
	defer job.mu.Unlock()
	require.Equal(t, []string{"nil", "5"}, job.builds, "the retry resumed from the saved cursor")
	for i := range int64(10) {
		require.Equal(t, 1, job.done[i], "item %d done once", i)
	}
}
