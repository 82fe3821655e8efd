package pg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// metaAwait is the Meta key that marks an awaited job; its value is the id
// of the workflow awaiting it.
const metaAwait = metaPrefix + "await"

// JobState is the outcome of an awaited job.
type JobState string

// Awaited job states.
const (
	// JobPending: the job has not finished yet (it may be running, waiting
	// for a retry, or still in the outbox).
	JobPending JobState = "pending"
	// JobSucceeded: the job succeeded (an iterable job completed).
	JobSucceeded JobState = "succeeded"
	// JobFailed: the job died (its last attempt failed, or it returned
	// iterable.SkipRetry) or was cancelled.
	JobFailed JobState = "failed"
)

// AwaitedJob is a job a workflow step staged and awaits.
type AwaitedJob struct {
	JobID string
	// Step is the step that staged the job.
	Step string
	Kind string
	// State is the job's outcome so far.
	State JobState
	// Error is why a failed job failed.
	Error string
	// CreatedAt is when the step staged the job; FinishedAt when its
	// outcome was recorded (zero while pending).
	CreatedAt  time.Time
	FinishedAt time.Time
}

// MiddlewareConfig configures the middleware from NewMiddleware. DB and
// Store are required.
type MiddlewareConfig struct {
	// DB is where outcomes are written. Required.
	DB DB
	// Schema holds the tables. Default SchemaDefault.
	Schema string
	// Store is the runner's cursor store (runner.Config.Store, by default
	// cursor.NewRedisStore on the runner's Redis and namespace). Required:
	// a run of an iterable job ends the same way, as the middleware sees it,
	// whether the job completed or was interrupted; the store tells which.
	// It is read only after a successful run of an awaited job.
	Store cursor.Store
	// Logger receives the middleware's logs. Default slog.Default().
	Logger *slog.Logger
}

// NewMiddleware returns the runner middleware that records the outcomes of
// jobs that workflows await, and wakes a workflow when the last job it
// awaits finishes. Every runner that runs awaited kinds must use it. Jobs
// that no workflow awaits pass through it at the cost of a map lookup.
//
// A job's outcome is written when the job is done for good: succeeded,
// dead (failed on its last attempt, or with iterable.SkipRetry) or
// cancelled. It is written before the runner acknowledges the run, so a
// crash in between runs the job again and records the same outcome again,
// which changes nothing. The job that completes its group also stages, in
// the same transaction, a job that continues the workflow: the wake-up is
// as durable as the outcome, no process polls, and the waiting workflow
// holds no worker.
func NewMiddleware(cfg MiddlewareConfig) (runner.Middleware, error) {
	cfg.Schema = schemaOr(cfg.Schema)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var errs []error
	if cfg.DB == nil {
		errs = append(errs, errors.New("a database (DB) is required"))
	}
	if cfg.Store == nil {
		errs = append(errs, errors.New("the runner's cursor store (Store) is required"))
	}
	if err := checkSchema(cfg.Schema); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("pg: invalid middleware config: %w", errors.Join(errs...))
	}
	m := &middleware{cfg: cfg, q: queries(cfg.Schema)}
	return m.handle, nil
}

type middleware struct {
	cfg MiddlewareConfig
	q   *sqls
}

func (m *middleware) handle(ctx context.Context, job *jobtype.Job, next func(context.Context) error) error {
	wf := job.Meta[metaAwait]
	if wf == "" {
		return next(ctx)
	}
	err := next(ctx)
	state, msg, final, oerr := m.outcome(ctx, job, err)
	if oerr == nil && !final {
		return err
	}
	log := m.cfg.Logger.With(slog.String("jid", job.ID), slog.String("kind", job.Kind), slog.String("workflow_id", wf))
	if oerr == nil {
		oerr = m.record(ctx, log, wf, job, state, msg)
	}
	if oerr != nil {
		log.ErrorContext(ctx, "pg: could not record the outcome of an awaited job; the run counts as failed so it runs again",
			slog.Any("error", oerr), slog.Any("job_error", err))
		if err == nil {
			return fmt.Errorf("pg: record the outcome of awaited job %s: %w", job.ID, oerr)
		}
	}
	return err
}

