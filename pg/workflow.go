package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// Defaults for WorkflowConfig.
const (
	// WorkflowLockDefault is how long a run's claim on a workflow lasts
	// without being renewed (each step renews it). A claim lapses only if
	// its run vanishes without releasing it; a recovered run of the same
	// job takes its claim back at once.
	WorkflowLockDefault = 5 * time.Minute
	// WorkflowBusyRetryDefault is how long a run waits (snoozed) before it
	// tries again when it finds the workflow inside a step of another run of
	// the same job.
	WorkflowBusyRetryDefault = time.Second
)

// Status is where a workflow stands.
type Status string

// Workflow statuses.
const (
	// StatusRunning: steps are left to run (or a job is about to run them).
	StatusRunning Status = "running"
	// StatusAwaiting: a step committed and awaits the jobs it staged.
	StatusAwaiting Status = "awaiting"
	// StatusSucceeded: every step committed and every awaited job succeeded.
	StatusSucceeded Status = "succeeded"
	// StatusFailed: a step failed on the last attempt, or awaited jobs failed.
	StatusFailed Status = "failed"
	// StatusCancelled: a step returned iterable.Cancel, or the job running
	// the workflow was cancelled.
	StatusCancelled Status = "cancelled"
)

// Errors of workflows.
var (
	// ErrWorkflowNotFound is returned for a workflow id with no row.
	ErrWorkflowNotFound = errors.New("pg: workflow not found")
	// ErrKeyReused is returned by Start when the idempotency key already
	// started a workflow of the same name with other arguments.
	ErrKeyReused = errors.New("pg: idempotency key reused with other arguments")
	// ErrUnknownStep is the error of a run that finds a recovery point its
	// workflow has no step for (a step renamed or removed while workflows
	// were on it). The job is retried, so a deploy in progress can finish.
	ErrUnknownStep = errors.New("pg: unknown workflow step")
	// ErrAwaitedJobsFailed is matched by an *AwaitError.
	ErrAwaitedJobsFailed = errors.New("pg: awaited jobs failed")
)

// StepError is the error of a step that failed: its transaction rolled back
// and the job is retried (or dies on its last attempt).
type StepError struct {
	WorkflowID string
	Step       string
	Err        error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("pg: workflow %s step %q: %v", e.WorkflowID, e.Step, e.Err)
}

// Unwrap returns the step's error, so iterable.Snooze, SkipRetry and Cancel
// returned by a step steer the runner.
func (e *StepError) Unwrap() error { return e.Err }

// AwaitError is why a workflow failed when jobs it awaited failed.
type AwaitError struct {
	WorkflowID string
	// Step is the step that staged the jobs.
	Step string
	// Failed are the awaited jobs that died or were cancelled.
	Failed []AwaitedJob
}

func (e *AwaitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pg: workflow %s: %d job(s) awaited by step %q failed:", e.WorkflowID, len(e.Failed), e.Step)
	for i, j := range e.Failed {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, " job %s (%s): %s", j.JobID, j.Kind, j.Error)
	}
	return b.String()
}

// Is matches ErrAwaitedJobsFailed.
func (e *AwaitError) Is(target error) bool { return target == ErrAwaitedJobsFailed }

// Step is one step of a workflow.
type Step[A, T any] struct {
	// Name identifies the step. It is the recovery point saved in
	// PostgreSQL: renaming or removing a step that running workflows have not
	// passed yet strands them (ErrUnknownStep).
	Name string
	// Run does the step's work. Its database work goes through tx, the
	// step's transaction, which also saves s.Attrs and moves the recovery
	// point past the step when Run returns nil. If Run returns an error (or
	// panics), tx rolls back, s.Attrs changes are dropped and the job is
	// retried with backoff from this step. Run may also stage jobs in tx
	// with s.EnqueueTx, and stage jobs the workflow waits for with s.Await.
	// Calls to outside systems should pass s.IdempotencyKey(): if the
	// process dies after such a call and before the commit, Run runs again.
	Run func(ctx context.Context, tx pgx.Tx, s *StepContext[A, T]) error
}

