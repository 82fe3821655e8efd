package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/iterable"
)

// TxJob is an iterable job with transactional checkpoints: the runner
// calls EachIterationTx for each item inside a transaction that also records
// the cursor after the item, and commits both together. A committed item
// never runs again, even after kill -9; an item whose transaction did not
// commit leaves no trace and runs again. Wrap a TxJob with Transactional to
// register it.
//
// The hooks of iterable.Job (Starter, Resumer, Completer, Stopper) work as
// usual when the TxJob implements them; they run outside the items'
// transactions.
type TxJob[A, T, C any] interface {
	// BuildEnumerator is iterable.Job's: it returns the enumeration resumed
	// at cursor, which is the last cursor committed (nil before the first).
	BuildEnumerator(ctx context.Context, args A, cursor *C) (enumerators.Enumerator[T, C], error)
	// EachIterationTx processes one item with tx. It must do its database
	// work through tx and must not commit or roll it back. An error rolls
	// the transaction back and stops the run; the retry resumes at this
	// item. Effects outside the database are not rolled back: they can
	// repeat if the process dies before the commit.
	EachIterationTx(ctx context.Context, tx pgx.Tx, args A, item T) error
}

// TxBatchJob is the batch form of TxJob: its enumerator yields single items,
// and EachBatchTx receives them in groups (enumerators.Batches) with one
// transaction per group. The cursor committed with a group is its last
// item's. Wrap it with TransactionalBatches.
type TxBatchJob[A, T, C any] interface {
	// BuildEnumerator returns the enumeration of single items resumed at
	// cursor (the cursor of the last group committed; nil before the first).
	BuildEnumerator(ctx context.Context, args A, cursor *C) (enumerators.Enumerator[T, C], error)
	// EachBatchTx processes a group of items with tx, as EachIterationTx
	// processes one. items is the job's to keep.
	EachBatchTx(ctx context.Context, tx pgx.Tx, args A, items []T) error
}

// TxConfig configures a job with transactional checkpoints.
type TxConfig struct {
	// Pool opens the items' transactions, on the database that holds the
	// job_cursors table (see Migrate). Required; never closed by us.
	Pool *pgxpool.Pool
	// Schema holds the tables (see Migrate). Default SchemaDefault.
	Schema string
}

// ErrNotCommitted is the error of EachIteration called on a job that
// Transactional returned: such a job's items run only through the runner's
// transactional checkpoints (iterable.Committer), which never call it.
var ErrNotCommitted = errors.New("pg: a transactional job's items run only through CommitItem")

// ErrTxEnded is matched by the error of an item whose EachIterationTx or
// EachBatchTx committed or rolled back the transaction it was given: the
// item's work and its cursor could no longer commit together.
var ErrTxEnded = errors.New("pg: the item's transaction was ended by the job")

// Transactional returns job as an iterable.Job whose items commit with their
// cursor in one PostgreSQL transaction (it implements iterable.Committer),
// for runner.RegisterIterable:
//
//	job, err := pg.Transactional(Backfill{}, pg.TxConfig{DB: pool})
//	runner.RegisterIterable(reg, "backfill", job, nil)
//
// Each item costs a transaction: group small items with
// enumerators.Batches (or use TransactionalBatches) so one commit carries
// many.
//
// Fencing: each run claims the job's row in job_cursors with its run
// number, and each item's transaction first updates that row where the run
// number is still its own; a run that lost the job to a newer one (its
// process was presumed dead) finds no row, rolls back and stops, so two
// runs never both commit. A newer run's claim waits for an older run's
// transaction in progress, and resumes after it.
func Transactional[A, T, C any](job TxJob[A, T, C], cfg TxConfig) (iterable.Job[A, T, C], error) {
	if job == nil {
		return nil, errors.New("pg: Transactional: nil job")
	}
	return newTxJob(job.BuildEnumerator, job.EachIterationTx, job, cfg)
}

// TransactionalBatches is Transactional for a TxBatchJob: its items come in
// groups of size (the last may be shorter), one transaction per group.
func TransactionalBatches[A, T, C any](job TxBatchJob[A, T, C], size int, cfg TxConfig) (iterable.Job[A, []T, C], error) {
	if job == nil {
		return nil, errors.New("pg: TransactionalBatches: nil job")
	}
	if size < 1 {
		return nil, fmt.Errorf("pg: TransactionalBatches: %w: got %d", enumerators.ErrBatchSize, size)
	}
	build := func(ctx context.Context, args A, c *C) (enumerators.Enumerator[[]T, C], error) {
		e, err := job.BuildEnumerator(ctx, args, c)
		if err != nil || e == nil {
			return nil, err
		}
		return enumerators.Batches(e, size), nil
	}
	return newTxJob(build, job.EachBatchTx, job, cfg)
}

