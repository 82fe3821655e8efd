package crashtest

import (
	"context"
	"math/bits"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/queue"
)

// crashLoopCheckpoint is the checkpoint interval of the crash-loop tests:
// the library's default, longer than the workers live.
const crashLoopCheckpoint = 5 * time.Second

// dead reports whether jid is in the dead set.
func (b *bundle) dead(jid string) bool {
	return b.rdb.ZScore(context.Background(), b.keys.Q(queue.QueueDefault).Dead(), jid).Err() == nil
}

// A long iterable job on two workers that are killed every 0.3–2 s, the one
// running the job when there is one, each replaced at once: no run lives as
// long as the checkpoint interval. With the default MaxRecoveries the job
// still completes, as every run that finishes items is forgiven. Nothing is
// lost: every item is processed, and an item processed more than once lies
// in the window between the last checkpoint and a kill, repeated at most
// once per window that holds it.
func TestKill9CrashLoopDoesNotMakeAProgressingJobAPoisonPill(t *testing.T) {
	b := setup(t)
	rng := newRand(t)
	const n = 5_000
	opts := workerOpts{
		concurrency: 1, checkpoint: crashLoopCheckpoint, heartbeat: heartbeat, deadAfter: deadAfter,
		itemSleep: time.Millisecond, shutdownTimeout: stopTimeout,
	}
	jid := b.enqueue("items", map[string]int{"n": n})
	workers := []*worker{b.startWorker(opts), b.startWorker(opts)}
	var windows []window
	kills, holderKills := 0, 0
	deadline := time.Now().Add(3 * time.Minute)
	over := func() bool { return b.status(jid) == cursor.StatusCompleted || b.dead(jid) }
	for !over() {
		require.True(t, time.Now().Before(deadline), "the job neither completed nor died in 3 minutes; %s", b.describe())
		time.Sleep(300*time.Millisecond + randDelay(rng, 1700*time.Millisecond)) // the instant of the next crash, not a wait for a condition
		if over() {
			break
		}
		victim, holder := rng.IntN(len(workers)), false
		for i, w := range workers {
			if b.rdb.HExists(context.Background(), b.keys.Q(queue.QueueDefault).Inflight(w.id), jid).Val() {
				victim, holder = i, true
			}
		}
		workers[victim].kill()
		kills++
		if holder {
			holderKills++
			st, c := b.state(jid)
			if st.Status == cursor.StatusCompleted {
				break
			}
			m := int64(-1)
			for item := range b.itemCounts(jid) {
				m = max(m, item)
			}
			if c <= m {
				windows = append(windows, window{c, m})
			}
		}
		workers[victim] = b.startWorker(opts)
	}
	for _, w := range workers {
		w.signal(syscall.SIGTERM)
		w.requireCleanExit(stopTimeout)
	}
	if b.dead(jid) {
		errJSON := b.rdb.HGet(context.Background(), b.keys.Q(queue.QueueDefault).Errors(), jid).Val()
		_, c := b.state(jid)
		t.Fatalf("a job that kept progressing died after %d kills (%d of its worker) at cursor %d of %d: %s", kills, holderKills, c, n, errJSON)
	}
	st, c := b.state(jid)
	t.Logf("%d kills, %d of them of the job's worker; %d runs; completed", kills, holderKills, st.Executions)
	require.Equal(t, int64(n), c)
	require.Greater(t, holderKills, consumer.MaxRecoveriesDefault+1, "too few kills of the job's worker to matter; make the job longer")
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
		require.LessOrEqual(t, counts[i]-1, int64(in), "item %d processed %d times but lies in only %d windows between a checkpoint and a kill %v", i, counts[i], in, windows)
	}
	t.Logf("%d of %d items processed more than once, in %d windows", repeated, n, len(windows))
	b.requireDrained()
}

// A job that kills its worker every time it reaches one item is still a
// poison pill: the runs that progress towards that item are forgiven, and
// each saves at least half the way to it, so the job soon resumes right at
// the item, finishes nothing before dying, and its recoveries count until
// it goes to the dead set. Its state keeps the cursor at that item.
func TestKill9JobThatAlwaysCrashesItsWorkerStillDies(t *testing.T) {
	b := setup(t)
	const n, crashAt = 100_000, 3_000
	opts := workerOpts{
		concurrency: 1, checkpoint: crashLoopCheckpoint, heartbeat: heartbeat, deadAfter: deadAfter,
		shutdownTimeout: stopTimeout,
	}
	jid := b.enqueue("items", map[string]int64{"n": n, "crash_at": crashAt})
	w := b.startWorker(opts)
	crashes := 0
	deadline := time.Now().Add(3 * time.Minute)
	for !b.dead(jid) {
		require.True(t, time.Now().Before(deadline), "the job did not die in 3 minutes after %d crashes; %s", crashes, b.describe())
		if !w.alive() {
			crashes++
			w = b.startWorker(opts)
		}
		time.Sleep(10 * time.Millisecond) // polling a process and Redis
	}
	w.signal(syscall.SIGTERM)
	w.requireCleanExit(stopTimeout)

	errJSON := b.rdb.HGet(context.Background(), b.keys.Q(queue.QueueDefault).Errors(), jid).Val()
	require.Contains(t, errJSON, "poison pill")
	st, c := b.state(jid)
	require.Equal(t, int64(crashAt), c, "the dead job's state keeps its cursor at the item that kills")
	counts := b.itemCounts(jid)
	require.Len(t, counts, crashAt, "items before the crashing one, and no other")
	for i := range int64(crashAt) {
		require.Positive(t, counts[i], "item %d never processed", i)
	}
	// Each progressing run halves the way left; then MaxRecoveries+1 runs
	// that finish nothing.
	most := 2*bits.Len(uint(crashAt)) + consumer.MaxRecoveriesDefault + 2
	t.Logf("dead after %d crashes (%d runs); bound %d", crashes, st.Executions, most)
	require.LessOrEqual(t, crashes, most)
}
