package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// WorkflowState is a workflow run as stored.
type WorkflowState[A, T any] struct {
	ID             string
	Name           string
	IdempotencyKey string
	Args           A
	// Attrs are the persisted attributes as the last committed step left
	// them.
	Attrs T
	// Step is the recovery point: the first step not committed yet; empty
	// once every step has.
	Step   string
	Status Status
	// AwaitStep is, while Status is StatusAwaiting, the step whose jobs are
	// awaited.
	AwaitStep string
	// Error is the last step error, or why the workflow failed.
	Error string
	// JobID is the job that runs (or last ran) the workflow; LockedBy the
	// job whose run holds the workflow right now, if any.
	JobID    string
	LockedBy string
	Queue    string
	// MaxAttempts caps the attempts of each job that runs the workflow.
	MaxAttempts int
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// FinishedAt is zero until the workflow succeeds, fails or is
	// cancelled.
	FinishedAt time.Time
	// Jobs are the jobs its steps awaited, oldest first.
	Jobs []AwaitedJob
}

// Load returns the workflow run with id, or an error matching
// ErrWorkflowNotFound.
func (w *Workflow[A, T]) Load(ctx context.Context, id string) (*WorkflowState[A, T], error) {
	var (
		s                              WorkflowState[A, T]
		args, attrs                    []byte
		step, awaitStep, errMsg, jobID *string
		lockedBy                       *string
		lockedRun                      *int64
		lockedUntil, finishedAt        *time.Time
		status                         string
	)
	err := w.cfg.DB.QueryRow(ctx, w.q.wfLoad, id).Scan(&s.ID, &s.Name, &s.IdempotencyKey, &args, &step, &attrs,
		&status, &awaitStep, &errMsg, &s.Queue, &s.MaxAttempts, &jobID, &lockedBy, &lockedRun, &lockedUntil,
		&s.CreatedAt, &s.UpdatedAt, &finishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrWorkflowNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("pg: load workflow %s: %w", id, err)
	}
	s.Status = Status(status)
	s.Step, s.AwaitStep, s.Error, s.JobID, s.LockedBy = deref(step), deref(awaitStep), deref(errMsg), deref(jobID), deref(lockedBy)
	if finishedAt != nil {
		s.FinishedAt = *finishedAt
	}
	if err := json.Unmarshal(args, &s.Args); err != nil {
		return nil, fmt.Errorf("pg: load workflow %s: decode args into %T: %w", id, s.Args, err)
	}
	if err := json.Unmarshal(attrs, &s.Attrs); err != nil {
		return nil, fmt.Errorf("pg: load workflow %s: decode attributes into %T: %w", id, s.Attrs, err)
	}
	rows, err := w.cfg.DB.Query(ctx, w.q.wfJobs, id)
	if err != nil {
		return nil, fmt.Errorf("pg: load workflow %s: awaited jobs: %w", id, err)
	}
	s.Jobs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (AwaitedJob, error) {
		var (
			j        AwaitedJob
			state    string
			errMsg   *string
			finished *time.Time
		)
		err := row.Scan(&j.JobID, &j.Step, &j.Kind, &state, &errMsg, &j.CreatedAt, &finished)
		j.State, j.Error = JobState(state), deref(errMsg)
		if finished != nil {
			j.FinishedAt = *finished
		}
		return j, err
	})
	if err != nil {
		return nil, fmt.Errorf("pg: load workflow %s: awaited jobs: %w", id, err)
	}
	return &s, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
