package crashtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
)

// Crash recovery settings of the kill tests: a killed process is presumed
// dead a second after its last heartbeat.
const (
	heartbeat = 200 * time.Millisecond
	deadAfter = time.Second
)

// newRand returns the random source of a test, seeded from CRASHTEST_SEED
// or the clock, and logs the seed so that a failure can be replayed.
func newRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CRASHTEST_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "CRASHTEST_SEED")
	}
	t.Logf("seed %d (replay with CRASHTEST_SEED=%d go test -run '^%s$' ./internal/crashtest/)", seed, seed, t.Name())
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

// randDelay returns a random duration in [0, limit).
func randDelay(rng *rand.Rand, limit time.Duration) time.Duration {
	return time.Duration(rng.Int64N(int64(limit)))
}

// window is the items a killed run did after its last checkpoint: from the
// saved cursor to the last item recorded. The next run repeats them.
type window struct{ from, to int64 }

// kill -9 at random instants of an iterable job: after each kill, the items
// below the saved cursor were all done (nothing skipped), and a new process
// resumes from that cursor once the dead one is reaped. At the end every
// item was processed at least once, and an item processed more than once
// lies in the window [cursor, last item done] of some kill, repeated at most
// once per window that holds it.
func TestKill9IterableJobResumesFromItsLastCheckpoint(t *testing.T) {
	testKill9IterableResumes(t, setup(t))
}

// The same on a Redis Cluster: the job's queue, its iteration state and the
// process registry live on different shards.
func TestKill9IterableJobResumesFromItsLastCheckpointOnCluster(t *testing.T) {
	testKill9IterableResumes(t, setupCluster(t))
}

func testKill9IterableResumes(t *testing.T, b *bundle) {
	rng := newRand(t)
	const n, kills = 20_000, 5
	opts := workerOpts{
		concurrency: 2, checkpoint: 100 * time.Millisecond, heartbeat: heartbeat, deadAfter: deadAfter,
		shutdownTimeout: stopTimeout,
		// Each kill counts as a recovery; this test is about items, not
		// about the poison-pill limit (see TestKill9ProgressingIterableJobIsNoPoisonPill).
		maxRecoveries: 100,
	}
	jid := b.enqueue("items", map[string]int{"n": n})

	var windows []window
	var killedAt time.Time
	for k := 1; k <= kills; k++ {
		w := b.startWorker(opts)
		testutil.Eventually(t, waitLong, func() bool {
			st, err := b.store.Load(context.Background(), jid)
			return err == nil && st.Executions >= k
		}, "run %d of job %s to begin", k, jid)
		recovery := ""
		if k > 1 {
			recovery = fmt.Sprintf(" (%s after the kill)", time.Since(killedAt).Round(time.Millisecond))
		}
		delay := randDelay(rng, 300*time.Millisecond)
		time.Sleep(delay) // the random instant of the crash, not a wait for a condition
		w.kill()
		killedAt = time.Now()

		st, c := b.state(jid)
		require.NotEqual(t, cursor.StatusCompleted, st.Status, "the job completed before kill %d; give it more items", k)
		counts := b.itemCounts(jid)
		m := int64(-1)
		for item := range counts {
			m = max(m, item)
		}
		for i := range c {
			require.Positive(t, counts[i], "kill %d: item %d is below the saved cursor %d but was never processed", k, i, c)
		}
		require.LessOrEqual(t, c, m+1, "kill %d: the saved cursor %d is past the last item done %d", k, c, m)
		if c <= m {
			windows = append(windows, window{c, m})
		}
		t.Logf("kill %d: run %d began%s, killed %s later; saved cursor %d, last item done %d: %d items to repeat",
			k, k, recovery, delay.Round(time.Millisecond), c, m, m+1-c)
	}

	w := b.startWorker(opts)
	testutil.Eventually(t, waitLong, func() bool { return b.status(jid) == cursor.StatusCompleted }, "job %s to complete", jid)
	t.Logf("final run began and completed %s after the last kill", time.Since(killedAt).Round(time.Millisecond))
	w.signal(syscall.SIGTERM)
	w.requireCleanExit(stopTimeout)

	st, c := b.state(jid)
	require.Equal(t, int64(n), c)
	require.Equal(t, int64(n), st.ItemsProcessed, "items_processed counts checkpointed items, each once")
	require.Equal(t, kills+1, st.Executions)
	require.Zero(t, st.TimesInterrupted)

	counts := b.itemCounts(jid)
	require.Len(t, counts, n, "items outside [0, n) recorded")
	repeated := 0
	for i := range int64(n) {
		require.Positive(t, counts[i], "item %d never processed", i)
		if counts[i] == 1 {
			continue
		}
		repeated++
		in := 0
		for _, w := range windows {
			if w.from <= i && i <= w.to {
				in++
			}
		}
		require.Positive(t, in, "item %d processed %d times but lies in no window between a checkpoint and a kill %v", i, counts[i], windows)
		require.LessOrEqual(t, counts[i]-1, int64(in), "item %d processed %d times but lies in only %d windows %v", i, counts[i], in, windows)
	}
	t.Logf("%d of %d items processed twice, in %d windows %v", repeated, n, len(windows), windows)
	b.requireDrained()
}

