package runner

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/exec"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/shutdown"
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

// Complete records a run's outcome in the queue (exec.Completer): acks go
// to the batching ack loop, the rest are written at once, retried through
// Redis outages until recorded or the process hard-stops.
func (r *Runner) Complete(ctx context.Context, e *exec.Execution, o exec.Outcome) {
	j := e.Job
	if o.Action == exec.Ack {
		r.acks <- consumer.Done{Job: j, Event: o.Event}
		return
	}
	log := r.log.With(slog.String("jid", j.ID), slog.String("kind", j.Kind))
	var do func(context.Context) error
	switch o.Action {
	case exec.Lost:
		r.forget(e)
		return
	case exec.Requeue:
		do = func(ctx context.Context) error { return r.cons.Requeue(ctx, j, o.Event) }
	case exec.Schedule:
		do = func(ctx context.Context) error { return r.cons.Schedule(ctx, j, o.At, o.Event) }
	case exec.Cancel:
		do = func(ctx context.Context) error { return r.cons.Cancelled(ctx, j, o.Event) }
	case exec.Retry:
		do = func(ctx context.Context) error { return r.cons.Retry(ctx, j, o.At, o.Err, o.Event) }
	case exec.Dead:
		do = func(ctx context.Context) error { return r.cons.Kill(ctx, j, o.Err, o.Event) }
	}
	r.record(ctx, log, do)
	r.forget(e)
}

// record runs a queue write, retrying while Redis is unreachable. After a
// hard stop it gives up after FinishTimeout: the process is exiting and the
// job will be recovered from its in-flight set.
func (r *Runner) record(ctx context.Context, log *slog.Logger, do func(context.Context) error) {
	ctx = context.WithoutCancel(ctx)
	wait := 10 * time.Millisecond
	var deadline time.Time
	checked := false
	for {
		gen := r.restores.Load()
		err := do(ctx)
		if err == nil {
			return
		}
		if errors.Is(err, consumer.ErrLeaseLost) {
			// The job's in-flight entry is gone: handed to a newer run, or
			// lost by Redis with its data, which a heartbeat finds out (and
			// then puts the entry back).
			if !checked {
				checked = true
				r.beat(ctx)
				if r.restores.Load() != gen {
					continue
				}
			}
			log.WarnContext(ctx, "runner: job finished by a stale run; left to its new owner", slog.Any("error", err))
			return
		}
		if r.sd.State() == shutdown.HardStop {
			if deadline.IsZero() {
				deadline = time.Now().Add(r.cfg.FinishTimeout)
			} else if time.Now().After(deadline) {
				log.ErrorContext(ctx, "runner: could not record the end of a run before exiting; the job will be recovered from this process's in-flight set", slog.Any("error", err))
				return
			}
		}
		log.ErrorContext(ctx, "runner: recording the end of a run failed; retrying", slog.Any("error", err), slog.Duration("wait", wait))
		time.Sleep(wait)
		wait = min(wait*2, time.Second)
	}
}
