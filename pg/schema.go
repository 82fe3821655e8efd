package pg

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SchemaDefault is the schema the tables live in when a config names none.
const SchemaDefault = "iterjob"

// DB is what this package needs of a database handle. *pgxpool.Pool,
// *pgx.Conn and pgx.Tx satisfy it (a pgx.Tx begins savepoints).
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrInvalidSchema is matched by the error for a schema name this package
// refuses.
var ErrInvalidSchema = errors.New("pg: invalid schema name")

// schemaRE bounds schema names to plain identifiers: they are quoted in SQL
// anyway, but a plain name keeps advisory lock keys and logs readable.
var schemaRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// nameRE is queue's rule for kinds and queue names, checked when a job is
// staged so that a bad name fails the caller's transaction rather than
// blocking the drainer later.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,200}$`)

func checkSchema(s string) error {
	if !schemaRE.MatchString(s) {
		return fmt.Errorf("%w %q (1-63 of A-Z a-z 0-9 _, not starting with a digit)", ErrInvalidSchema, s)
	}
	return nil
}

// schemaOr returns s, or SchemaDefault when s is empty.
func schemaOr(s string) string {
	if s == "" {
		return SchemaDefault
	}
	return s
}

// lockKey returns the advisory lock key for purpose in schema: 64 bits of
// FNV-1a, stable across processes and versions.
func lockKey(purpose, schema string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("iterjob." + purpose + ":" + schema))
	return int64(h.Sum64())
}

// notifyChannel is the channel the outbox trigger notifies, with the schema
// as payload, so that drainers of other schemas ignore the wake-up.
const notifyChannel = "iterjob_outbox"

// sqls holds a schema's statements, built once per schema.
type sqls struct {
	schema string

	// outbox
	stageOne  string
	stageMany string
	drainSel  string
	drainDel  string
	countBox  string

	// workflows
	wfInsert    string
	wfByKey     string
	wfClaim     string
	wfState     string
	wfLock      string
	wfAdvance   string
	wfFail      string
	wfRelease   string
	wfLoad      string
	wfJobs      string
	awaitInsert string
	awaitGroup  string
	awaitLock   string
	awaitDone   string
	awaitCount  string
	wfWake      string

	// transactional checkpoints
	curClaim  string
	curCommit string
	curStatus string
	curDelete string
	curLoad   string
	curPrune  string
}

var sqlCache sync.Map // schema → *sqls

// queries returns schema's statements.
func queries(schema string) *sqls {
	if q, ok := sqlCache.Load(schema); ok {
		return q.(*sqls)
	}
	q := buildSQL(schema)
	actual, _ := sqlCache.LoadOrStore(schema, q)
	return actual.(*sqls)
}