// A plain job in flight when its worker is killed runs again in another
// worker process once the dead one is found dead: the kill closed its
// liveness connection, so that takes about two heartbeats (silent for one
// and a half, confirmed half a heartbeat later), not DeadAfter. Started
// twice, completed once.
func TestKill9PlainJobRunsAgainOnceItsWorkerIsFoundDead(t *testing.T) {
	b := setup(t)
	const dead = 30 * time.Second
	opts := workerOpts{concurrency: 1, heartbeat: heartbeat, deadAfter: dead, shutdownTimeout: stopTimeout}
	jid := b.enqueue("plain", map[string]int{"sleep_ms": 2500})
	wA := b.startWorker(opts)
	testutil.Eventually(t, waitLong, func() bool { return b.hashCounts(b.startsKey())[jid] == 1 }, "job %s to start", jid)
	wB := b.startWorker(opts)

	wA.kill()
	killedAt := time.Now()
	beat, err := b.rdb.ZScore(context.Background(), b.keys.Procs(), wA.id).Result()
	require.NoError(t, err, "the killed process is still registered until reaped")
	lastBeat := time.UnixMilli(int64(beat))

	testutil.Eventually(t, waitLong, func() bool { return b.hashCounts(b.completionsKey())[jid] == 1 }, "job %s to complete", jid)
	require.Equal(t, int64(2), b.hashCounts(b.startsKey())[jid], "starts")
	require.Equal(t, int64(1), b.hashCounts(b.completionsKey())[jid], "completions")
	pids, times := b.startLog(jid)
	require.Equal(t, []int{wA.cmd.Process.Pid, wB.cmd.Process.Pid}, pids, "first run in the killed worker, second in the other")
	again := times[1].Sub(lastBeat)
	// Millisecond clocks: allow them a few milliseconds.
	require.GreaterOrEqual(t, again, 2*heartbeat-10*time.Millisecond,
		"the job ran again %s after the dead worker's last heartbeat, before it could be found dead", again)
	require.Less(t, again, dead/3, "the dead worker was found dead by its heartbeat alone (DeadAfter %s)", dead)
	t.Logf("killed %s after its last heartbeat; the job ran again %s after the kill (%s after the last heartbeat; heartbeat %s, DeadAfter %s)",
		killedAt.Sub(lastBeat).Round(time.Millisecond), times[1].Sub(killedAt).Round(time.Millisecond),
		again.Round(time.Millisecond), heartbeat, dead)

	_, err = b.rdb.ZScore(context.Background(), b.keys.Procs(), wA.id).Result()
	require.Error(t, err, "the dead process must be unregistered once reaped")
	wB.signal(syscall.SIGTERM)
	wB.requireCleanExit(stopTimeout)
	b.requireDrained()
}

