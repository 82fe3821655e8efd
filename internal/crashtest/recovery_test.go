package crashtest

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
)

// recoveryMedianMax is the README's promise: with the default settings, the
// median time from a worker's death to its iterable job running again on
// another live worker.
const recoveryMedianMax = 5 * time.Second

// With the library's default HeartbeatInterval and DeadAfter, an iterable
// job whose worker is killed (kill -9) runs again on the other live worker
// within seconds: the worker is found dead by its closed liveness
// connection, not by DeadAfter (30 s). Kills fall at random instants of the
// heartbeat cycle; the test logs each recovery time and the median, which
// must be at most recoveryMedianMax (measured on the project's machines:
// see the README).
func TestKill9RecoveryTimeWithDefaults(t *testing.T) {
	b := setup(t)
	rng := newRand(t)
	const kills = 6
	opts := workerOpts{
		concurrency: 1, itemSleep: time.Millisecond, shutdownTimeout: stopTimeout, libraryRecovery: true,
		// Every kill is a recovery; this test is about time, not the
		// poison-pill limit.
		maxRecoveries: 100,
	}
	jid := b.enqueue("items", map[string]int{"n": 100_000_000})
	workers := []*worker{b.startWorker(opts), b.startWorker(opts)}
	executions := func() int {
		st, err := b.store.Load(context.Background(), jid)
		if err != nil {
			return 0
		}
		return st.Executions
	}
	var took []time.Duration
	for k := 1; k <= kills; k++ {
		testutil.Eventually(t, waitLong, func() bool { return executions() >= k }, "run %d of job %s to begin", k, jid)
		holder := -1
		testutil.Eventually(t, waitLong, func() bool {
			for i, w := range workers {
				if b.rdb.HExists(context.Background(), b.keys.Q(queue.QueueDefault).Inflight(w.id), jid).Val() {
					holder = i
					return true
				}
			}
			return false
		}, "a worker to hold job %s", jid)
		// A random instant of the heartbeat cycle.
		time.Sleep(randDelay(rng, 1500*time.Millisecond)) // the instant of the crash, not a wait for a condition
		killedAt := time.Now()
		workers[holder].kill()
		testutil.Eventually(t, waitLong, func() bool { return executions() > k }, "job %s to run again after kill %d", jid, k)
		d := time.Since(killedAt)
		took = append(took, d)
		t.Logf("kill %d: worker %s killed; the job ran again on %s %s later",
			k, workers[holder].id, workers[1-holder].id, d.Round(time.Millisecond))
		workers[holder] = b.startWorker(opts)
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	median := (sorted[(kills-1)/2] + sorted[kills/2]) / 2
	t.Logf("recovery after kill -9 with the default settings: median %s, min %s, max %s over %d kills",
		median.Round(time.Millisecond), sorted[0].Round(time.Millisecond), sorted[kills-1].Round(time.Millisecond), kills)
	require.LessOrEqual(t, median, recoveryMedianMax, "median recovery time")
	// Bounded by the liveness path, far below DeadAfter's 30 s.
	require.Less(t, sorted[kills-1], 15*time.Second, "slowest recovery")
	for _, w := range workers {
		w.signal(syscall.SIGTERM)
		w.requireCleanExit(stopTimeout)
	}
}