// WorkflowConfig configures a Workflow. Name, DB and Steps are required.
type WorkflowConfig[A, T any] struct {
	// Name names the workflow; it is also the job kind that runs it, so it
	// follows the queue's rules for kinds.
	Name string
	// DB runs the steps' transactions. Required.
	DB DB
	// Schema holds the tables. Default SchemaDefault.
	Schema string
	// Steps run in order, each once. At least one; names unique.
	Steps []Step[A, T]
	// Queue is where the jobs that run the workflow wait. Default
	// queue.QueueDefault.
	Queue string
	// MaxAttempts caps the attempts of each job that runs the workflow (a
	// failing step is retried that many times, then the workflow fails).
	// Default runner.MaxAttemptsDefault.
	MaxAttempts int
	// AwaitMaxAttempts is the attempt cap given to awaited jobs staged
	// without one: the middleware must know it to tell a job's last failure
	// from one that will be retried. Default runner.MaxAttemptsDefault.
	AwaitMaxAttempts int
	// LockTimeout: see WorkflowLockDefault. Zero means the default.
	LockTimeout time.Duration
	// BusyRetry: see WorkflowBusyRetryDefault. Zero means the default.
	BusyRetry time.Duration
	// Logger receives the workflow's logs. Default slog.Default().
	Logger *slog.Logger
}

// Workflow is a job made of named steps run in order under an idempotency
// key (see the package documentation). Build one with NewWorkflow, register
// it on the runners' registry with Register, start runs with Start or
// StartTx.
type Workflow[A, T any] struct {
	cfg   WorkflowConfig[A, T]
	q     *sqls
	index map[string]int
}

// NewWorkflow checks cfg and returns the workflow.
func NewWorkflow[A, T any](cfg WorkflowConfig[A, T]) (*Workflow[A, T], error) {
	cfg.Schema = schemaOr(cfg.Schema)
	if cfg.Queue == "" {
		cfg.Queue = queue.QueueDefault
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = runner.MaxAttemptsDefault
	}
	if cfg.AwaitMaxAttempts == 0 {
		cfg.AwaitMaxAttempts = runner.MaxAttemptsDefault
	}
	if cfg.LockTimeout == 0 {
		cfg.LockTimeout = WorkflowLockDefault
	}
	if cfg.BusyRetry == 0 {
		cfg.BusyRetry = WorkflowBusyRetryDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var errs []error
	if !nameRE.MatchString(cfg.Name) {
		errs = append(errs, fmt.Errorf("name %q is not a valid job kind (1-200 of A-Z a-z 0-9 _ . : -)", cfg.Name))
	}
	if !nameRE.MatchString(cfg.Queue) {
		errs = append(errs, fmt.Errorf("queue %q is not a valid queue name", cfg.Queue))
	}
	if cfg.DB == nil {
		errs = append(errs, errors.New("a database (DB) is required"))
	}
	if err := checkSchema(cfg.Schema); err != nil {
		errs = append(errs, err)
	}
	if len(cfg.Steps) == 0 {
		errs = append(errs, errors.New("at least one step is required"))
	}
	if cfg.MaxAttempts < 0 || cfg.AwaitMaxAttempts < 0 || cfg.LockTimeout < 0 || cfg.BusyRetry < 0 {
		errs = append(errs, errors.New("MaxAttempts, AwaitMaxAttempts, LockTimeout and BusyRetry must not be negative"))
	}
	index := make(map[string]int, len(cfg.Steps))
	for i, s := range cfg.Steps {
		switch {
		case s.Name == "":
			errs = append(errs, fmt.Errorf("step %d has no name", i+1))
		case s.Run == nil:
			errs = append(errs, fmt.Errorf("step %q has no Run", s.Name))
		}
		if _, dup := index[s.Name]; dup {
			errs = append(errs, fmt.Errorf("two steps named %q", s.Name))
		}
		index[s.Name] = i
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("pg: invalid workflow %q: %w", cfg.Name, errors.Join(errs...))
	}
	cfg.Steps = append([]Step[A, T](nil), cfg.Steps...)
	return &Workflow[A, T]{cfg: cfg, q: queries(cfg.Schema), index: index}, nil
}

// Name returns the workflow's name, the job kind that runs it.
func (w *Workflow[A, T]) Name() string { return w.cfg.Name }

// Register registers the job that runs the workflow on reg, as a plain job
// of kind Name(). opts may be nil.
func (w *Workflow[A, T]) Register(reg *runner.Registry, opts *runner.KindOpts) {
	runner.Register[jobArgs](reg, w.cfg.Name, performer[A, T]{w}, opts)
}

// jobArgs are the arguments of a job that runs a workflow.
type jobArgs struct {
	WorkflowID string `json:"workflow_id"`
}

// Start starts a workflow run for idempotencyKey in a transaction of its
// own; see StartTx.
func (w *Workflow[A, T]) Start(ctx context.Context, idempotencyKey string, args A) (string, error) {
	var id string
	err := pgx.BeginFunc(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		var err error
		id, err = w.StartTx(ctx, tx, idempotencyKey, args)
		return err
	})
	return id, err
}