// A stopped worker (SIGSTOP: hung, as far as anyone can tell) keeps its
// Redis connections open, liveness connection included, so it keeps its job
// until DeadAfter; then another process runs the job. Woken up (SIGCONT),
// it learns at its next heartbeat that it was reaped and abandons its run:
// the job completes once, in the other worker.
func TestSIGSTOPWorkerKeepsItsJobUntilDeadAfter(t *testing.T) {
	b := setup(t)
	const dead = 3 * time.Second
	opts := workerOpts{concurrency: 1, heartbeat: heartbeat, deadAfter: dead, shutdownTimeout: stopTimeout}
	// Long enough that the stopped run, once woken, is still sleeping when
	// its heartbeat tells it the job is someone else's.
	jid := b.enqueue("plain", map[string]int{"sleep_ms": 10_000})
	wA := b.startWorker(opts)
	testutil.Eventually(t, waitLong, func() bool { return b.hashCounts(b.startsKey())[jid] == 1 }, "job %s to start", jid)
	wB := b.startWorker(opts)

	wA.signal(syscall.SIGSTOP)
	beat, err := b.rdb.ZScore(context.Background(), b.keys.Procs(), wA.id).Result()
	require.NoError(t, err)
	lastBeat := time.UnixMilli(int64(beat))
	testutil.Eventually(t, waitLong, func() bool { return b.hashCounts(b.startsKey())[jid] == 2 }, "job %s to run again", jid)
	pids, times := b.startLog(jid)
	require.Equal(t, []int{wA.cmd.Process.Pid, wB.cmd.Process.Pid}, pids)
	again := times[1].Sub(lastBeat)
	require.GreaterOrEqual(t, again, dead-10*time.Millisecond, "the job of a hung worker ran again %s after its last heartbeat, before DeadAfter", again)
	t.Logf("the stopped worker's job ran again %s after its last heartbeat (DeadAfter %s)", again.Round(time.Millisecond), dead)

	wA.signal(syscall.SIGCONT)
	testutil.Eventually(t, waitLong, func() bool { return wA.logCount("presumed dead") > 0 }, "the woken worker to learn it was reaped")
	testutil.Eventually(t, waitLong, func() bool { return b.hashCounts(b.completionsKey())[jid] == 1 }, "job %s to complete", jid)
	for _, w := range []*worker{wA, wB} {
		w.signal(syscall.SIGTERM)
		w.requireCleanExit(stopTimeout)
	}
	require.Equal(t, int64(1), b.hashCounts(b.completionsKey())[jid], "completed once")
	b.requireDrained()
}

// startLog returns the pid and time of each start of the plain job jid.
func (b *bundle) startLog(jid string) ([]int, []time.Time) {
	b.t.Helper()
	starts, err := b.rdb.LRange(context.Background(), b.startLogKey(jid), 0, -1).Result()
	require.NoError(b.t, err)
	pids, times := make([]int, len(starts)), make([]time.Time, len(starts))
	for i, s := range starts {
		pid, ms, ok := strings.Cut(s, " ")
		require.True(b.t, ok, s)
		pids[i], err = strconv.Atoi(pid)
		require.NoError(b.t, err)
		n, err := strconv.ParseInt(ms, 10, 64)
		require.NoError(b.t, err)
		times[i] = time.UnixMilli(n)
	}
	return pids, times
}

// 10,000 short plain jobs at concurrency 10; the worker is killed several
// times at random instants and restarted at once each time: every job
// completes, none is lost, and only jobs in flight at a kill run twice.
func TestKill9ManyPlainJobsNoneLost(t *testing.T) {
	testKill9ManyPlain(t, setup(t))
}

// The same on a Redis Cluster.
func TestKill9ManyPlainJobsNoneLostOnCluster(t *testing.T) {
	testKill9ManyPlain(t, setupCluster(t))
}