func buildSQL(schema string) *sqls {
	s := pgx.Identifier{schema}.Sanitize()
	r := strings.NewReplacer("{s}", s)
	q := &sqls{schema: schema}
	set := func(dst *string, sql string) { *dst = r.Replace(sql) }

	set(&q.stageOne, `INSERT INTO {s}.outbox (job_id, kind, queue, args, max_attempts, run_at, meta)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`)
	set(&q.stageMany, `INSERT INTO {s}.outbox (job_id, kind, queue, args, max_attempts, run_at, meta)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::json[], $5::integer[], $6::timestamptz[], $7::jsonb[])`)
	set(&q.drainSel, `SELECT id, job_id, kind, queue, args, max_attempts, run_at, meta
		FROM {s}.outbox WHERE id > $1 ORDER BY id LIMIT $2`)
	set(&q.drainDel, `DELETE FROM {s}.outbox WHERE id = ANY($1)`)
	set(&q.countBox, `SELECT count(*) FROM {s}.outbox`)

	const wfCols = `id, name, idempotency_key, args, step, attrs, status, await_step, error,
		queue, max_attempts, job_id, locked_by, locked_run, locked_until, created_at, updated_at, finished_at`
	set(&q.wfInsert, `INSERT INTO {s}.workflows (id, name, idempotency_key, args, step, attrs, queue, max_attempts, job_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (name, idempotency_key) DO NOTHING`)
	set(&q.wfByKey, `SELECT id, args = $3::jsonb FROM {s}.workflows WHERE name = $1 AND idempotency_key = $2`)
	// A run claims a workflow unless another job holds an unexpired claim
	// or an older run of the same job does; SKIP LOCKED turns away a run
	// while another is inside a step instead of blocking its worker.
	set(&q.wfClaim, `UPDATE {s}.workflows w SET locked_by = $2, locked_run = $3,
			locked_until = now() + $4::interval, updated_at = now()
		FROM (SELECT id FROM {s}.workflows WHERE id = $1 FOR UPDATE SKIP LOCKED) l
		WHERE w.id = l.id AND w.status IN ('running', 'awaiting')
			AND (w.locked_by IS NULL OR w.locked_until < now() OR (w.locked_by = $2 AND w.locked_run <= $3))
		RETURNING w.status, w.max_attempts`)
	set(&q.wfState, `SELECT status, locked_by, locked_until > now() FROM {s}.workflows WHERE id = $1`)
	set(&q.wfLock, `SELECT args, step, attrs, status, await_step, locked_by, locked_run, max_attempts
		FROM {s}.workflows WHERE id = $1 FOR UPDATE`)
	set(&q.wfAdvance, `UPDATE {s}.workflows SET step = $2, attrs = $3, status = $4, await_step = $5, error = $7,
			locked_until = CASE WHEN $4 = 'running' THEN now() + $6::interval END,
			locked_by = CASE WHEN $4 = 'running' THEN locked_by END,
			locked_run = CASE WHEN $4 = 'running' THEN locked_run END,
			updated_at = now(), finished_at = CASE WHEN $4 IN ('succeeded', 'failed', 'cancelled') THEN now() END
		WHERE id = $1`)
	set(&q.wfFail, `UPDATE {s}.workflows SET error = $2,
			status = CASE WHEN $3 THEN $4 ELSE status END,
			finished_at = CASE WHEN $3 THEN now() ELSE finished_at END,
			locked_by = NULL, locked_run = NULL, locked_until = NULL, updated_at = now()
		WHERE id = $1 AND status IN ('running', 'awaiting') AND (locked_by IS NULL OR (locked_by = $5 AND locked_run = $6))`)
	set(&q.wfRelease, `UPDATE {s}.workflows SET locked_by = NULL, locked_run = NULL, locked_until = NULL
		WHERE id = $1 AND locked_by = $2 AND locked_run = $3`)
	set(&q.wfLoad, `SELECT `+wfCols+` FROM {s}.workflows WHERE id = $1`)
	set(&q.wfJobs, `SELECT job_id, step, kind, state, error, created_at, finished_at
		FROM {s}.workflow_jobs WHERE workflow_id = $1 ORDER BY created_at, job_id`)
	set(&q.awaitInsert, `INSERT INTO {s}.workflow_jobs (job_id, workflow_id, step, kind) VALUES ($1, $2, $3, $4)`)
	set(&q.awaitGroup, `SELECT job_id, kind, state, coalesce(error, '') FROM {s}.workflow_jobs
		WHERE workflow_id = $1 AND step = $2 ORDER BY created_at, job_id`)
	set(&q.awaitLock, `SELECT name, status, await_step, queue, max_attempts FROM {s}.workflows WHERE id = $1 FOR UPDATE`)
	set(&q.awaitDone, `UPDATE {s}.workflow_jobs SET state = $3, error = $4, finished_at = now()
		WHERE job_id = $1 AND workflow_id = $2 AND state = 'pending' RETURNING step`)
	set(&q.awaitCount, `SELECT count(*) FROM {s}.workflow_jobs WHERE workflow_id = $1 AND step = $2 AND state = 'pending'`)
	set(&q.wfWake, `UPDATE {s}.workflows SET job_id = $2, updated_at = now() WHERE id = $1`)

	// A run claims a job's committed state if no later run has: the
	// update waits for a commit in progress (its row lock) and then sees it.
	set(&q.curClaim, `INSERT INTO {s}.job_cursors AS c (job_id, kind, run, executions, first_started_at)
		VALUES ($1, $3, $2, 1, now())
		ON CONFLICT (job_id) DO UPDATE SET run = excluded.run, executions = c.executions + 1,
			status = 'running', updated_at = now()
		WHERE c.run < excluded.run
		RETURNING cursor, items_processed`)
	// The fence and the cursor, the last statement of an item's
	// transaction, sent with its COMMIT in one round trip: it records the
	// cursor if the run still owns the job and otherwise fails (division by
	// zero, SQLSTATE 22012), which aborts the transaction so that the
	// COMMIT after it rolls back. Its row lock orders it with a newer run's
	// claim: whichever comes second waits for the other's transaction.
	set(&q.curCommit, `WITH u AS (
			UPDATE {s}.job_cursors SET cursor = $3, items_processed = items_processed + 1,
				last_checkpoint_at = now(), updated_at = now()
			WHERE job_id = $1 AND run = $2 RETURNING 1)
		SELECT 1 / count(*)::int FROM u`)
	set(&q.curStatus, `UPDATE {s}.job_cursors SET status = $3, updated_at = now() WHERE job_id = $1 AND run = $2`)
	set(&q.curDelete, `DELETE FROM {s}.job_cursors WHERE job_id = $1 AND run = $2`)
	set(&q.curLoad, `SELECT job_id, kind, run, cursor, status, executions, items_processed,
			first_started_at, last_checkpoint_at, updated_at
		FROM {s}.job_cursors WHERE job_id = $1`)
	set(&q.curPrune, `DELETE FROM {s}.job_cursors WHERE updated_at < now() - $1::interval`)
	return q
}