// txJob adapts a transactional job to iterable.Job and iterable.Committer,
// forwarding the hooks the job has.
type txJob[A, T, C any] struct {
	build func(ctx context.Context, args A, c *C) (enumerators.Enumerator[T, C], error)
	each  func(ctx context.Context, tx pgx.Tx, args A, item T) error
	pool  *pgxpool.Pool
	q     *sqls

	starter   iterable.Starter[A]
	resumer   iterable.Resumer[A]
	completer iterable.Completer[A]
	stopper   iterable.Stopper[A]
}

func newTxJob[A, T, C any](
	build func(context.Context, A, *C) (enumerators.Enumerator[T, C], error),
	each func(context.Context, pgx.Tx, A, T) error,
	hooks any, cfg TxConfig,
) (*txJob[A, T, C], error) {
	if cfg.Pool == nil {
		return nil, errors.New("pg: TxConfig.Pool is required")
	}
	schema := schemaOr(cfg.Schema)
	if err := checkSchema(schema); err != nil {
		return nil, err
	}
	j := &txJob[A, T, C]{build: build, each: each, pool: cfg.Pool, q: queries(schema)}
	j.starter, _ = hooks.(iterable.Starter[A])
	j.resumer, _ = hooks.(iterable.Resumer[A])
	j.completer, _ = hooks.(iterable.Completer[A])
	j.stopper, _ = hooks.(iterable.Stopper[A])
	return j, nil
}

func (j *txJob[A, T, C]) BuildEnumerator(ctx context.Context, args A, c *C) (enumerators.Enumerator[T, C], error) {
	return j.build(ctx, args, c)
}

// EachIteration is never called by the runner, which commits items through
// CommitItem; called directly it returns ErrNotCommitted.
func (j *txJob[A, T, C]) EachIteration(context.Context, A, T) error { return ErrNotCommitted }

// ClaimCommitted implements iterable.Committer.
func (j *txJob[A, T, C]) ClaimCommitted(ctx context.Context, jobID string, run int64, _ A) (iterable.Committed, error) {
	var kind string
	if info, ok := iterable.InfoFromContext(ctx); ok {
		kind = info.Kind
	}
	var c iterable.Committed
	err := j.pool.QueryRow(ctx, j.q.curClaim, jobID, run, kind).Scan(&c.Cursor, &c.Items)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("pg: job %s run %d: %w", jobID, run, cursor.ErrStaleRun)
	}
	if err != nil {
		return c, fmt.Errorf("pg: claim the cursor of job %s: %w", jobID, err)
	}
	return c, nil
}

// staleCode is the SQLSTATE of the fence for a stale run (see curCommit):
// division_by_zero, which nothing else in that statement can raise.
const staleCode = "22012"

// CommitItem implements iterable.Committer: in one transaction it runs the
// item, then records the cursor (only while run owns the job) and commits,
// those two in one round trip.
func (j *txJob[A, T, C]) CommitItem(ctx context.Context, jobID string, run int64, args A, item T, c json.RawMessage) error {
	conn, err := j.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pg: job %s: acquire a connection: %w", jobID, err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		conn.Release()
		return fmt.Errorf("pg: job %s: begin: %w", jobID, err)
	}
	committed := false
	defer func() {
		// After an error or a panic in the item, end the transaction even
		// when ctx was cancelled; a connection left in a transaction is
		// closed by Release rather than reused.
		if !committed {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
		conn.Release()
	}()
	if err := j.each(ctx, tx, args, item); err != nil {
		return err
	}
	if conn.Conn().PgConn().TxStatus() != 'T' {
		return fmt.Errorf("pg: job %s: %w", jobID, ErrTxEnded)
	}
	b := &pgx.Batch{}
	b.Queue(j.q.curCommit, jobID, run, []byte(c))
	b.Queue("COMMIT")
	br := tx.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == staleCode {
			return fmt.Errorf("pg: job %s run %d: %w", jobID, run, cursor.ErrStaleRun)
		}
		return fmt.Errorf("pg: job %s: checkpoint: %w", jobID, err)
	}
	_, err = br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// The commit's outcome is unknown: the next run reads the truth.
		return fmt.Errorf("pg: job %s: commit: %w", jobID, err)
	}
	committed = true
	return nil
}