// outcome tells whether a run ended its job for good, and how.
func (m *middleware) outcome(ctx context.Context, job *jobtype.Job, err error) (JobState, string, bool, error) {
	if ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), runner.ErrCancelled) {
			return JobFailed, "cancelled", true, nil
		}
		// A hard stop or a lost lease: the job runs again.
		return "", "", false, nil
	}
	if err == nil {
		st, lerr := m.cfg.Store.Load(ctx, job.ID)
		switch {
		case errors.Is(lerr, cursor.ErrNotFound):
			return JobSucceeded, "", true, nil // a plain job
		case lerr != nil:
			return "", "", false, fmt.Errorf("read the job's state: %w", lerr)
		case st.Status == cursor.StatusCompleted:
			return JobSucceeded, "", true, nil
		}
		return "", "", false, nil // an iterable job interrupted
	}
	var snooze *iterable.SnoozeError
	switch {
	case errors.As(err, &snooze):
		return "", "", false, nil
	case errors.Is(err, iterable.ErrCancel):
		return JobFailed, "cancelled: " + err.Error(), true, nil
	case errors.Is(err, iterable.ErrSkipRetry), job.MaxAttempts > 0 && job.Attempt >= job.MaxAttempts:
		return JobFailed, err.Error(), true, nil
	}
	return "", "", false, nil
}

// record writes a job's outcome, retrying for a few seconds, and stages the
// workflow's continuation when the job completes its group.
func (m *middleware) record(ctx context.Context, log *slog.Logger, wf string, job *jobtype.Job, state JobState, msg string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	wait := 20 * time.Millisecond
	for {
		err := pgx.BeginFunc(ctx, m.cfg.DB, func(tx pgx.Tx) error {
			return m.recordTx(ctx, log, tx, wf, job, state, msg)
		})
		if err == nil || ctx.Err() != nil {
			return err
		}
		log.WarnContext(ctx, "pg: recording an awaited job's outcome failed; retrying", slog.Any("error", err), slog.Duration("wait", wait))
		if !sleep(ctx, wait) {
			return err
		}
		wait = min(wait*2, time.Second)
	}
}

func (m *middleware) recordTx(ctx context.Context, log *slog.Logger, tx pgx.Tx, wf string, job *jobtype.Job, state JobState, msg string) error {
	var (
		name, status, q string
		awaitStep       *string
		maxAttempts     int
	)
	// Lock the workflow first (as steps do): finishers of one group
	// serialize here, so exactly one sees the group complete.
	err := tx.QueryRow(ctx, m.q.awaitLock, wf).Scan(&name, &status, &awaitStep, &q, &maxAttempts)
	if errors.Is(err, pgx.ErrNoRows) {
		log.WarnContext(ctx, "pg: awaited job finished, but its workflow is gone")
		return nil
	}
	if err != nil {
		return fmt.Errorf("lock workflow: %w", err)
	}
	var errMsg *string
	if msg != "" {
		errMsg = &msg
	}
	var step string
	err = tx.QueryRow(ctx, m.q.awaitDone, job.ID, wf, string(state), errMsg).Scan(&step)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // recorded by an earlier run
	}
	if err != nil {
		return fmt.Errorf("record outcome: %w", err)
	}
	log.InfoContext(ctx, "pg: awaited job finished", slog.String("state", string(state)))
	if Status(status) != StatusAwaiting || awaitStep == nil || *awaitStep != step {
		return nil
	}
	var pending int
	if err := tx.QueryRow(ctx, m.q.awaitCount, wf, step).Scan(&pending); err != nil {
		return fmt.Errorf("count pending jobs: %w", err)
	}
	if pending > 0 {
		return nil
	}
	st, err := newStaged(time.Now(), queue.Params{Kind: name, Args: jobArgs{WorkflowID: wf},
		Opts: &queue.EnqueueOpts{Queue: q, MaxAttempts: maxAttempts}})
	if err != nil {
		return fmt.Errorf("build continuation: %w", err)
	}
	if err := stage(ctx, tx, m.q, st); err != nil {
		return fmt.Errorf("stage continuation: %w", err)
	}
	if _, err := tx.Exec(ctx, m.q.wfWake, wf, st.jobID); err != nil {
		return fmt.Errorf("wake workflow: %w", err)
	}
	log.InfoContext(ctx, "pg: awaited jobs all finished; workflow continues", slog.String("step", step), slog.String("continuation_jid", st.jobID))
	return nil
}
