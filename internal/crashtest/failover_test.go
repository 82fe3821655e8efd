package crashtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

// The failover tests run the crash tests' workload (10,000 plain jobs over
// six queues and one iterable job of 20,000 items, two worker processes) on
// a Redis Cluster of their own with a replica per primary, and fail shards
// over under it: gracefully (CLUSTER FAILOVER, nothing lost) or by killing
// a primary with SIGKILL (its replica is promoted, and the writes it had
// not received are lost).
//
// Replication is asynchronous and iterjob does not call WAIT, so what the
// tests can require after a primary is killed depends on what had reached
// its replica. Before the kill, a test runs WAIT 1 on every primary: every
// job enqueued, cancel requested and checkpoint saved until then survives.
// Then the replica is made to miss the writes of the last few hundred
// milliseconds for certain (see replCluster.killPrimary): the workers'
// fetches, acks and checkpoints of that time are lost, and a worker that
// registered in that time loses its registration in the killed shard's
// queues. When the killed primary holds the iterable job's state, the
// worker running the job is killed with it, so that a new run resumes from
// the cursor the replica had. Every job must still complete, nothing may be
// left in flight, and every worker must be registered in all its queues
// again; a job may run twice, and the saved cursor may go back, but not
// below what was replicated, and only items after it may run twice.
//
// The workers run with the library's default HeartbeatInterval and
// DeadAfter (a failover takes well under DeadAfter, as the README asks),
// and reload their cluster client's slot map every second: go-redis learns
// of a promotion from a MOVED reply, which a dead primary never sends, or
// else from its periodic reload (every 60 s by default: until then every
// call to the dead primary's slots fails).

// Sizes of the failover tests' workload.
const (
	failoverJobs  = 10_000
	failoverItems = 20_000
	// failoverJobMS is how long each plain job sleeps: long enough that
	// the jobs are still running at the last failover.
	failoverJobMS = 10
	// killLag is how long a replica misses its primary's writes before
	// the primary is killed (see replCluster.killPrimary).
	killLag = 300 * time.Millisecond
)

// failoverOpts are the workers' settings.
func failoverOpts() workerOpts {
	return workerOpts{
		concurrency: 10, checkpoint: 100 * time.Millisecond, libraryRecovery: true,
		shutdownTimeout: stopTimeout,
		// This test is about data, not about the poison-pill limit.
		maxRecoveries: 100,
		// The item records are the test's bookkeeping, not the library's
		// writes: a record that fails while the cluster is down is tried
		// again rather than failing the item.
		retryRecords: true,
		// The workers' cluster clients keep go-redis's default
		// ClusterStateReloadInterval (60 s): following the promoted replica
		// sooner is the library's job (rdb.followFailovers).
	}
}

// failoverSetup is a failover test's cluster, bundle, and where its keys
// live. The namespace and names are chosen so that the global group
// (process registry), the group the worker's jobs record into, and the
// iterable job (its queue and its state) are on three different shards, so
// a test can fail over each on its own, and the six queues of plain jobs
// are two per shard.
type failoverSetup struct {
	rc          *replCluster
	b           *bundle
	jobQueue    string // the iterable job's queue, on the shard of its state
	iterID      string // the iterable job's id
	cancelQueue string // the queue of the job cancelled across a failover, on the same shard
}