// StartTx starts a workflow run for idempotencyKey inside tx and returns its
// id. The run's row and the job that runs it are written in tx, so a
// rollback starts nothing and a commit starts it for sure (the job reaches
// Redis through the outbox: a Drainer must run).
//
// Starting again with the same key (for this workflow name) starts nothing
// and returns the first run's id, finished or not; with other arguments it
// fails with ErrKeyReused. While another transaction is starting the same
// key, StartTx waits for it to end.
func (w *Workflow[A, T]) StartTx(ctx context.Context, tx pgx.Tx, idempotencyKey string, args A) (string, error) {
	if idempotencyKey == "" {
		return "", fmt.Errorf("pg: start workflow %s: empty idempotency key", w.cfg.Name)
	}
	argsJSON, err := json.Marshal(args)
	if err != nil {
		return "", fmt.Errorf("pg: start workflow %s: encode args: %w", w.cfg.Name, err)
	}
	id := queue.NewID()
	st, err := w.continuation(id)
	if err != nil {
		return "", err
	}
	tag, err := tx.Exec(ctx, w.q.wfInsert, id, w.cfg.Name, idempotencyKey, string(argsJSON), w.cfg.Steps[0].Name,
		"null", w.cfg.Queue, w.cfg.MaxAttempts, st.jobID)
	if err != nil {
		return "", fmt.Errorf("pg: start workflow %s: %w", w.cfg.Name, err)
	}
	if tag.RowsAffected() == 1 {
		if err := stage(ctx, tx, w.q, st); err != nil {
			return "", fmt.Errorf("pg: start workflow %s: %w", w.cfg.Name, err)
		}
		return id, nil
	}
	var same bool
	if err := tx.QueryRow(ctx, w.q.wfByKey, w.cfg.Name, idempotencyKey, string(argsJSON)).Scan(&id, &same); err != nil {
		return "", fmt.Errorf("pg: start workflow %s: find key: %w", w.cfg.Name, err)
	}
	if !same {
		return "", fmt.Errorf("%w: workflow %s, key %q (run %s)", ErrKeyReused, w.cfg.Name, idempotencyKey, id)
	}
	return id, nil
}

// continuation builds the staged job that runs workflow id.
func (w *Workflow[A, T]) continuation(id string) (staged, error) {
	return newStaged(time.Now(), queue.Params{Kind: w.cfg.Name, Args: jobArgs{WorkflowID: id},
		Opts: &queue.EnqueueOpts{Queue: w.cfg.Queue, MaxAttempts: w.cfg.MaxAttempts}})
}

// stage inserts one staged job.
func stage(ctx context.Context, tx pgx.Tx, q *sqls, st staged) error {
	_, err := tx.Exec(ctx, q.stageOne, st.jobID, st.kind, st.queue, string(st.args), st.maxAttempts, st.runAt, st.metaJSON)
	return err
}

// performer is the job that runs a workflow.
type performer[A, T any] struct{ w *Workflow[A, T] }

// run identifies one run of the job carrying a workflow.
type run struct {
	wf      string
	jid     string
	lease   int64
	attempt int
}

// Perform runs the workflow's steps from its recovery point until they are
// all done, one fails, or one awaits jobs.
func (p performer[A, T]) Perform(ctx context.Context, a jobArgs) error {
	w := p.w
	r := run{wf: a.WorkflowID, jid: "local-" + queue.NewID(), attempt: 1}
	if info, ok := iterable.InfoFromContext(ctx); ok {
		r.jid, r.lease, r.attempt = info.JobID, info.Run, info.Attempt
	}
	log := w.cfg.Logger.With(slog.String("workflow", w.cfg.Name), slog.String("workflow_id", r.wf), slog.String("jid", r.jid))

	var (
		status      string
		maxAttempts int
	)
	err := w.cfg.DB.QueryRow(ctx, w.q.wfClaim, r.wf, r.jid, r.lease, w.cfg.LockTimeout).Scan(&status, &maxAttempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return w.unclaimed(ctx, log, r)
	}
	if err != nil {
		return fmt.Errorf("pg: workflow %s: claim: %w", r.wf, err)
	}
	for {
		done, err := w.step(ctx, log, r)
		if err == nil && !done {
			continue
		}
		if err == nil || errors.Is(err, ErrAwaitedJobsFailed) {
			w.release(ctx, log, r)
			if err != nil {
				return iterable.SkipRetry(err)
			}
			return nil
		}
		w.failed(ctx, log, r, maxAttempts, err)
		return err
	}
}

