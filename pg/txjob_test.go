package pg_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/keyset"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/iterjobtest"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/pg/internal/pgtest"
	"github.com/iterjob/iterjob/runner"
)

// rowsTable creates tx_rows with rows 1..n in the bundle's schema.
func (b *bundle) rowsTable(t testing.TB, n int) {
	t.Helper()
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, pgtest.RowsDDL)
	require.NoError(t, err)
	require.NoError(t, pgtest.FillRows(ctx, b.pool, n))
}

// counts returns how many rows were processed 0, 1, 2... times.
func (b *bundle) counts(t testing.TB) map[int]int {
	t.Helper()
	c, err := pgtest.RowCounts(context.Background(), b.pool)
	require.NoError(t, err)
	return c
}

// hookedRows is pgtest.RowsJob with a hook run inside each batch's
// transaction, after the batch's update.
type hookedRows struct {
	pgtest.RowsJob
	hook func(rows []pgtest.Row) error
}

func (j hookedRows) EachBatchTx(ctx context.Context, tx pgx.Tx, a pgtest.RowsArgs, rows []pgtest.Row) error {
	if err := j.RowsJob.EachBatchTx(ctx, tx, a, rows); err != nil {
		return err
	}
	if j.hook != nil {
		return j.hook(rows)
	}
	return nil
}

func (b *bundle) txRows(t testing.TB, hook func([]pgtest.Row) error, batch int) iterable.Job[pgtest.RowsArgs, []pgtest.Row, keyset.Cursor] {
	t.Helper()
	job, err := pg.TransactionalBatches(hookedRows{RowsJob: pgtest.RowsJob{Pool: b.pool}, hook: hook}, batch, pg.TxConfig{Pool: b.pool, Schema: b.schema})
	require.NoError(t, err)
	return job
}

// A process that dies between checkpoints loses nothing and repeats
// nothing with transactional checkpoints: each run resumes at the cursor
// its predecessor committed, although the cursor store's mirror is behind.
// The same crashes repeat batches of the plain job, which shows the test
// can tell.
func TestTxJobCrashResumesAtTheCommittedCursor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	b.rowsTable(t, 50)
	job := b.txRows(t, nil, 5)

	first, err := iterjobtest.IterateWith(ctx, job, pgtest.RowsArgs{Page: 7}, nil, iterjobtest.Options{CrashAfter: 3})
	require.NoError(t, err)
	require.Equal(t, iterjobtest.Crashed, first.Stop)
	require.Nil(t, first.Cursor, "no checkpoint reached the cursor store")
	require.Equal(t, map[int]int{1: 15, 0: 35}, b.counts(t))

	second, err := iterjobtest.IterateWith(ctx, job, pgtest.RowsArgs{Page: 7}, first, iterjobtest.Options{CrashAfter: 2})
	require.NoError(t, err)
	require.Equal(t, iterjobtest.Crashed, second.Stop)
	require.Equal(t, map[int]int{1: 25, 0: 25}, b.counts(t))
	c, err := pg.LoadCursor(ctx, b.pool, b.schema, second.Info.JobID)
	require.NoError(t, err)
	require.JSONEq(t, `{"key":["25"]}`, string(c.Cursor))
	require.Equal(t, int64(5), c.Items)
	require.Equal(t, 2, c.Executions)
	require.Equal(t, second.Info.Run, c.Run)

	last, err := iterjobtest.Iterate(ctx, job, pgtest.RowsArgs{Page: 7}, second, 0)
	require.NoError(t, err)
	require.Equal(t, iterable.Completed, last.Stop)
	require.Equal(t, int64(5), last.Items, "the last run did only what was left")
	require.Equal(t, int64(10), last.Total, "the mirror counts every batch once")
	require.Equal(t, 3, last.Info.Executions)
	require.Equal(t, int64(5), last.Info.ItemsProcessed, "the run began from the committed count")
	require.Equal(t, map[int]int{1: 50}, b.counts(t), "every row processed exactly once")
	_, err = pg.LoadCursor(ctx, b.pool, b.schema, last.Info.JobID)
	require.ErrorIs(t, err, pg.ErrCursorNotFound, "a completed job's row is deleted")

	// Control: the same crash repeats the plain job's batches.
	_, err = b.pool.Exec(ctx, `UPDATE tx_rows SET n = 0`)
	require.NoError(t, err)
	plain := pgtest.PlainRowsJob{Pool: b.pool, Batch: 5}
	run, err := iterjobtest.IterateWith(ctx, plain, pgtest.RowsArgs{}, nil, iterjobtest.Options{CrashAfter: 3})
	require.NoError(t, err)
	_, err = iterjobtest.Iterate(ctx, plain, pgtest.RowsArgs{}, run, 0)
	require.NoError(t, err)
	require.Equal(t, map[int]int{2: 15, 1: 35}, b.counts(t))
}