func setupFailover(t *testing.T) *failoverSetup {
	t.Helper()
	if testing.Short() {
		t.Skip("crashtest: the failover tests take about 20 s each; skipped with -short")
	}
	rc := startReplCluster(t)
	view, err := rc.view()
	require.NoError(t, err)
	shardOf := func(key string) int {
		o := owner(view, keySlot(key))
		require.NotNil(t, o, "no primary serves %q", key)
		return o.port
	}
	var ns, records string
	var keys rdb.Keys
	for {
		ns = testutil.Unique("t")
		keys = rdb.NewKeys(ns)
		records = "{" + ns + "/crashtest/records}:"
		if shardOf(keys.Procs()) != shardOf(records) {
			break
		}
	}
	var jobShard int
	for _, v := range view {
		if p := v.port; v.primary && len(v.slots) > 0 && p != shardOf(keys.Procs()) && p != shardOf(records) {
			jobShard = p
		}
	}
	s := &failoverSetup{rc: rc}
	perShard := make(map[int]int)
	var queues []string
	for i := 0; len(queues) < 6; i++ {
		q := fmt.Sprintf("q%d", i)
		p := shardOf(keys.Q(q).Jobs())
		if perShard[p] == 2 {
			continue
		}
		perShard[p]++
		queues = append(queues, q)
		if p == jobShard && s.jobQueue == "" {
			s.jobQueue = q
		}
	}
	for i := 0; s.cancelQueue == ""; i++ {
		if q := fmt.Sprintf("cancel%d", i); shardOf(keys.Q(q).Jobs()) == jobShard {
			s.cancelQueue = q
		}
	}
	for i := 0; s.iterID == ""; i++ {
		if id := fmt.Sprintf("items-%d", i); shardOf(keys.Iter(id)) == jobShard {
			s.iterID = id
		}
	}
	s.b = newBundle(t, "cluster:"+strings.Join(rc.primaries(), ","), rc.c, ns)
	s.b.test = records
	s.b.queues = queues
	t.Logf("shards (primary ports): global group %d, records %d, iterable job %s (queue %s) %d; queues %v",
		shardOf(keys.Procs()), shardOf(records), s.iterID, s.jobQueue, jobShard, queues)
	return s
}

// enqueue enqueues the workload: the iterable job first (so that it starts
// at once), then the plain jobs, round robin over the queues. It returns the
// plain jobs' ids.
func (s *failoverSetup) enqueue() []string {
	b := s.b
	b.t.Helper()
	ctx := context.Background()
	_, err := b.queue.Enqueue(ctx, "items", map[string]int{"n": failoverItems}, &queue.EnqueueOpts{Queue: s.jobQueue, ID: s.iterID})
	require.NoError(b.t, err)
	params := make([]queue.Params, failoverJobs)
	for i := range params {
		params[i] = queue.Params{
			Kind: "plain", Args: map[string]int{"sleep_ms": failoverJobMS},
			Opts: &queue.EnqueueOpts{Queue: b.queues[i%len(b.queues)]},
		}
	}
	res, err := b.queue.EnqueueMany(ctx, params)
	require.NoError(b.t, err)
	ids := make([]string, len(res))
	for i, r := range res {
		ids[i] = r.Job.ID
	}
	return ids
}

// cursorObs is the iterable job's saved cursor as read at some instant.
type cursorObs struct {
	at     time.Time
	cursor int64
}

// cursorWatch reads the iterable job's saved state every few milliseconds
// and keeps each change of its cursor.
type cursorWatch struct {
	mu     sync.Mutex
	obs    []cursorObs
	errors int
	stop   chan struct{}
	done   chan struct{}
}

func (s *failoverSetup) watchCursor() *cursorWatch {
	w := &cursorWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := s.b.store.Load(ctx, s.iterID)
			cancel()
			var c *int64
			if err == nil {
				c, err = cursor.Decode[int64](st.Cursor)
			}
			w.mu.Lock()
			switch {
			case errors.Is(err, cursor.ErrNotFound) || (err == nil && c == nil):
			case err != nil:
				w.errors++
			case len(w.obs) == 0 || w.obs[len(w.obs)-1].cursor != *c:
				w.obs = append(w.obs, cursorObs{time.Now(), *c})
			}
			w.mu.Unlock()
		}
	}()
	s.b.t.Cleanup(w.close)
	return w
}

func (w *cursorWatch) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// last returns the last cursor read (0: none yet).
func (w *cursorWatch) last() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.obs) == 0 {
		return 0
	}
	return w.obs[len(w.obs)-1].cursor
}

// all returns every cursor read, in order.
func (w *cursorWatch) all() []cursorObs {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.obs)
}

