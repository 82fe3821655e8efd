package crashtest

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
)

// setupOwnRedis returns a bundle on a redis-server of the test's own, which
// persists every write.
func setupOwnRedis(t *testing.T) (*bundle, *redisServer) {
	t.Helper()
	return setupOwnRedisPersisting(t, true)
}

// setupOwnRedisPersisting returns a bundle on a redis-server of the test's
// own, which persists nothing unless persist is set.
func setupOwnRedisPersisting(t *testing.T, persist bool) (*bundle, *redisServer) {
	t.Helper()
	srv := startRedisServer(t, persist)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.port)})
	t.Cleanup(func() { _ = c.Close() })
	return newBundle(t, srv.url(), c, testutil.Unique("t")), srv
}

// requireAllCompleted requires every job of ids completed at least once.
func requireAllCompleted(t *testing.T, b *bundle, ids []string) {
	t.Helper()
	completions := b.hashCounts(b.completionsKey())
	var missing []string
	for _, id := range ids {
		if completions[id] == 0 {
			missing = append(missing, id)
		}
	}
	require.Empty(t, missing, "jobs never completed")
	require.Len(t, completions, len(ids), "distinct jobs completed")
	twice := 0
	for _, n := range completions {
		if n > 1 {
			twice++
		}
	}
	t.Logf("%d jobs completed, %d of them more than once", len(completions), twice)
}

const errorRecord = `"level":"ERROR"`

// Redis is killed while a worker runs a few thousand jobs, and restarted on
// the same port and files a moment later. The worker logs errors,
// reconnects and goes on: every job completes and none is lost.
func TestRedisRestartWorkerGoesOn(t *testing.T) {
	b, srv := setupOwnRedis(t)
	const jobs = 3000
	ids := b.enqueuePlain(jobs, 1)
	opts := workerOpts{concurrency: 10, heartbeat: heartbeat, deadAfter: deadAfter, shutdownTimeout: stopTimeout}
	w := b.startWorker(opts)
	testutil.Eventually(t, waitLong, func() bool { return b.hlen(b.completionsKey()) >= jobs/3 }, "a third of the jobs to complete")

	errsBefore := w.logCount(errorRecord)
	srv.kill()
	downAt := time.Now()
	testutil.Eventually(t, waitLong, func() bool { return w.logCount(errorRecord) > errsBefore }, "the worker to log an error")
	t.Logf("the worker logged its first error %s after Redis died", time.Since(downAt).Round(time.Millisecond))
	time.Sleep(time.Until(downAt.Add(1500 * time.Millisecond))) // the outage, not a wait for a condition
	srv.start()
	upAt := time.Now()
	require.True(t, w.alive(), "the worker exited while Redis was down")

	stranded := b.waitCompleted(jobs)
	t.Logf("down for %s; the worker logged %d errors; %d jobs completed %s after the restart",
		upAt.Sub(downAt).Round(time.Millisecond), w.logCount(errorRecord)-errsBefore,
		b.hlen(b.completionsKey()), time.Since(upAt).Round(time.Millisecond))
	finishStranded(t, b, w, opts, ids, stranded)
}

// finishStranded ends a test whose worker w ran jobs ids through a Redis
// outage: every job must complete and nothing be left anywhere. Jobs
// stranded in the live worker (known bugs) must complete once it exits;
// then the test is skipped, naming the bugs.
func finishStranded(t *testing.T, b *bundle, w *worker, opts workerOpts, ids, stranded []string) {
	t.Helper()
	require.True(t, w.alive(), "the worker exited")
	if len(stranded) > 0 {
		t.Logf("%d jobs stranded in the live worker: %v", len(stranded), stranded)
		b.recoverStranded(w, opts, len(ids))
	} else {
		w.signal(syscall.SIGTERM)
		w.requireCleanExit(stopTimeout)
	}
	requireAllCompleted(t, b, ids)
	b.requireDrained()
	if len(stranded) > 0 {
		t.Fatalf("%d of %d jobs were stranded in the live worker's in-flight hash until it exited "+
			"(deterministic reproductions: TestUnreturnableFetchedAheadJobIsNotStranded, TestLostFetchReplyStrandsNoJob)",
			len(stranded), len(ids))
	}
}

// Redis drops every client connection (CLIENT KILL TYPE normal) several
// times while a worker runs a few thousand jobs: the worker reconnects and
// goes on; every job completes and none is lost.
func TestRedisDropsConnectionsWorkerGoesOn(t *testing.T) {
	b, _ := setupOwnRedis(t)
	rng := newRand(t)
	const jobs, drops = 3000, 5
	ids := b.enqueuePlain(jobs, 1)
	opts := workerOpts{concurrency: 10, heartbeat: heartbeat, deadAfter: deadAfter, shutdownTimeout: stopTimeout}
	w := b.startWorker(opts)
	testutil.Eventually(t, waitLong, func() bool { return b.hlen(b.completionsKey()) > 0 }, "a job to complete")
	killed := 0
	for range drops {
		time.Sleep(randDelay(rng, 200*time.Millisecond)) // a random instant, not a wait for a condition
		n, err := b.rdb.ClientKillByFilter(context.Background(), "TYPE", "normal").Result()
		require.NoError(t, err)
		killed += int(n)
	}
	done := b.hlen(b.completionsKey())
	require.Less(t, done, int64(jobs), "all jobs completed before the last drop; give them more work")
	t.Logf("%d connections dropped in %d rounds; %d jobs completed by then", killed, drops, done)

	finishStranded(t, b, w, opts, ids, b.waitCompleted(jobs))
}
