package runner

import (
	"github.com/iterjob/iterjob/internal/exec"
	"github.com/iterjob/iterjob/jobtype"
)

// Causes of a job context's cancellation, other than shutdown.ErrHardStop.
var (
	// ErrLeaseLost cancels a run whose job was handed to another run (this
	// process was presumed dead, or a newer run claimed the job's state).
	ErrLeaseLost = exec.ErrLeaseLost
	// ErrCancelled cancels a plain job's context when the job is cancelled
	// through queue.Client.Cancel.
	ErrCancelled = exec.ErrCancelled
)

// PanicError is the error of a run that panicked. The panic is recovered;
// the job is retried like any failure and the worker goes on.
type PanicError = jobtype.PanicError

// Middleware wraps each run of a job. It may read and annotate the job,
// return an error to fail the run without calling next (return
// iterable.Cancel, SkipRetry or Snooze errors to steer it), or call next to
// run the job and see its error (nil for success and for interruptions).
// An iterable job's final state and its OnStop hook follow the outcome the
// middleware returns: a middleware that fails a run that completed makes
// it a failed run, retried from its cursor.
type Middleware = exec.Middleware