func (j *txJob[A, T, C]) OnStart(ctx context.Context, args A) error {
	if j.starter == nil {
		return nil
	}
	return j.starter.OnStart(ctx, args)
}

func (j *txJob[A, T, C]) OnResume(ctx context.Context, args A) error {
	if j.resumer == nil {
		return nil
	}
	return j.resumer.OnResume(ctx, args)
}

func (j *txJob[A, T, C]) OnComplete(ctx context.Context, args A) error {
	if j.completer == nil {
		return nil
	}
	return j.completer.OnComplete(ctx, args)
}

// OnStop records how the run ended in the job's row (only while the run
// owns it): a completed or cancelled job's row is deleted, since nothing
// will resume from it, and the cursor store's completed state keeps a job
// whose acknowledgement was lost from running again. Then it calls the
// job's OnStop.
func (j *txJob[A, T, C]) OnStop(ctx context.Context, args A, reason iterable.StopReason) error {
	var err error
	if info, ok := iterable.InfoFromContext(ctx); ok {
		switch reason {
		case iterable.Completed, iterable.Cancelled:
			_, err = j.pool.Exec(ctx, j.q.curDelete, info.JobID, info.Run)
		case iterable.Interrupted, iterable.Failed:
			_, err = j.pool.Exec(ctx, j.q.curStatus, info.JobID, info.Run, string(reason))
		}
		if err != nil {
			err = fmt.Errorf("pg: job %s: record the end of the run: %w", info.JobID, err)
		}
	}
	if j.stopper != nil {
		err = errors.Join(err, j.stopper.OnStop(ctx, args, reason))
	}
	return err
}

// Cursor is a job's row in job_cursors, as LoadCursor returns it.
type Cursor struct {
	JobID string
	Kind  string
	// Run is the run number that owns the row.
	Run int64
	// Cursor is the position after the last item committed (nil before
	// the first).
	Cursor json.RawMessage
	// Status is how the owning run stands: running, interrupted or failed.
	Status string
	// Executions counts the runs that claimed the row.
	Executions int
	// Items counts the items committed.
	Items          int64
	FirstStartedAt time.Time
	LastCommitAt   time.Time // zero before the first item
	UpdatedAt      time.Time
}

// ErrCursorNotFound is returned by LoadCursor for a job with no row: it
// never ran with transactional checkpoints, or it completed or was
// cancelled.
var ErrCursorNotFound = errors.New("pg: no committed cursor for job")

// LoadCursor returns the committed state of job jobID in schema (default
// SchemaDefault), or an error matching ErrCursorNotFound.
func LoadCursor(ctx context.Context, db DB, schema, jobID string) (*Cursor, error) {
	schema = schemaOr(schema)
	if err := checkSchema(schema); err != nil {
		return nil, err
	}
	var (
		c           Cursor
		first, last *time.Time
	)
	err := db.QueryRow(ctx, queries(schema).curLoad, jobID).Scan(&c.JobID, &c.Kind, &c.Run, &c.Cursor, &c.Status,
		&c.Executions, &c.Items, &first, &last, &c.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w %s", ErrCursorNotFound, jobID)
	}
	if err != nil {
		return nil, fmt.Errorf("pg: load the cursor of job %s: %w", jobID, err)
	}
	if first != nil {
		c.FirstStartedAt = *first
	}
	if last != nil {
		c.LastCommitAt = *last
	}
	return &c, nil
}

// PruneCursors deletes the rows of job_cursors in schema (default
// SchemaDefault) not written for olderThan, and returns how many. Rows of
// completed and cancelled jobs are deleted as the jobs end; what stays
// belongs to jobs that wait (in a queue, the retry or scheduled set, the
// dead set) or that were deleted from a set. Keep olderThan above the
// longest such wait (the cursor store keeps unfinished state 30 days).
func PruneCursors(ctx context.Context, db DB, schema string, olderThan time.Duration) (int64, error) {
	schema = schemaOr(schema)
	if err := checkSchema(schema); err != nil {
		return 0, err
	}
	if olderThan <= 0 {
		return 0, fmt.Errorf("pg: PruneCursors: olderThan must be positive, got %v", olderThan)
	}
	tag, err := db.Exec(ctx, queries(schema).curPrune, olderThan)
	if err != nil {
		return 0, fmt.Errorf("pg: prune cursors: %w", err)
	}
	return tag.RowsAffected(), nil
}