// extras are the checks of uniqueness and cancel across a failover of the
// iterable job's shard, which holds the queues they use: a unique job
// enqueued before the failover still blocks a duplicate after it, and a
// running job whose cancellation was requested before the failover is
// cancelled by its runner after it.
type extras struct {
	s      *failoverSetup
	unique string  // the unique job, scheduled an hour ahead
	cancel string  // the job to cancel: a plain job sleeping ten minutes
	w      *worker // the only worker of cancelQueue, running the job to cancel
}

const uniqueKey = "failover-unique"

// startExtras enqueues the unique job and the job to cancel, and starts the
// worker that runs the latter, alone in its queue; it returns once the job
// runs.
func (s *failoverSetup) startExtras() *extras {
	b := s.b
	b.t.Helper()
	ctx := context.Background()
	res, err := b.queue.Enqueue(ctx, "plain", map[string]int{"sleep_ms": 1},
		&queue.EnqueueOpts{Queue: s.jobQueue, UniqueKey: uniqueKey, In: time.Hour})
	require.NoError(b.t, err)
	require.False(b.t, res.Duplicate)
	x := &extras{s: s, unique: res.Job.ID}
	res, err = b.queue.Enqueue(ctx, "plain", map[string]int{"sleep_ms": 600_000}, &queue.EnqueueOpts{Queue: s.cancelQueue})
	require.NoError(b.t, err)
	x.cancel = res.Job.ID
	opts := failoverOpts()
	opts.concurrency, opts.queues = 1, []string{s.cancelQueue}
	x.w = b.startWorker(opts)
	testutil.Eventually(b.t, waitLong, func() bool { return b.hashCounts(b.startsKey())[x.cancel] == 1 },
		"the job to cancel, %s, to start", x.cancel)
	return x
}

// beforeFailover stops the cancel queue's worker (SIGSTOP), so that it can
// act on the cancellation only after the failover, and requests the
// cancellation.
func (x *extras) beforeFailover() {
	b := x.s.b
	b.t.Helper()
	x.w.signal(syscall.SIGSTOP)
	st, err := b.queue.Cancel(context.Background(), x.cancel)
	require.NoError(b.t, err)
	require.Equal(b.t, jobtype.StateRunning, st, "the job to cancel was not running")
}

// afterFailover wakes the cancel queue's worker and requires the job
// cancelled and the uniqueness key still held.
func (x *extras) afterFailover() {
	b := x.s.b
	b.t.Helper()
	x.w.signal(syscall.SIGCONT)
	ctx := context.Background()
	var res *queue.Result
	testutil.Eventually(b.t, waitLong, func() bool {
		var err error
		res, err = b.queue.Enqueue(ctx, "plain", map[string]int{"sleep_ms": 1},
			&queue.EnqueueOpts{Queue: x.s.jobQueue, UniqueKey: uniqueKey, In: time.Hour})
		return err == nil
	}, "an enqueue to succeed after the failover")
	require.True(b.t, res.Duplicate, "a unique job enqueued before the failover no longer blocks a duplicate after it")
	require.Equal(b.t, x.unique, res.Job.ID)
	// Done with it: it would wait an hour.
	st, err := b.queue.Cancel(ctx, x.unique)
	require.NoError(b.t, err)
	require.Equal(b.t, jobtype.StateScheduled, st)
	testutil.Eventually(b.t, waitLong, func() bool { return x.w.logCount("runner: job cancelled", x.cancel) > 0 },
		"the job %s cancelled before the failover to be cancelled by its runner", x.cancel)
	b.t.Logf("after the failover: a duplicate of the unique job %s was refused, and the job %s whose cancel was requested before it was cancelled", x.unique, x.cancel)
}

