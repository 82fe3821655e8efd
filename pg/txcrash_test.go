package pg_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/pg/internal/pgtest"
)

// The worker's txrows mode runs the rows job with transactional checkpoints
// in batches of this many rows (its -batch default), pausing up to 20 ms
// inside each batch's transaction, so that kills land inside transactions.
const crashBatch = 10

// txRows is what the transactional crash tests share: a table of rows, jobs
// that walk disjoint ranges of it, and the cursor store's mirror.
type txRows struct {
	*bundle
	rows  int
	jids  []string
	store *cursor.RedisStore
}

// setupTxRows fills a table of rows and enqueues jobs rows-job walking
// equal ranges of it.
func setupTxRows(t *testing.T, rows, jobs int) *txRows {
	t.Helper()
	b := setup(t, testutil.RealRedis(t))
	workerBin(t)
	b.rowsTable(t, rows)
	store, err := cursor.NewRedisStore(b.redis.Client, cursor.RedisConfig{Namespace: b.redis.Namespace})
	require.NoError(t, err)
	x := &txRows{bundle: b, rows: rows, store: store}
	per := int64(rows / jobs)
	for i := range int64(jobs) {
		res, err := b.client.Enqueue(context.Background(), pgtest.RowsKind, pgtest.RowsArgs{From: i * per, To: (i + 1) * per, Page: 500}, nil)
		require.NoError(t, err)
		x.jids = append(x.jids, res.Job.ID)
	}
	return x
}

// done counts the rows processed at least once.
func (x *txRows) done(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, x.pool.QueryRow(context.Background(), `SELECT count(*) FROM tx_rows WHERE n > 0`).Scan(&n))
	return n
}

// waitProgress waits until at least n more rows than now are done.
func (x *txRows) waitProgress(t *testing.T, n int) {
	t.Helper()
	target := min(x.done(t)+n, x.rows)
	testutil.Eventually(t, 60*time.Second, func() bool { return x.done(t) >= target }, "%d rows to be processed", target)
}

// waitStatus waits until every job's mirrored state has one of statuses.
func (x *txRows) waitStatus(t *testing.T, statuses ...cursor.Status) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, func() bool {
		for _, jid := range x.jids {
			st, err := x.store.Load(context.Background(), jid)
			if err != nil {
				return false
			}
			found := false
			for _, s := range statuses {
				found = found || st.Status == s
			}
			if !found {
				return false
			}
		}
		return true
	}, "every job to be %v", statuses)
}

// requireConsistent checks a stop between runs: no row was processed twice,
// the rows processed are exactly those the committed cursors count, and for
// every unfinished job the mirror agrees with the committed state.
func (x *txRows) requireConsistent(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	counts := x.counts(t)
	for n := range counts {
		require.LessOrEqual(t, n, 1, "rows processed more than once: %v", counts)
	}
	var committed int
	for _, jid := range x.jids {
		st, err := x.store.Load(ctx, jid)
		require.NoError(t, err)
		if st.Status == cursor.StatusCompleted {
			committed += x.rows / len(x.jids)
			continue
		}
		require.Equal(t, cursor.StatusInterrupted, st.Status)
		// The run records its end in PostgreSQL in OnStop, just after the
		// mirror's final save.
		var c *pg.Cursor
		testutil.Eventually(t, 10*time.Second, func() bool {
			c, err = pg.LoadCursor(ctx, x.pool, x.schema, jid)
			require.NoError(t, err)
			return c.Status == "interrupted"
		}, "job %s's row to say interrupted", jid)
		require.JSONEq(t, string(c.Cursor), string(st.Cursor), "job %s: the mirror's cursor is the committed one", jid)
		require.Equal(t, c.Items, st.ItemsProcessed, "job %s: the mirror counts the committed items", jid)
		committed += int(c.Items) * crashBatch
	}
	require.Equal(t, committed, counts[1], "the rows processed are those committed")
}