// A failing batch rolls back with its cursor: the retry resumes at it and
// processes its rows once.
func TestTxJobFailedBatchRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	b.rowsTable(t, 30)
	boom := errors.New("boom")
	var failed atomic.Bool
	job := b.txRows(t, func(rows []pgtest.Row) error {
		if rows[0].ID == 11 && failed.CompareAndSwap(false, true) {
			return boom
		}
		return nil
	}, 10)

	first, err := iterjobtest.Iterate(ctx, job, pgtest.RowsArgs{}, nil, 0)
	require.ErrorIs(t, err, boom)
	require.Equal(t, "retry", first.Action)
	require.Equal(t, map[int]int{1: 10, 0: 20}, b.counts(t), "the failed batch left nothing")
	c, err := pg.LoadCursor(ctx, b.pool, b.schema, first.Info.JobID)
	require.NoError(t, err)
	require.Equal(t, "failed", c.Status)
	require.JSONEq(t, `{"key":["10"]}`, string(c.Cursor))

	_, err = iterjobtest.Iterate(ctx, job, pgtest.RowsArgs{}, first, 0)
	require.NoError(t, err)
	require.Equal(t, map[int]int{1: 30}, b.counts(t))
}

// Two overlapping runs of one job never both commit. A newer run claims the
// job while an older run is inside an item's transaction: the older run's
// commit then fails and its work rolls back, and every later commit of it
// fails too; the newer run resumes after the older run's last commit.
func TestTxJobOverlappingRunsNeverBothCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	b.rowsTable(t, 4)
	var (
		inside  = make(chan struct{})
		release = make(chan struct{})
		once    sync.Once
	)
	job := b.txRows(t, func(rows []pgtest.Row) error {
		if rows[0].ID == 2 {
			once.Do(func() { close(inside); <-release })
		}
		return nil
	}, 1)
	cm := job.(iterable.Committer[pgtest.RowsArgs, []pgtest.Row])
	item := func(id int64) ([]pgtest.Row, json.RawMessage) {
		raw, err := json.Marshal(keyset.Cursor{Key: []string{jsonInt(id)}})
		require.NoError(t, err)
		return []pgtest.Row{{ID: id}}, raw
	}
	const jid = "overlap"
	args := pgtest.RowsArgs{}

	c, err := cm.ClaimCommitted(ctx, jid, 1, args)
	require.NoError(t, err)
	require.Nil(t, c.Cursor)
	rows, cur := item(1)
	require.NoError(t, cm.CommitItem(ctx, jid, 1, args, rows, cur))

	// Run 1 is inside item 2's transaction when run 2 claims the job.
	older := make(chan error, 1)
	go func() {
		rows, cur := item(2)
		older <- cm.CommitItem(ctx, jid, 1, args, rows, cur)
	}()
	<-inside
	c, err = cm.ClaimCommitted(ctx, jid, 2, args)
	require.NoError(t, err)
	require.JSONEq(t, `{"key":["1"]}`, string(c.Cursor), "the newer run resumes after the older run's last commit")
	require.Equal(t, int64(1), c.Items)
	close(release)
	require.ErrorIs(t, <-older, cursor.ErrStaleRun, "the older run's commit must fail")
	require.Equal(t, map[int]int{1: 1, 0: 3}, b.counts(t), "the older run's work rolled back")

	// The older run stays fenced out.
	rows, cur = item(2)
	require.ErrorIs(t, cm.CommitItem(ctx, jid, 1, args, rows, cur), cursor.ErrStaleRun)
	_, err = cm.ClaimCommitted(ctx, jid, 1, args)
	require.ErrorIs(t, err, cursor.ErrStaleRun, "an older run cannot claim the job back")
	require.Equal(t, map[int]int{1: 1, 0: 3}, b.counts(t))

	for id := int64(2); id <= 4; id++ {
		rows, cur := item(id)
		require.NoError(t, cm.CommitItem(ctx, jid, 2, args, rows, cur))
	}
	require.Equal(t, map[int]int{1: 4}, b.counts(t))
	got, err := pg.LoadCursor(ctx, b.pool, b.schema, jid)
	require.NoError(t, err)
	require.Equal(t, int64(4), got.Items)
	require.Equal(t, int64(2), got.Run)
	require.Equal(t, 2, got.Executions)
}

