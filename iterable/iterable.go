package iterable

import (
	"context"

	"github.com/iterjob/iterjob/enumerators"
)

// Job is an iterable job with arguments A, items T and cursor C. The runner
// calls BuildEnumerator once per run with the cursor saved by the last run
// (nil on the first) and EachIteration once per item. After each item it
// advances the cursor in memory and checks, with one atomic load, whether it
// must stop; it saves the cursor at most once per checkpoint interval and
// whenever the run ends.
//
// A job value is shared by all runs of its kind: keep per-run data in
// arguments, items or the cursor, not in the job's fields.
//
// Optional hooks: a job may also implement Starter, Resumer, Stopper and
// Completer.
type Job[A, T, C any] interface {
	// BuildEnumerator returns the enumeration resumed at cursor. It is called
	// at the start of every run, so it must build the same sequence each
	// time for the same arguments.
	BuildEnumerator(ctx context.Context, args A, cursor *C) (enumerators.Enumerator[T, C], error)
	// EachIteration processes one item. It may run more than once for the
	// same item if the process dies between checkpoints, so it must be
	// idempotent. An error stops the run; the retry resumes at this item.
	// (A job with transactional checkpoints, see Committer, commits each
	// item with its cursor instead, and runs no item twice.)
	EachIteration(ctx context.Context, args A, item T) error
}

// Performer is a plain job with arguments A: Perform runs it whole. The
// runner retries it from the start when it fails.
type Performer[A any] interface {
	Perform(ctx context.Context, args A) error
}

// Starter is an optional hook of a Job: OnStart runs on a job's first run,
// before BuildEnumerator. If it fails the run fails, and OnStart runs again
// on the retry, until it succeeds once.
type Starter[A any] interface {
	OnStart(ctx context.Context, args A) error
}

// Resumer is an optional hook of a Job: OnResume runs at the start of every
// run after the one where OnStart succeeded (after an interruption, an
// error or a crash). An error fails the run.
type Resumer[A any] interface {
	OnResume(ctx context.Context, args A) error
}

// Stopper is an optional hook of a Job: OnStop runs at the end of every run
// that got past OnStart/OnResume, with the reason it ended, after the state
// was saved and before the job is handed back to the queue, so one run's
// OnStop never overlaps the next run's hooks. A run of a job cancelled before
// it started calls OnStart or OnResume, then OnStop(Cancelled), and iterates
// nothing. Its error is logged and otherwise ignored.
type Stopper[A any] interface {
	OnStop(ctx context.Context, args A, reason StopReason) error
}

// Completer is an optional hook of a Job: OnComplete runs once the
// enumeration is exhausted, before OnStop(Completed). If it fails the run
// fails; the retry finds nothing left to iterate and calls OnComplete again.
// Once a run has saved the job as completed, OnComplete does not run again,
// even if the process dies before the job is acknowledged.
type Completer[A any] interface {
	OnComplete(ctx context.Context, args A) error
}

// StopReason says why a run ended.
type StopReason string

// Stop reasons.
const (
	// Completed: the enumeration was exhausted and OnComplete succeeded.
	Completed StopReason = "completed"
	// Interrupted: the process is quieting or stopping, the run reached its
	// maximum runtime, or the enumerator throttled; the job was re-enqueued
	// and resumes at the cursor.
	Interrupted StopReason = "interrupted"
	// Failed: an item, a hook or the enumerator failed (or panicked); the job
	// is retried from the cursor of the last item that succeeded, or dies.
	Failed StopReason = "failed"
	// Cancelled: the job was cancelled (before its run started, while it
	// ran, or by a Cancel error); it is not re-enqueued and OnComplete does
	// not fire.
	Cancelled StopReason = "cancelled"
)