// requireExactlyOnce waits for every job to complete and checks that every
// row was processed exactly once and that no committed state is left.
func (x *txRows) requireExactlyOnce(t *testing.T) {
	t.Helper()
	x.waitStatus(t, cursor.StatusCompleted)
	require.Equal(t, map[int]int{1: x.rows}, x.counts(t), "every row processed exactly once")
	// The last run deletes its row in OnStop, just after the mirror says
	// completed.
	testutil.Eventually(t, 10*time.Second, func() bool {
		var left int
		require.NoError(t, x.pool.QueryRow(context.Background(), `SELECT count(*) FROM job_cursors`).Scan(&left))
		return left == 0
	}, "completed jobs' rows to be deleted")
	for _, jid := range x.jids {
		st, err := x.store.Load(context.Background(), jid)
		require.NoError(t, err)
		require.Equal(t, int64(x.rows/len(x.jids)/crashBatch), st.ItemsProcessed, "job %s: each batch counted once", jid)
	}
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig))
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Two worker processes run four transactional jobs over one table; one of
// them, at random, is killed with SIGKILL again and again, mostly inside an
// item's transaction, and replaced. The jobs move between processes (a
// killed process's jobs are recovered by a live one). Now and then the
// process running jobs is frozen (SIGSTOP) for longer than DeadAfter, so
// its jobs run again in the other process, and then thawed (SIGCONT): its
// runs, often inside a transaction, overlap the newer ones, and must not
// commit. In the end every row was processed exactly once: none twice,
// none missed.
func TestCrashTxJobKilledProcessesEachRowExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes for several seconds")
	}
	t.Parallel()
	rng := crashSeed(t)
	x := setupTxRows(t, 20_000, 4)
	procs := []*proc{x.startProc(t, "txrows", 0), x.startProc(t, "txrows", 1)}
	const (
		kills   = 12
		freezes = 3
	)
	var (
		midway, frozenBusy int
		at                 []int
		lost               int
	)
	for i := range kills + freezes {
		time.Sleep(time.Duration(150+rng.IntN(500)) * time.Millisecond)
		if i%5 == 4 { // freeze
			k := x.busyProc(t, procs, rng.IntN(len(procs)))
			if k >= 0 {
				frozenBusy++
			} else {
				k = rng.IntN(len(procs))
			}
			procs[k].signal(syscall.SIGSTOP)
			time.Sleep(2500 * time.Millisecond) // DeadAfter is 1 s
			procs[k].signal(syscall.SIGCONT)
			continue
		}
		k := rng.IntN(len(procs))
		procs[k].kill()
		lost += procs[k].count("another run owns the job now")
		d := x.done(t)
		at = append(at, d)
		if d > 0 && d < x.rows {
			midway++
		}
		procs[k] = x.startProc(t, "txrows", i+2)
	}
	x.requireExactlyOnce(t)
	for _, p := range procs {
		p.stop()
		lost += p.count("another run owns the job now")
	}
	x.requireExactlyOnce(t)
	var executions int
	for _, jid := range x.jids {
		st, err := x.store.Load(context.Background(), jid)
		require.NoError(t, err)
		executions += st.Executions
	}
	t.Logf("%d kills, at %v rows done of %d; %d freezes (%d of a process running jobs); %d runs for %d jobs; %d runs overlapped by a newer one and abandoned",
		kills, at, x.rows, freezes, frozenBusy, executions, len(x.jids), lost)
	require.GreaterOrEqual(t, midway, kills/2, "most kills must land while the jobs run")
	if frozenBusy > 0 {
		require.Positive(t, lost, "a thawed process's runs must end as abandoned")
	}
}

// busyProc returns the index in procs of a process that runs jobs (the
// first at or after from), or -1.
func (x *txRows) busyProc(t *testing.T, procs []*proc, from int) int {
	t.Helper()
	live, err := x.client.Processes(context.Background())
	require.NoError(t, err)
	busy := map[string]bool{}
	for _, p := range live {
		busy[p.ID] = len(p.Busy) > 0
	}
	for i := range procs {
		k := (from + i) % len(procs)
		if busy[procs[k].name] {
			return k
		}
	}
	return -1
}

// SIGTERM stops a worker between items: every job's last item commits, the
// job is interrupted with the cursor store mirroring the committed cursor,
// and a new process resumes it there. Three stops, then the jobs complete
// with every row processed exactly once.
func TestCrashTxJobSIGTERMResumesAtTheCommittedCursor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs worker processes for several seconds")
	}
	t.Parallel()
	x := setupTxRows(t, 8_000, 4)
	for i := range 3 {
		w := x.startProc(t, "txrows", i)
		x.waitProgress(t, 800)
		w.stop()
		require.Zero(t, w.count("shutdown: hard stop"), "the worker hard-stopped")
		x.requireConsistent(t)
	}
	w := x.startProc(t, "txrows", 3)
	x.requireExactlyOnce(t)
	w.stop()
}

// SIGTSTP quiets a worker: its jobs commit their last item and go back to
// the queue while the process stays alive. Another process resumes them at
// their committed cursors; then SIGTERM stops both. Every row is processed
// exactly once.
func TestCrashTxJobSIGTSTPHandsTheJobsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("runs worker processes for several seconds")
	}
	t.Parallel()
	x := setupTxRows(t, 8_000, 4)
	w1 := x.startProc(t, "txrows", 0)
	x.waitProgress(t, 1500)
	w1.signal(syscall.SIGTSTP)
	x.waitStatus(t, cursor.StatusInterrupted, cursor.StatusCompleted)
	x.requireConsistent(t)
	require.True(t, w1.alive(), "the quiet worker exited")
	w2 := x.startProc(t, "txrows", 1)
	x.requireExactlyOnce(t)
	require.True(t, w1.alive(), "the quiet worker exited")
	w1.stop()
	w2.stop()
}