// Two overlapping runs, both committing as fast as they can: whatever the
// interleaving, once the newer run has claimed the job no commit of the
// older run succeeds, and the rows each committed are disjoint.
func TestTxJobOverlappingRunsRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	const n = 200
	b.rowsTable(t, n)
	job := b.txRows(t, nil, 1)
	cm := job.(iterable.Committer[pgtest.RowsArgs, []pgtest.Row])
	args := pgtest.RowsArgs{}
	const jid = "race"
	_, err := cm.ClaimCommitted(ctx, jid, 1, args)
	require.NoError(t, err)

	// Each run walks the rows from where the job's committed cursor stood
	// when it claimed; the older run starts first and is overtaken.
	walk := func(run int64, from int64, committed *[]int64) error {
		for id := from + 1; id <= n; id++ {
			raw, err := json.Marshal(keyset.Cursor{Key: []string{jsonInt(id)}})
			require.NoError(t, err)
			if err := cm.CommitItem(ctx, jid, run, args, []pgtest.Row{{ID: id}}, raw); err != nil {
				return err
			}
			*committed = append(*committed, id)
		}
		return nil
	}
	var olderRows, newerRows []int64
	olderDone := make(chan error, 1)
	go func() { olderDone <- walk(1, 0, &olderRows) }()
	testutil.Eventually(t, 10*time.Second, func() bool {
		var c int64
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT items_processed FROM job_cursors`).Scan(&c))
		return c >= 20
	}, "the older run to commit some rows")
	c, err := cm.ClaimCommitted(ctx, jid, 2, args)
	require.NoError(t, err)
	var from keyset.Cursor
	require.NoError(t, json.Unmarshal(c.Cursor, &from))
	start, err := strconv.ParseInt(from.Key[0], 10, 64)
	require.NoError(t, err)
	require.NoError(t, walk(2, start, &newerRows))
	olderErr := <-olderDone
	require.ErrorIs(t, olderErr, cursor.ErrStaleRun)
	require.Equal(t, start, int64(len(olderRows)), "the older run committed exactly the rows before the newer run's cursor")
	require.Equal(t, map[int]int{1: n}, b.counts(t), "every row committed once")
	t.Logf("older run committed %d rows, newer run %d", len(olderRows), len(newerRows))
}

// A run whose job a newer run claimed while it iterated ends as lost at the
// item it was on, having committed nothing after the claim.
func TestTxJobRunFencedOutMidwayIsLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	b.rowsTable(t, 10)
	var (
		inside  = make(chan struct{})
		release = make(chan struct{})
		once    sync.Once
	)
	job := b.txRows(t, func(rows []pgtest.Row) error {
		if rows[0].ID == 3 {
			once.Do(func() { close(inside); <-release })
		}
		return nil
	}, 1)
	done := make(chan *iterjobtest.Run, 1)
	go func() {
		r, err := iterjobtest.Iterate(ctx, job, pgtest.RowsArgs{}, nil, 0)
		require.NoError(t, err)
		done <- r
	}()
	<-inside
	var jid string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT job_id FROM job_cursors`).Scan(&jid))
	_, err := job.(iterable.Committer[pgtest.RowsArgs, []pgtest.Row]).ClaimCommitted(ctx, jid, 99, pgtest.RowsArgs{})
	require.NoError(t, err)
	close(release)
	r := <-done
	require.Equal(t, "lost", r.Action)
	require.Equal(t, int64(2), r.Items, "items 1 and 2 committed; item 3 was fenced out")
	require.Equal(t, map[int]int{1: 2, 0: 8}, b.counts(t))
	c, err := pg.LoadCursor(ctx, b.pool, b.schema, jid)
	require.NoError(t, err)
	require.Equal(t, int64(99), c.Run)
	require.Equal(t, "running", c.Status, "the lost run's end was not recorded over the newer run's")
	require.JSONEq(t, `{"key":["2"]}`, string(c.Cursor))
}