// finish stops the cancel queue's worker and requires that the cancelled
// job never completed nor ran again, and that nothing is left in its queue.
func (x *extras) finish() {
	b := x.s.b
	b.t.Helper()
	x.w.signal(syscall.SIGTERM)
	x.w.requireCleanExit(stopTimeout)
	require.Zero(b.t, b.hashCounts(b.completionsKey())[x.cancel], "the cancelled job completed")
	require.Equal(b.t, int64(1), b.hashCounts(b.startsKey())[x.cancel], "the cancelled job ran again")
	b.requireQueueDrained(b.keys.Q(x.s.cancelQueue))
}

// failoverStep is one failover a test does while the workload runs.
type failoverStep struct {
	kill bool // SIGKILL the primary (else CLUSTER FAILOVER)
	// shard names the shard to fail over: "job" (the iterable job's queue
	// and state, with the extras' queues) or "global" (the process
	// registry).
	shard string
}

// runFailover runs the workload on two workers and fails the shards of
// steps over, one after the other, each once the iterable job and the
// plain jobs have progressed since the previous one. Then it requires that
// every plain job completed, the iterable job completed with every item
// done, nothing is left in any queue, in flight or dead, the saved cursor
// never went back (graceful failovers) or not below what was replicated
// before a kill, and every item processed twice lies after a cursor saved
// before a failover.
func runFailover(t *testing.T, steps ...failoverStep) {
	s := setupFailover(t)
	b := s.b
	ids := s.enqueue()
	var x *extras
	if slices.ContainsFunc(steps, func(st failoverStep) bool { return st.shard == "job" }) {
		x = s.startExtras()
	}
	watch := s.watchCursor()
	opts := failoverOpts()
	workers := []*worker{b.startWorker(opts), b.startWorker(opts)}
	start := time.Now()

	// A floor is what the saved cursor may never go below from its time
	// on: the cursor saved before a graceful failover, or saved and
	// replicated before a kill.
	type floor struct {
		from   time.Time
		cursor int64
	}
	var floors []floor
	var dead *worker       // killed with a primary
	var promoted time.Time // when the last killed primary's replica took over
	progress, done := int64(0), int64(0)
	for i, st := range steps {
		testutil.Eventually(t, waitLong, func() bool {
			return watch.last() >= progress+1000 && b.hlen(b.completionsKey()) >= done+1000
		}, "the jobs to progress before failover %d", i+1)
		require.NotEqual(t, cursor.StatusCompleted, b.status(s.iterID), "the iterable job completed before failover %d; give it more items", i+1)
		done = b.hlen(b.completionsKey())
		require.Less(t, done, int64(failoverJobs), "all plain jobs completed before failover %d; give them more work", i+1)

		key := b.keys.Procs()
		if st.shard == "job" {
			key = b.keys.Iter(s.iterID)
			x.beforeFailover()
		}
		var from, to *clusterNode
		var took time.Duration
		var missed int64
		var stopped time.Duration
		_, c := b.state(s.iterID)
		how := "graceful failover (CLUSTER FAILOVER)"
		if st.kill {
			s.rc.waitReplicated()
			floors = append(floors, floor{time.Now(), c})
			var during func(*clusterNode)
			if st.shard == "job" {
				// A worker starts just before the kill: its registration in
				// the queues of the killed shard is lost, while the registry
				// keeps it. And the worker running the iterable job dies
				// with the primary: a new run resumes from the cursor the
				// replica had, and the reaper recovers the dead worker's
				// in-flight jobs, those whose acks were lost included.
				hold := opts
				hold.hold = true
				w := b.startWorker(hold)
				workers = append(workers, w)
				holder := slices.IndexFunc(workers, func(w *worker) bool {
					return b.rdb.HExists(context.Background(), b.keys.Q(s.jobQueue).Inflight(w.id), s.iterID).Val()
				})
				require.GreaterOrEqual(t, holder, 0, "no worker holds the iterable job")
				dead = workers[holder]
				workers = slices.Delete(workers, holder, holder+1)
				during = func(primary *clusterNode) {
					w.release()
					testutil.Eventually(t, waitLong, func() bool {
						return primary.c.HExists(context.Background(), b.keys.Q(s.jobQueue).Procs(), w.id).Val()
					}, "worker %s to register in queue %s", w.id, s.jobQueue)
					dead.signal(syscall.SIGKILL)
					dead.waitExit(10 * time.Second)
				}
			}
			from, to, took, stopped, missed = s.rc.killPrimary(key, killLag, during)
			promoted = time.Now()
			how = fmt.Sprintf("primary killed (SIGKILL) %s after its replica stopped, which missed %d bytes of writes,", stopped.Round(time.Millisecond), missed)
		} else {
			floors = append(floors, floor{time.Now(), c})
			from, to, took = s.rc.failover(key)
		}
		t.Logf("failover %d, %s shard, %s at %s: port %d -> %d; the cluster was ok with the new primary %s later; %d plain jobs done, saved cursor %d",
			i+1, st.shard, how, time.Since(start).Round(time.Millisecond), from.port, to.port,
			took.Round(time.Millisecond), done, floors[len(floors)-1].cursor)
		if dead != nil {
			t.Logf("worker %s, which ran the iterable job, was killed with the primary", dead.id)
		}
		if st.shard == "job" {
			x.afterFailover()
		}
		progress = watch.last()
	}

	stranded := b.waitCompleted(failoverJobs)
	require.Empty(t, stranded, "jobs stranded in flight in live workers")
	// Jobs that run again (a lost fetch or ack) may still wait or run.
	testutil.Eventually(t, waitLong, func() bool { return b.onlyInFlight() && len(b.inFlight()) == 0 },
		"the jobs that run again to be done")
	testutil.Eventually(t, waitLong, func() bool { return b.status(s.iterID) == cursor.StatusCompleted }, "the iterable job to complete")
	t.Logf("all %d plain jobs and the iterable job completed %s after the workers started", failoverJobs, time.Since(start).Round(time.Millisecond))
	if !promoted.IsZero() {
		// go-redis alone would keep calling the dead primary until its next
		// periodic reload, 60 s by default; the library asks for a reload
		// when calls fail, so the work goes on within seconds (about 6 s
		// here on a loaded machine; a minute without it).
		require.Less(t, time.Since(promoted), 40*time.Second,
			"the work took %s after the replica was promoted: the workers did not follow the new primary", time.Since(promoted).Round(time.Millisecond))
	}
	// Every worker may fetch from each of its queues: one whose
	// registration in a queue was lost has registered again.
	for _, w := range workers {
		for _, q := range b.queues {
			testutil.Eventually(t, waitLong, func() bool {
				return b.rdb.HExists(context.Background(), b.keys.Q(q).Procs(), w.id).Val()
			}, "worker %s to be registered in queue %s", w.id, q)
		}
	}
	for _, w := range workers {
		w.signal(syscall.SIGTERM)
	}
	for _, w := range workers {
		w.requireCleanExit(stopTimeout)
	}
	if x != nil {
		x.finish()
	}
	watch.close()

	requireAllCompleted(t, b, ids)
	startedTwice := 0
	for _, n := range b.hashCounts(b.startsKey()) {
		if n > 1 {
			startedTwice++
		}
	}
	t.Logf("%d plain jobs started more than once", startedTwice)
	b.requireDrained()

	// The saved cursor: never back, except to what was replicated before a
	// kill.
	obs := watch.all()
	require.NotEmpty(t, obs)
	back := 0
	for i := 1; i < len(obs); i++ {
		if obs[i].cursor >= obs[i-1].cursor {
			continue
		}
		back++
		lowest := int64(-1)
		for _, f := range floors {
			if f.from.Before(obs[i].at) {
				lowest = f.cursor
			}
		}
		require.True(t, slices.ContainsFunc(steps, func(st failoverStep) bool { return st.kill }),
			"the saved cursor went back from %d to %d with no data lost", obs[i-1].cursor, obs[i].cursor)
		require.GreaterOrEqual(t, obs[i].cursor, lowest,
			"the saved cursor went back from %d to %d, below %d, saved and replicated before the kill", obs[i-1].cursor, obs[i].cursor, lowest)
		t.Logf("the saved cursor went back from %d to %d (replicated before the kill: %d)", obs[i-1].cursor, obs[i].cursor, lowest)
	}
	t.Logf("the saved cursor took %d values, went back %d times; %d reads failed (during the failovers)", len(obs), back, watch.errors)

	// Items: every one done; one done more than once lies after the
	// cursor saved before the first failover, and no item ran more often
	// than the job had runs.
	st, c := b.state(s.iterID)
	require.Equal(t, int64(failoverItems), c)
	require.Equal(t, int64(failoverItems), st.ItemsProcessed, "items_processed counts checkpointed items, each once")
	counts := b.itemCounts(s.iterID)
	require.Len(t, counts, failoverItems, "items outside [0, n) recorded")
	repeated, lo, hi := 0, int64(-1), int64(-1)
	for i := range int64(failoverItems) {
		require.Positive(t, counts[i], "item %d never processed", i)
		if counts[i] == 1 {
			continue
		}
		require.GreaterOrEqual(t, i, floors[0].cursor, "item %d, below the cursor saved before the first failover, was processed %d times", i, counts[i])
		require.LessOrEqual(t, counts[i], int64(st.Executions), "item %d processed %d times in %d runs", i, counts[i], st.Executions)
		repeated++
		if lo < 0 {
			lo = i
		}
		hi = i
	}
	if repeated > 0 {
		t.Logf("iterable job: %d runs, %d of %d items processed more than once (items %d..%d)", st.Executions, repeated, failoverItems, lo, hi)
	} else {
		t.Logf("iterable job: %d runs, every item processed once", st.Executions)
	}
	if dead != nil {
		workers = append(workers, dead)
	}
	if x != nil {
		workers = append(workers, x.w)
	}
	for _, w := range workers {
		logFailoverRecords(t, w)
	}
}