// unclaimed handles a run that could not claim its workflow.
func (w *Workflow[A, T]) unclaimed(ctx context.Context, log *slog.Logger, r run) error {
	var (
		status   string
		lockedBy *string
		live     *bool
	)
	err := w.cfg.DB.QueryRow(ctx, w.q.wfState, r.wf).Scan(&status, &lockedBy, &live)
	if errors.Is(err, pgx.ErrNoRows) {
		return iterable.SkipRetry(fmt.Errorf("%w: %s", ErrWorkflowNotFound, r.wf))
	}
	if err != nil {
		return fmt.Errorf("pg: workflow %s: read state: %w", r.wf, err)
	}
	switch Status(status) {
	case StatusSucceeded, StatusFailed, StatusCancelled:
		log.InfoContext(ctx, "pg: workflow already finished", slog.String("status", status))
		return nil
	}
	if lockedBy != nil && *lockedBy != r.jid && live != nil && *live {
		log.InfoContext(ctx, "pg: workflow carried by another job; leaving it to it", slog.String("holder", *lockedBy))
		return nil
	}
	return iterable.Snooze(w.cfg.BusyRetry)
}

// step runs the step at the recovery point in one transaction, or resolves
// an await. done means the run has nothing more to do.
func (w *Workflow[A, T]) step(ctx context.Context, log *slog.Logger, r run) (done bool, err error) {
	tx, err := w.cfg.DB.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("pg: workflow %s: begin: %w", r.wf, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var (
		row       wfRow
		lockedBy  *string
		lockedRun *int64
	)
	if err := tx.QueryRow(ctx, w.q.wfLock, r.wf).Scan(&row.args, &row.step, &row.attrs, &row.status,
		&row.awaitStep, &lockedBy, &lockedRun, &row.maxAttempts); err != nil {
		return false, fmt.Errorf("pg: workflow %s: lock: %w", r.wf, err)
	}
	switch Status(row.status) {
	case StatusSucceeded, StatusFailed, StatusCancelled:
		return true, nil
	}
	if lockedBy == nil || *lockedBy != r.jid || lockedRun == nil || *lockedRun != r.lease {
		log.WarnContext(ctx, "pg: workflow claimed by another run; stopping")
		return true, nil
	}
	if Status(row.status) == StatusAwaiting {
		return w.resolveAwait(ctx, log, tx, r, row)
	}
	if row.step == nil {
		// Every step committed; finish.
		return true, w.advance(ctx, tx, r.wf, nil, row.attrs, StatusSucceeded, nil, nil)
	}
	idx, ok := w.index[*row.step]
	if !ok {
		return false, &StepError{WorkflowID: r.wf, Step: *row.step, Err: ErrUnknownStep}
	}
	step := w.cfg.Steps[idx]
	s := &StepContext[A, T]{id: r.wf, step: step.Name, schema: w.cfg.Schema, q: w.q, tx: tx, awaitAttempts: w.cfg.AwaitMaxAttempts}
	if err := json.Unmarshal(row.args, &s.Args); err != nil {
		return false, &StepError{WorkflowID: r.wf, Step: step.Name, Err: iterable.SkipRetry(fmt.Errorf("decode args into %T: %w", s.Args, err))}
	}
	if err := json.Unmarshal(row.attrs, &s.Attrs); err != nil {
		return false, &StepError{WorkflowID: r.wf, Step: step.Name, Err: iterable.SkipRetry(fmt.Errorf("decode attributes into %T: %w", s.Attrs, err))}
	}
	started := time.Now()
	if err := protect(func() error { return step.Run(ctx, tx, s) }); err != nil {
		return false, &StepError{WorkflowID: r.wf, Step: step.Name, Err: err}
	}
	attrs, err := json.Marshal(s.Attrs)
	if err != nil {
		return false, &StepError{WorkflowID: r.wf, Step: step.Name, Err: fmt.Errorf("encode attributes: %w", err)}
	}
	var next *string
	if idx+1 < len(w.cfg.Steps) {
		next = &w.cfg.Steps[idx+1].Name
	}
	status, awaitStep := StatusRunning, (*string)(nil)
	switch {
	case s.awaited > 0:
		status, awaitStep = StatusAwaiting, &step.Name
	case next == nil:
		status = StatusSucceeded
	}
	if err := w.advance(ctx, tx, r.wf, next, attrs, status, awaitStep, nil); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("pg: workflow %s: commit step %q: %w", r.wf, step.Name, err)
	}
	log.DebugContext(ctx, "pg: workflow step committed", slog.String("step", step.Name),
		slog.Duration("took", time.Since(started)), slog.Int("awaited_jobs", s.awaited))
	switch status {
	case StatusSucceeded:
		log.InfoContext(ctx, "pg: workflow succeeded")
	case StatusAwaiting:
		log.InfoContext(ctx, "pg: workflow awaits jobs", slog.String("step", step.Name), slog.Int("jobs", s.awaited))
	}
	return status != StatusRunning, nil
}

