package iterable

import (
	"context"
	"encoding/json"
)

// Committer is an optional interface of a Job for transactional checkpoints:
// each item's work and the cursor after it are committed together, in one
// database transaction, so an item never runs twice, even when the process
// dies (kill -9, OOM). Package pg implements it for jobs with an
// EachIterationTx method (pg.Transactional); a job rarely implements it
// itself.
//
// For a job that has it, every run works as follows:
//
//   - After the run claims the job's state in the cursor store, the runner
//     calls ClaimCommitted once. It claims the committed state for the run,
//     fencing out every older run: from then on, an older run's CommitItem
//     must fail. The committed cursor is the source of truth: when there is
//     one, the run resumes from it, whatever the cursor store holds (the
//     store keeps a mirror, saved as usual at checkpoints and at the end of
//     the run, for progress and the dashboard).
//   - For each item the runner calls CommitItem instead of EachIteration,
//     with the run's number and the cursor after the item, encoded as JSON.
//     CommitItem does the item's work and records the cursor atomically:
//     both or neither. It returns nil only once both are durable.
//
// Errors: an error from either method matching cursor.ErrStaleRun means a
// newer run owns the job, and the run ends at once without touching the job
// again. Any other error fails the run as an error from EachIteration would;
// the retry resumes from the committed cursor.
type Committer[A, T any] interface {
	// ClaimCommitted claims the committed state of job jobID for run, which
	// must be greater than any run that claimed it before, and returns it.
	ClaimCommitted(ctx context.Context, jobID string, run int64, args A) (Committed, error)
	// CommitItem processes item and records cursor as the position after
	// it, in one transaction that commits only while run owns the job.
	CommitItem(ctx context.Context, jobID string, run int64, args A, item T, cursor json.RawMessage) error
}

// Committed is what a Committer holds for a job.
type Committed struct {
	// Cursor is the position after the last item committed; nil before the
	// first, and then the run starts from the cursor store's.
	Cursor json.RawMessage
	// Items counts the items committed, over all runs.
	Items int64
}