// logFailoverRecords logs how often a worker logged each of the records a
// failover may bring.
func logFailoverRecords(t *testing.T, w *worker) {
	t.Helper()
	var sb strings.Builder
	for _, r := range []struct{ name, text string }{
		{"fetch failed", "runner: fetch failed"},
		{"recording a run's end failed", "runner: recording the end of a run failed"},
		{"ack not applied", "runner: acknowledgement not applied"},
		{"checkpoint failed", "runner: checkpoint failed"},
		{"state save retried", "runner: saving the job's state failed"},
		{"heartbeat failed", "runner: heartbeat failed"},
		{"orphans swept back", "runner: returned jobs this process held"},
		{"Redis lost its registration", "runner: Redis lost this process's registration"},
		{"job state restored", "runner: restored the job's state"},
		{"presumed dead", "runner: this process was presumed dead"},
		{"registered again in its queues", "consumer: registered again in its queues"},
		{"reaped others", "consumer: reaped a dead process"},
		{"job failed, retried", "runner: job failed; will retry"},
	} {
		if n := w.logCount(r.text); n > 0 {
			fmt.Fprintf(&sb, ", %s %d", r.name, n)
		}
	}
	t.Logf("worker %s logged: %s", w.id, strings.TrimPrefix(sb.String(), ", "))
}

// Graceful failovers, first of the shard that holds the iterable job's
// queue and state (and a unique job, and a job being cancelled), then of
// the shard that holds the process registry: nothing is lost, so the saved
// cursor never goes back.
func TestFailoverManualLosesNothing(t *testing.T) {
	runFailover(t, failoverStep{shard: "job"}, failoverStep{shard: "global"})
}

// The primary of the shard that holds the iterable job's queue and state is
// killed; its replica is promoted without the writes it had not received.
func TestFailoverPrimaryKilledJobShard(t *testing.T) {
	runFailover(t, failoverStep{kill: true, shard: "job"})
}

// The primary of the shard that holds the process registry is killed: the
// workers find their registrations gone and put back the jobs they hold.
func TestFailoverPrimaryKilledGlobalShard(t *testing.T) {
	runFailover(t, failoverStep{kill: true, shard: "global"})
}