// wfRow is a workflow as a step reads it.
type wfRow struct {
	args        []byte
	step        *string
	attrs       []byte
	status      string
	awaitStep   *string
	maxAttempts int
}

// advance writes a workflow's new recovery point, attributes and status in
// tx (and commits when it is the only write).
func (w *Workflow[A, T]) advance(ctx context.Context, tx pgx.Tx, id string, next *string, attrs []byte, status Status, awaitStep, errMsg *string) error {
	if _, err := tx.Exec(ctx, w.q.wfAdvance, id, next, string(attrs), string(status), awaitStep, w.cfg.LockTimeout, errMsg); err != nil {
		return fmt.Errorf("pg: workflow %s: save recovery point: %w", id, err)
	}
	return nil
}

// resolveAwait decides an awaiting workflow: wait on (jobs pending), fail
// (jobs failed) or go on (all succeeded).
func (w *Workflow[A, T]) resolveAwait(ctx context.Context, log *slog.Logger, tx pgx.Tx, r run, row wfRow) (bool, error) {
	step := ""
	if row.awaitStep != nil {
		step = *row.awaitStep
	}
	rows, err := tx.Query(ctx, w.q.awaitGroup, r.wf, step)
	if err != nil {
		return false, fmt.Errorf("pg: workflow %s: read awaited jobs: %w", r.wf, err)
	}
	jobs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AwaitedJob, error) {
		var j AwaitedJob
		err := row.Scan(&j.JobID, &j.Kind, &j.State, &j.Error)
		j.Step = step
		return j, err
	})
	if err != nil {
		return false, fmt.Errorf("pg: workflow %s: read awaited jobs: %w", r.wf, err)
	}
	var failed []AwaitedJob
	for _, j := range jobs {
		switch j.State {
		case JobPending:
			// The job that finishes last wakes the workflow.
			return true, nil
		case JobFailed:
			failed = append(failed, j)
		}
	}
	if len(failed) > 0 {
		aerr := &AwaitError{WorkflowID: r.wf, Step: step, Failed: failed}
		msg := aerr.Error()
		if err := w.advance(ctx, tx, r.wf, row.step, row.attrs, StatusFailed, nil, &msg); err != nil {
			return false, err
		}
		if err := tx.Commit(ctx); err != nil {
			return false, fmt.Errorf("pg: workflow %s: commit failure: %w", r.wf, err)
		}
		log.ErrorContext(ctx, "pg: workflow failed: awaited jobs failed", slog.String("step", step), slog.Int("failed", len(failed)))
		return true, aerr
	}
	status := StatusRunning
	if row.step == nil {
		status = StatusSucceeded
	}
	if err := w.advance(ctx, tx, r.wf, row.step, row.attrs, status, nil, nil); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("pg: workflow %s: commit await: %w", r.wf, err)
	}
	log.DebugContext(ctx, "pg: awaited jobs succeeded", slog.String("step", step), slog.Int("jobs", len(jobs)))
	if status == StatusSucceeded {
		log.InfoContext(ctx, "pg: workflow succeeded")
	}
	return status != StatusRunning, nil
}

