// Package iterjobtest helps test iterable jobs without Redis or a runner.
//
// Iterate drives a job the way the runner does: it decodes the cursor saved
// by the previous run (through the same strict JSON encoding the store
// uses), calls OnStart on the first run and OnResume on later ones, builds
// the enumerator from the cursor, calls EachIteration per item and advances
// the cursor only after an item succeeds, and ends with OnComplete and
// OnStop. Stopping after a number of items simulates an interruption (a
// deploy), so a test can check that a resumed job neither skips nor repeats
// an item:
//
//	first, _ := iterjobtest.Iterate(ctx, job, args, nil, 3)    // 3 items, then interrupted
//	rest, err := iterjobtest.Iterate(ctx, job, args, first, 0) // resume to the end
package iterjobtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/iterable"
)

// Run is the outcome of one simulated run.
type Run struct {
	// Cursor is the saved cursor as JSON (nil if no item ever finished).
	Cursor json.RawMessage
	// Items is the number of items this run finished; Total counts all runs.
	Items, Total int64
	// Runs counts the runs so far, this one included.
	Runs int
	// Stop is why the run ended.
	Stop iterable.StopReason
	// Err is the failure that ended the run, if it failed.
	Err error

	started bool
}

// Iterate runs job from where prev stopped (nil: a first run) and stops
// after maxItems items as an interruption would (0: no limit). It returns the
// run's outcome, and its error when the run failed (also in Run.Err). A
// panic in the job is returned as an error, as the runner would record it.
func Iterate[A, T, C any](ctx context.Context, job iterable.Job[A, T, C], args A, prev *Run, maxItems int64) (*Run, error) {
	run := &Run{Runs: 1}
	if prev != nil {
		*run = Run{Cursor: prev.Cursor, Total: prev.Total, Runs: prev.Runs + 1, started: prev.started}
	}
	ctx = iterable.WithInfo(ctx, iterable.Info{JobID: "iterjobtest", Kind: "iterjobtest", Queue: "default",
		Attempt: 1, Run: int64(run.Runs), Executions: run.Runs, ItemsProcessed: run.Total})
	start, err := cursor.Decode[C](run.Cursor)
	if err != nil {
		return fail(run, err)
	}
	if !run.started {
		if s, ok := job.(iterable.Starter[A]); ok {
			if err := protect(func() error { return s.OnStart(ctx, args) }); err != nil {
				return fail(run, fmt.Errorf("OnStart: %w", err))
			}
		}
		run.started = true
	} else if r, ok := job.(iterable.Resumer[A]); ok {
		if err := protect(func() error { return r.OnResume(ctx, args) }); err != nil {
			return stop(ctx, job, args, run, iterable.Failed, fmt.Errorf("OnResume: %w", err))
		}
	}
	var itemErr, saveErr error
	interrupted := false
	enumErr := protect(func() error {
		e, err := job.BuildEnumerator(ctx, args, start)
		if err != nil {
			return fmt.Errorf("BuildEnumerator: %w", err)
		}
		if e == nil {
			return errors.New("BuildEnumerator returned a nil enumerator")
		}
		return e.Enumerate(ctx, func(item T, c C) bool {
			if err := job.EachIteration(ctx, args, item); err != nil {
				itemErr = err
				return false
			}
			raw, err := cursor.Encode(c)
			if err != nil {
				saveErr = err
				return false
			}
			run.Cursor = raw
			run.Items++
			run.Total++
			if maxItems > 0 && run.Items >= maxItems {
				interrupted = true
				return false
			}
			return true
		})
	})
	switch {
	case itemErr != nil:
		return stop(ctx, job, args, run, iterable.Failed, itemErr)
	case saveErr != nil:
		return stop(ctx, job, args, run, iterable.Failed, saveErr)
	case errors.Is(enumErr, iterable.ErrCancel):
		return stop(ctx, job, args, run, iterable.Cancelled, nil)
	case enumErr != nil:
		return stop(ctx, job, args, run, iterable.Failed, enumErr)
	case interrupted:
		return stop(ctx, job, args, run, iterable.Interrupted, nil)
	}
	if c, ok := job.(iterable.Completer[A]); ok {
		if err := protect(func() error { return c.OnComplete(ctx, args) }); err != nil {
			return stop(ctx, job, args, run, iterable.Failed, fmt.Errorf("OnComplete: %w", err))
		}
	}
	return stop(ctx, job, args, run, iterable.Completed, nil)
}

func stop[A, T, C any](ctx context.Context, job iterable.Job[A, T, C], args A, run *Run, reason iterable.StopReason, err error) (*Run, error) {
	run.Stop, run.Err = reason, err
	if s, ok := job.(iterable.Stopper[A]); ok {
		_ = protect(func() error { return s.OnStop(ctx, args, reason) })
	}
	return run, err
}

func fail(run *Run, err error) (*Run, error) {
	run.Stop, run.Err = iterable.Failed, err
	return run, err
}

func protect(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("iterjobtest: job panicked: %v", p)
		}
	}()
	return fn()
}