// Through a runner: a transactional job runs to completion with each row
// processed once, and the cursor store's mirror shows its progress.
func TestTxJobThroughTheRunner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	b.rowsTable(t, 500)
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, pgtest.RowsKind, b.txRows(t, nil, 20), nil)
	b.work(t, reg)
	res, err := b.client.Enqueue(ctx, pgtest.RowsKind, pgtest.RowsArgs{Page: 64}, nil)
	require.NoError(t, err)
	store, err := cursor.NewRedisStore(b.redis.Client, cursor.RedisConfig{Namespace: b.redis.Namespace})
	require.NoError(t, err)
	var st cursor.State
	testutil.Eventually(t, 20*time.Second, func() bool {
		st, err = store.Load(ctx, res.Job.ID)
		return err == nil && st.Status == cursor.StatusCompleted
	}, "the job to complete")
	require.Equal(t, int64(25), st.ItemsProcessed)
	require.JSONEq(t, `{"key":["500"]}`, string(st.Cursor))
	require.Equal(t, map[int]int{1: 500}, b.counts(t))
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, err := pg.LoadCursor(ctx, b.pool, b.schema, res.Job.ID)
		return errors.Is(err, pg.ErrCursorNotFound)
	}, "the completed job's row to be deleted (just after the mirror says completed)")
}