// failed records a failed step: its error, and the workflow's end when the
// failure is final. A run whose context was cancelled by a hard stop or a
// lost lease records nothing: the job runs again.
func (w *Workflow[A, T]) failed(ctx context.Context, log *slog.Logger, r run, maxAttempts int, err error) {
	var snooze *iterable.SnoozeError
	final, status := false, StatusFailed
	switch {
	case ctx.Err() != nil:
		if !errors.Is(context.Cause(ctx), runner.ErrCancelled) {
			w.release(ctx, log, r)
			return
		}
		final, status = true, StatusCancelled
	case errors.As(err, &snooze):
		w.release(ctx, log, r)
		return
	case errors.Is(err, iterable.ErrCancel):
		final, status = true, StatusCancelled
	case errors.Is(err, iterable.ErrSkipRetry), r.attempt >= maxAttempts:
		final = true
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, rerr := w.cfg.DB.Exec(wctx, w.q.wfFail, r.wf, err.Error(), final, string(status), r.jid, r.lease); rerr != nil {
		log.ErrorContext(ctx, "pg: could not record a workflow step's failure", slog.Any("error", rerr), slog.Any("step_error", err))
		return
	}
	if final {
		log.ErrorContext(ctx, "pg: workflow ended", slog.String("status", string(status)), slog.Any("error", err))
	} else {
		log.WarnContext(ctx, "pg: workflow step failed; the job will retry", slog.Any("error", err), slog.Int("attempt", r.attempt))
	}
}

// release gives up the run's claim, if it still holds it.
func (w *Workflow[A, T]) release(ctx context.Context, log *slog.Logger, r run) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := w.cfg.DB.Exec(wctx, w.q.wfRelease, r.wf, r.jid, r.lease); err != nil {
		log.WarnContext(ctx, "pg: could not release a workflow claim; it lapses after the lock timeout", slog.Any("error", err))
	}
}

// protect calls fn, turning a panic into a *runner.PanicError.
func protect(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &runner.PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	return fn()
}

// StepContext is what a step sees of its workflow run.
type StepContext[A, T any] struct {
	// Args are the workflow's arguments, as given to Start.
	Args A
	// Attrs are the persisted attributes, as the last committed step left
	// them (the zero T at first). Changes the step makes are saved with it
	// when it commits, and dropped when it fails.
	Attrs T

	id, step, schema string
	q                *sqls
	tx               pgx.Tx
	awaitAttempts    int
	awaited          int
}

// WorkflowID returns the workflow run's id.
func (s *StepContext[A, T]) WorkflowID() string { return s.id }

// Step returns the step's name.
func (s *StepContext[A, T]) Step() string { return s.step }

// IdempotencyKey returns a key stable for this workflow run and step, to
// pass to outside systems (a payment API) so that a step run again after a
// crash repeats no effect there: "<workflow id>:<step name>".
func (s *StepContext[A, T]) IdempotencyKey() string { return s.id + ":" + s.step }

// EnqueueTx stages a job in the step's transaction: it reaches the queue if
// and only if the step commits. See Schema.EnqueueTx.
func (s *StepContext[A, T]) EnqueueTx(ctx context.Context, kind string, args any, opts *queue.EnqueueOpts) (string, error) {
	return Schema(s.schema).EnqueueTx(ctx, s.tx, kind, args, opts)
}

// Await stages a job in the step's transaction, as EnqueueTx does, and makes
// the workflow wait for it: once the step commits, the next step runs only
// when every job the step awaits has succeeded; if any dies (or is
// cancelled) the workflow fails with an *AwaitError naming them. A job
// staged without MaxAttempts gets the workflow's AwaitMaxAttempts. The
// outcomes are recorded by the runner middleware from NewMiddleware, which
// the runners of the awaited kinds must use.
func (s *StepContext[A, T]) Await(ctx context.Context, kind string, args any, opts *queue.EnqueueOpts) (string, error) {
	var o queue.EnqueueOpts
	if opts != nil {
		o = *opts
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = s.awaitAttempts
	}
	meta := make(map[string]string, len(o.Meta)+1)
	for k, v := range o.Meta {
		meta[k] = v
	}
	meta[metaAwait] = s.id
	o.Meta = meta
	id, err := Schema(s.schema).EnqueueTx(ctx, s.tx, kind, args, &o)
	if err != nil {
		return "", err
	}
	if _, err := s.tx.Exec(ctx, s.q.awaitInsert, id, s.id, s.step, kind); err != nil {
		return "", fmt.Errorf("pg: await job %s: %w", id, err)
	}
	s.awaited++
	return id, nil
}
