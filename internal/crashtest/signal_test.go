package crashtest

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
)

// The tests of this package do not run in parallel: each drives real
// processes, and on two cores they would starve each other's heartbeats.

const (
	itemsN      = 10_000
	waitLong    = 60 * time.Second
	stopTimeout = 10 * time.Second
)

// gracefulOpts configure the workers of the graceful tests. Nothing is
// killed, so DeadAfter is long: a worker starved of CPU for a moment must not
// be presumed dead and have its job handed over.
var gracefulOpts = workerOpts{
	concurrency: 2, checkpoint: time.Second, heartbeat: 500 * time.Millisecond, deadAfter: 10 * time.Second,
	shutdownTimeout: stopTimeout,
}

// interruptedAt checks the state of a job stopped gracefully part-way: it is
// interrupted, back at the head of its queue, and the items recorded are
// exactly those before its cursor, each once. It returns the cursor.
func interruptedAt(t *testing.T, b *bundle, jid string) int64 {
	t.Helper()
	st, c := b.state(jid)
	require.Equal(t, cursor.StatusInterrupted, st.Status)
	require.Equal(t, 1, st.TimesInterrupted)
	require.Positive(t, c)
	require.Less(t, c, int64(itemsN), "the job finished before it was interrupted; make the items slower")
	require.Equal(t, c, st.ItemsProcessed)
	b.requireExactlyOnce(jid, c)
	queued, err := b.rdb.LRange(context.Background(), b.keys.Q(queue.QueueDefault).Jobs(), 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, queued, 1, "the interrupted job must be back in its queue")
	require.Contains(t, queued[0], jid)
	return c
}

// completed waits for jid to complete and checks its final state.
func completed(t *testing.T, b *bundle, jid string, executions, interrupted int) {
	t.Helper()
	testutil.Eventually(t, waitLong, func() bool { return b.status(jid) == cursor.StatusCompleted }, "job %s to complete", jid)
	st, c := b.state(jid)
	require.Equal(t, int64(itemsN), c)
	require.Equal(t, int64(itemsN), st.ItemsProcessed)
	require.Equal(t, executions, st.Executions)
	require.Equal(t, interrupted, st.TimesInterrupted)
}

// SIGTERM stops the worker: the iterable job checkpoints at the item it is
// on, goes back to its queue, and the process exits 0 well within the
// shutdown timeout. A new process resumes the job at the cursor: every item
// is processed exactly once.
func TestSIGTERMInterruptsAndANewProcessResumes(t *testing.T) {
	b := setup(t)
	opts := gracefulOpts
	jid := b.enqueue("items", map[string]int{"n": itemsN})
	w1 := b.startWorker(opts)
	testutil.Eventually(t, waitLong, func() bool { return b.itemsRecorded(jid) >= 3000 }, "3000 items to be processed")

	w1.signal(syscall.SIGTERM)
	took := w1.requireCleanExit(stopTimeout)
	t.Logf("SIGTERM to exit: %s", took.Round(time.Millisecond))
	require.Zero(t, w1.logCount("shutdown: hard stop"), "the worker hard-stopped")
	c := interruptedAt(t, b, jid)
	t.Logf("interrupted at item %d", c)

	w2 := b.startWorker(opts)
	completed(t, b, jid, 2, 1)
	w2.signal(syscall.SIGTERM)
	w2.requireCleanExit(stopTimeout)
	b.requireExactlyOnce(jid, itemsN)
	b.requireDrained()
}

// SIGTSTP quiets the worker: the iterable job checkpoints and goes back to
// its queue while the process stays alive, heartbeating and fetching
// nothing. A second process resumes the job; then SIGTERM stops the first,
// which exits 0. Every item is processed exactly once.
func TestSIGTSTPHandsTheJobToAnotherProcess(t *testing.T) {
	b := setup(t)
	opts := gracefulOpts
	jid := b.enqueue("items", map[string]int{"n": itemsN})
	w1 := b.startWorker(opts)
	testutil.Eventually(t, waitLong, func() bool { return b.itemsRecorded(jid) >= 3000 }, "3000 items to be processed")

	quietAt := time.Now()
	w1.signal(syscall.SIGTSTP)
	testutil.Eventually(t, waitLong, func() bool { return b.status(jid) == cursor.StatusInterrupted }, "job %s to be interrupted", jid)
	t.Logf("SIGTSTP to interrupted state: %s", time.Since(quietAt).Round(time.Millisecond))
	c := interruptedAt(t, b, jid)
	t.Logf("interrupted at item %d", c)
	// Still alive and still heartbeating, so it is not reaped.
	testutil.Eventually(t, waitLong, func() bool {
		score, err := b.rdb.ZScore(context.Background(), b.keys.Procs(), w1.id).Result()
		return err == nil && int64(score) > quietAt.UnixMilli()
	}, "the quiet worker to heartbeat")
	require.True(t, w1.alive(), "the quiet worker exited")

	w2 := b.startWorker(opts)
	completed(t, b, jid, 2, 1)
	require.True(t, w1.alive(), "the quiet worker exited")
	w1.signal(syscall.SIGTERM)
	w1.requireCleanExit(stopTimeout)
	w2.signal(syscall.SIGTERM)
	w2.requireCleanExit(stopTimeout)
	b.requireExactlyOnce(jid, itemsN)
	b.requireDrained()
}
