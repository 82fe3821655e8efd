package crashtest

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/testutil"
)

// Redis, persisting nothing, restarts while a worker runs a long iterable
// job: everything in it is gone, the worker's registration, the job's
// in-flight entry and its state included. The worker says so, registers
// again, puts back the job it holds and the job's state from its run, and
// the job runs on to completion in the same run on the same worker: nothing
// lost or repeated from where it was. (The queue's other contents would be
// gone: nothing can bring them back.)
func TestRedisRestartWithoutPersistenceWorkerKeepsItsJob(t *testing.T) {
	b, srv := setupOwnRedisPersisting(t, false)
	const n = 10_000
	opts := workerOpts{
		concurrency: 2, heartbeat: heartbeat, deadAfter: deadAfter, shutdownTimeout: stopTimeout,
		itemSleep: 100 * time.Microsecond, retryRecords: true,
	}
	jid := b.enqueue("items", map[string]int{"n": n})
	w := b.startWorker(opts)
	testutil.Eventually(t, waitLong, func() bool { return b.itemsRecorded(jid) >= 2000 }, "2000 items to be processed")

	srv.kill()
	srv.start()
	restartedAt := time.Now()
	testutil.Eventually(t, waitLong, func() bool { return b.status(jid) == cursor.StatusCompleted }, "job %s to complete", jid)
	t.Logf("the job completed %s after the restart", time.Since(restartedAt).Round(time.Millisecond))
	require.True(t, w.alive(), "the worker exited")

	st, c := b.state(jid)
	require.Equal(t, int64(n), c)
	require.Equal(t, int64(n), st.ItemsProcessed, "the restored state counts the items before the restart")
	require.Equal(t, 1, st.Executions, "one run, from start to end")
	require.Zero(t, st.TimesInterrupted)

	// The records before the restart went with Redis; those after it cover
	// the rest of the job, each item once.
	counts := b.itemCounts(jid)
	items := make([]int64, 0, len(counts))
	for item, k := range counts {
		require.Equal(t, int64(1), k, "item %d recorded %d times since the restart", item, k)
		items = append(items, item)
	}
	slices.Sort(items)
	first := items[0]
	require.Positive(t, first, "the job went on from where it was, not from the start")
	require.Equal(t, n-first, int64(len(items)), "items %d..%d each recorded once since the restart", first, n-1)
	require.Equal(t, int64(n-1), items[len(items)-1])
	t.Logf("items %d..%d recorded after the restart", first, n-1)

	require.Positive(t, w.logCount("Redis lost this process's registration"), "the worker says what happened")
	require.Positive(t, w.logCount("put back the jobs this process holds"))
	require.Zero(t, w.logCount("handed to others"), "nobody took the job")
	require.Zero(t, w.logCount("run abandoned"))
	w.signal(syscall.SIGTERM)
	w.requireCleanExit(stopTimeout)
	b.requireDrained()
}