func testKill9ManyPlain(t *testing.T, b *bundle) {
	rng := newRand(t)
	const jobs, kills = 10_000, 4
	opts := workerOpts{
		concurrency: 10, heartbeat: heartbeat, deadAfter: deadAfter, shutdownTimeout: stopTimeout,
		// A job may be in flight at several kills; this test is about loss,
		// not about the poison-pill limit.
		maxRecoveries: 100,
	}
	ids := b.enqueuePlain(jobs, 1)
	start := time.Now()
	for k := 1; k <= kills; k++ {
		before := b.hlen(b.completionsKey())
		w := b.startWorker(opts)
		testutil.Eventually(t, waitLong, func() bool { return b.hlen(b.completionsKey()) > before }, "worker %d to complete a job", k)
		delay := randDelay(rng, 500*time.Millisecond)
		time.Sleep(delay) // the random instant of the crash, not a wait for a condition
		w.kill()
		done := b.hlen(b.completionsKey())
		require.Less(t, done, int64(jobs), "all jobs completed before kill %d; give them more work", k)
		t.Logf("kill %d: %s after its first completion; %d jobs completed so far", k, delay.Round(time.Millisecond), done)
	}
	w := b.startWorker(opts)
	testutil.Eventually(t, waitLong, func() bool { return b.hlen(b.completionsKey()) == jobs }, "all %d jobs to complete", jobs)
	t.Logf("all %d jobs completed %s after the enqueue", jobs, time.Since(start).Round(time.Millisecond))
	w.signal(syscall.SIGTERM)
	w.requireCleanExit(stopTimeout)

	completions := b.hashCounts(b.completionsKey())
	require.Len(t, completions, jobs, "distinct jobs completed")
	var missing []string
	for _, id := range ids {
		if completions[id] == 0 {
			missing = append(missing, id)
		}
	}
	require.Empty(t, missing, "jobs never completed")
	startedTwice, completedTwice := 0, 0
	for _, n := range b.hashCounts(b.startsKey()) {
		if n > 1 {
			startedTwice++
		}
	}
	for _, n := range completions {
		if n > 1 {
			completedTwice++
		}
	}
	t.Logf("%d jobs started more than once, %d completed more than once, after %d kills", startedTwice, completedTwice, kills)
	b.requireDrained()
}

// An iterable job that makes progress between crashes is not a poison pill:
// killed once more than consumer.MaxRecoveriesDefault times, each time after it
// checkpointed more items, it still completes with the default settings.
func TestKill9ProgressingIterableJobIsNoPoisonPill(t *testing.T) {
	b := setup(t)
	const n, kills = 20_000, consumer.MaxRecoveriesDefault + 1
	opts := workerOpts{
		concurrency: 1, checkpoint: 20 * time.Millisecond, heartbeat: 100 * time.Millisecond,
		deadAfter: 500 * time.Millisecond, shutdownTimeout: stopTimeout,
	}
	jid := b.enqueue("items", map[string]int{"n": n})
	prev := int64(0)
	for k := 1; k <= kills; k++ {
		w := b.startWorker(opts)
		testutil.Eventually(t, waitLong, func() bool {
			st, c := b.state(jid)
			return st.Executions >= k && c > prev
		}, "run %d of job %s to checkpoint progress past item %d", k, jid, prev)
		w.kill()
		_, prev = b.state(jid)
		t.Logf("kill %d after run %d checkpointed cursor %d", k, k, prev)
	}
	require.Less(t, prev, int64(n), "the job completed before the last kill; give it more items")

	w := b.startWorker(opts)
	ctx := context.Background()
	testutil.Eventually(t, waitLong, func() bool {
		return b.status(jid) == cursor.StatusCompleted || b.rdb.ZScore(ctx, b.keys.Q(queue.QueueDefault).Dead(), jid).Err() == nil
	}, "job %s to complete or die", jid)
	w.signal(syscall.SIGTERM)
	w.requireCleanExit(stopTimeout)
	if b.status(jid) != cursor.StatusCompleted {
		// Not lost: dead, with its state, and retryable from the dead set.
		errJSON, err := b.rdb.HGet(ctx, b.keys.Q(queue.QueueDefault).Errors(), jid).Result()
		require.NoError(t, err)
		require.Contains(t, errJSON, "poison pill")
		_, c := b.state(jid)
		require.Equal(t, prev, c, "the dead job's state keeps its cursor")
		t.Fatalf("a job that kept progressing was sent to the dead set as a poison pill after %d kills at cursor %d of %d: %s", kills, c, n, errJSON)
	}
	counts := b.itemCounts(jid)
	for i := range int64(n) {
		require.Positive(t, counts[i], "item %d never processed", i)
	}
	b.requireDrained()
}