func TestTransactionalChecksItsConfig(t *testing.T) {
	t.Parallel()
	_, err := pg.Transactional[int, int, int](nil, pg.TxConfig{})
	require.Error(t, err)
	_, err = pg.TransactionalBatches(pgtest.RowsJob{}, 10, pg.TxConfig{})
	require.ErrorContains(t, err, "Pool is required")
	pool := &pgxpool.Pool{} // never used
	_, err = pg.TransactionalBatches(pgtest.RowsJob{}, 0, pg.TxConfig{Pool: pool})
	require.ErrorIs(t, err, enumerators.ErrBatchSize)
	_, err = pg.TransactionalBatches(pgtest.RowsJob{}, 10, pg.TxConfig{Pool: pool, Schema: "no-dash"})
	require.ErrorIs(t, err, pg.ErrInvalidSchema)
	job, err := pg.TransactionalBatches(pgtest.RowsJob{}, 10, pg.TxConfig{Pool: pool})
	require.NoError(t, err)
	require.ErrorIs(t, job.EachIteration(context.Background(), pgtest.RowsArgs{}, nil), pg.ErrNotCommitted)
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// rangeTx is a TxJob over the integers 1..n: each item adds a row; on item
// commitAt it commits the transaction itself, which it must not.
type rangeTx struct {
	n, commitAt int64
}

func (j rangeTx) BuildEnumerator(_ context.Context, _ struct{}, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(1, j.n+1, c), nil
}

func (j rangeTx) EachIterationTx(ctx context.Context, tx pgx.Tx, _ struct{}, i int64) error {
	if _, err := tx.Exec(ctx, `INSERT INTO seen (i) VALUES ($1)`, i); err != nil {
		return err
	}
	if i == j.commitAt {
		return tx.Commit(ctx)
	}
	return nil
}

// Transactional (one item per transaction): the items commit with their
// cursor, and an item that ends its own transaction fails with ErrTxEnded
// rather than committing its work without its cursor.
func TestTransactionalOneItemPerTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	_, err := b.pool.Exec(ctx, `CREATE TABLE seen (i bigint PRIMARY KEY)`)
	require.NoError(t, err)
	job, err := pg.Transactional(rangeTx{n: 6, commitAt: 4}, pg.TxConfig{Pool: b.pool, Schema: b.schema})
	require.NoError(t, err)
	run, err := iterjobtest.Iterate(ctx, job, struct{}{}, nil, 0)
	require.ErrorIs(t, err, pg.ErrTxEnded)
	c, err := pg.LoadCursor(ctx, b.pool, b.schema, run.Info.JobID)
	require.NoError(t, err)
	require.JSONEq(t, `4`, string(c.Cursor))
	require.Equal(t, int64(3), c.Items)

	job, err = pg.Transactional(rangeTx{n: 6}, pg.TxConfig{Pool: b.pool, Schema: b.schema})
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `DELETE FROM seen WHERE i = 4`) // what the bad commit left
	require.NoError(t, err)
	run, err = iterjobtest.Iterate(ctx, job, struct{}{}, run, 0)
	require.NoError(t, err)
	require.Equal(t, int64(3), run.Items)
	var n int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM seen`).Scan(&n))
	require.Equal(t, 6, n)
}

// hooked is a TxJob with every hook, recording their calls.
type hooked struct {
	rangeTx
	calls *[]string
}

func (h hooked) OnStart(context.Context, struct{}) error {
	*h.calls = append(*h.calls, "start")
	return nil
}
func (h hooked) OnResume(context.Context, struct{}) error {
	*h.calls = append(*h.calls, "resume")
	return nil
}
func (h hooked) OnComplete(context.Context, struct{}) error {
	*h.calls = append(*h.calls, "complete")
	return nil
}
func (h hooked) OnStop(_ context.Context, _ struct{}, r iterable.StopReason) error {
	*h.calls = append(*h.calls, "stop:"+string(r))
	return nil
}

// The hooks of a transactional job run as the iterable hooks do, and each
// run's end is recorded in its row (interrupted), which goes once the job
// completes.
func TestTransactionalForwardsHooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	_, err := b.pool.Exec(ctx, `CREATE TABLE seen (i bigint PRIMARY KEY)`)
	require.NoError(t, err)
	var calls []string
	job, err := pg.Transactional(hooked{rangeTx: rangeTx{n: 5}, calls: &calls}, pg.TxConfig{Pool: b.pool, Schema: b.schema})
	require.NoError(t, err)
	first, err := iterjobtest.Iterate(ctx, job, struct{}{}, nil, 2)
	require.NoError(t, err)
	require.Equal(t, "requeue", first.Action)
	c, err := pg.LoadCursor(ctx, b.pool, b.schema, first.Info.JobID)
	require.NoError(t, err)
	require.Equal(t, "interrupted", c.Status)
	require.Equal(t, "iterjobtest", c.Kind, "iterjobtest runs jobs of this kind")
	_, err = iterjobtest.Iterate(ctx, job, struct{}{}, first, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"start", "stop:interrupted", "resume", "complete", "stop:completed"}, calls)
	_, err = pg.LoadCursor(ctx, b.pool, b.schema, first.Info.JobID)
	require.ErrorIs(t, err, pg.ErrCursorNotFound)
}

// PruneCursors deletes the rows not written for longer than asked.
func TestPruneCursors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	_, err := b.pool.Exec(ctx, `INSERT INTO job_cursors (job_id, run, updated_at) VALUES
		('old', 1, now() - interval '40 days'), ('new', 1, now() - interval '1 day')`)
	require.NoError(t, err)
	_, err = pg.PruneCursors(ctx, b.pool, b.schema, 0)
	require.Error(t, err)
	n, err := pg.PruneCursors(ctx, b.pool, b.schema, 30*24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	_, err = pg.LoadCursor(ctx, b.pool, b.schema, "old")
	require.ErrorIs(t, err, pg.ErrCursorNotFound)
	c, err := pg.LoadCursor(ctx, b.pool, b.schema, "new")
	require.NoError(t, err)
	require.Equal(t, "running", c.Status)
	require.Nil(t, c.Cursor)
	require.True(t, c.LastCommitAt.IsZero())
}
