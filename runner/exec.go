package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/shutdown"
)

// Causes of a job context's cancellation, other than shutdown.ErrHardStop.
var (
	// ErrLeaseLost cancels a run whose job was handed to another run (this
	// process was presumed dead, or a newer run claimed the job's state).
	ErrLeaseLost = errors.New("runner: job lease lost to a newer run")
	// ErrCancelled cancels a plain job's context when the job is cancelled
	// through queue.Client.Cancel.
	ErrCancelled = errors.New("runner: job cancelled")
)

// PanicError is the error of a run that panicked. The panic is recovered;
// the job is retried like any failure and the worker goes on.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("runner: job panicked: %v", e.Value) }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// protect calls fn, turning a panic into a *PanicError.
func protect(fn func() error) (trace []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			pe := &PanicError{Value: p, Stack: debug.Stack()}
			trace, err = pe.Stack, pe
		}
	}()
	return nil, fn()
}

// Attention flags of an execution, set from timers and other goroutines and
// read after every item with one atomic load.
const (
	flagCheckpoint uint32 = 1 << iota // the checkpoint interval passed
	flagCancel                        // the job was cancelled
	flagMaxRuntime                    // the run reached its maximum runtime
	flagLeaseLost                     // another run owns the job now
	flagRestore                       // Redis lost its data: restore the run's state if gone
)

// execution is one run of one job.
type execution struct {
	job      *jobtype.Job
	iterable bool
	started  time.Time
	flags    atomic.Uint32
	cancel   context.CancelCauseFunc
	progress atomic.Pointer[jobtype.Progress] // as of the last checkpoint
}

// interruptedBy reports how a run ends whose context was cancelled: a hard
// stop re-enqueues it, a lost lease abandons it, a cancel cancels it.
func (e *execution) interruptedBy(ctx context.Context) (outcome, bool) {
	if ctx.Err() == nil {
		return outcome{}, false
	}
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, ErrLeaseLost):
		return outcome{kind: outLost}, true
	case errors.Is(cause, ErrCancelled):
		return outcome{kind: outCancel}, true
	case errors.Is(cause, shutdown.ErrHardStop):
		return outcome{kind: outRequeue}, true
	}
	return outcome{}, false
}

// failOr returns how a run ends whose context was cancelled (a hard stop
// re-enqueues it, a lost lease abandons it, a cancel cancels it) rather than
// out, a failure that the cancellation may have caused: a deploy must not
// cost a job an attempt.
func (e *execution) failOr(ctx context.Context, out outcome) outcome {
	if o, ok := e.interruptedBy(ctx); ok {
		return o
	}
	return out
}

type outKind int

const (
	outAck      outKind = iota // succeeded
	outRequeue                 // interrupted: back to the head of the queue
	outSchedule                // throttled: to the scheduled set at outcome.at
	outFail                    // failed: retry, snooze, cancel or dead, by the error
	outCancel                  // cancelled: removed
	outLost                    // lease lost: the job is someone else's now
)

// outcome is how a run ended.
type outcome struct {
	kind     outKind
	after    time.Duration // outSchedule: run again this long after the run ended
	err      error
	trace    []byte
	progress *jobtype.Progress
}

func failed(err error, trace []byte) outcome {
	return outcome{kind: outFail, err: err, trace: trace}
}

// execute runs one fetched job through middleware and its handler, then
// records the outcome in the queue. ctx is the worker's context: cancelling
// it (hard stop, lost lease, cancel) cancels the job.
func (r *Runner) execute(ctx context.Context, e *execution, h handler, ok bool) {
	ctx = iterable.WithInfo(ctx, iterable.Info{
		JobID: e.job.ID, Kind: e.job.Kind, Queue: e.job.Queue, Attempt: e.job.Attempt,
		Run: e.job.Lease, EnqueuedAt: e.job.EnqueuedAt,
	})
	var out outcome
	run := func(ctx context.Context) error {
		if !ok {
			out = failed(fmt.Errorf("%w %q", ErrUnknownKind, e.job.Kind), nil)
		} else {
			out = h.run(ctx, r, e)
		}
		if out.kind == outFail {
			return out.err
		}
		return nil
	}
	if len(r.cfg.Middleware) == 0 {
		_ = run(ctx)
	} else {
		trace, err := protect(func() error { return chain(r.cfg.Middleware, run)(ctx, e.job) })
		switch {
		case err == nil || err == out.err:
		case out.kind == outFail && errors.Is(err, out.err):
			out.err = err // wrapped by a middleware: keep the trace and progress
		default:
			out = failed(err, trace)
		}
	}
	r.finish(ctx, e, out, h)
}

// finish records a run's outcome, retrying through Redis outages until it
// is recorded or the process hard-stops.
func (r *Runner) finish(ctx context.Context, e *execution, out outcome, h handler) {
	j := e.job
	if out.kind == outAck {
		d := consumer.Done{Job: j}
		if r.eventsOn {
			ev := jobtype.NewEvent(jobtype.EventSucceeded, j, r.now())
			ev.Progress = out.progress
			d.Event = &ev
		}
		r.acks <- d
		return
	}
	now := r.now()
	log := r.log.With(slog.String("jid", j.ID), slog.String("kind", j.Kind), slog.String("queue", j.Queue), slog.Int("attempt", j.Attempt))
	var do func(context.Context) error
	switch out.kind {
	case outLost:
		log.WarnContext(ctx, "runner: run abandoned: another run owns the job now")
		r.forget(e)
		return
	case outRequeue:
		ev := jobtype.NewEvent(jobtype.EventInterrupted, j, now)
		ev.Progress = out.progress
		log.InfoContext(ctx, "runner: job interrupted and re-enqueued")
		do = func(ctx context.Context) error { return r.cons.Requeue(ctx, j, &ev) }
	case outSchedule:
		at := now.Add(out.after)
		ev := jobtype.NewEvent(jobtype.EventScheduled, j, now)
		ev.RunAt, ev.Progress = &at, out.progress
		log.InfoContext(ctx, "runner: job interrupted and scheduled", slog.Time("run_at", at))
		do = func(ctx context.Context) error { return r.cons.Schedule(ctx, j, at, &ev) }
	case outCancel:
		ev := jobtype.NewEvent(jobtype.EventCancelled, j, now)
		ev.Progress = out.progress
		log.InfoContext(ctx, "runner: job cancelled")
		do = func(ctx context.Context) error { return r.cons.Cancelled(ctx, j, &ev) }
	case outFail:
		do = r.failure(ctx, log, e, out, h, now)
	}
	r.record(ctx, log, do)
	r.forget(e)
}

// failure decides what a failed run leads to: snooze, cancel, retry or death.
func (r *Runner) failure(ctx context.Context, log *slog.Logger, e *execution, out outcome, h handler, now time.Time) func(context.Context) error {
	j := e.job
	var snooze *iterable.SnoozeError
	if errors.As(out.err, &snooze) {
		at := now.Add(snooze.Duration)
		ev := jobtype.NewEvent(jobtype.EventScheduled, j, now)
		ev.RunAt, ev.Progress = &at, out.progress
		log.InfoContext(ctx, "runner: job snoozed", slog.Duration("for", snooze.Duration))
		return func(ctx context.Context) error { return r.cons.Schedule(ctx, j, at, &ev) }
	}
	if errors.Is(out.err, iterable.ErrCancel) {
		ev := jobtype.NewEvent(jobtype.EventCancelled, j, now)
		ev.Progress = out.progress
		log.InfoContext(ctx, "runner: job cancelled itself", slog.Any("error", out.err))
		return func(ctx context.Context) error { return r.cons.Cancelled(ctx, j, &ev) }
	}

	jerr := jobtype.NewJobError(out.err, out.trace, j.Attempt, now)
	jerr.Class = jobtype.ErrorClass(out.err, steering)
	fev := jobtype.NewEvent(jobtype.EventFailed, j, now)
	fev.Error, fev.Progress = jerr.Message, out.progress
	r.publish(ctx, fev)

	maxAttempts := j.MaxAttempts
	if maxAttempts == 0 && h != nil {
		maxAttempts = h.options().MaxAttempts
	}
	if maxAttempts == 0 {
		maxAttempts = r.cfg.MaxAttempts
	}
	if errors.Is(out.err, iterable.ErrSkipRetry) || j.Attempt >= maxAttempts {
		ev := jobtype.NewEvent(jobtype.EventDead, j, now)
		ev.Error, ev.Progress = jerr.Message, out.progress
		log.ErrorContext(ctx, "runner: job failed and died", slog.Any("error", out.err), slog.Int("max_attempts", maxAttempts))
		return func(ctx context.Context) error { return r.cons.Kill(ctx, j, jerr, &ev) }
	}
	at := now.Add(r.cfg.Backoff(j.Attempt))
	ev := jobtype.NewEvent(jobtype.EventRetrying, j, now)
	ev.Error, ev.RunAt, ev.Progress = jerr.Message, &at, out.progress
	log.WarnContext(ctx, "runner: job failed; will retry", slog.Any("error", out.err), slog.Time("retry_at", at))
	return func(ctx context.Context) error { return r.cons.Retry(ctx, j, at, jerr, &ev) }
}

// steering reports whether err is one of iterable's steering wrappers: they
// decide what happens to the job and add no type of their own, so the class
// recorded for SkipRetry(err) is err's.
func steering(err error) bool {
	switch err.(type) {
	case *iterable.SkipRetryError, *iterable.CancelError:
		return true
	}
	return false
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

// Middleware wraps each run of a job. It may read and annotate the job,
// return an error to fail the run without calling next (return
// iterable.Cancel, SkipRetry or Snooze errors to steer it), or call next to
// run the job and see its error (nil for success and for interruptions).
type Middleware func(ctx context.Context, job *jobtype.Job, next func(context.Context) error) error

func chain(mw []Middleware, final func(context.Context) error) func(context.Context, *jobtype.Job) error {
	return func(ctx context.Context, j *jobtype.Job) error {
		next := final
		for i := len(mw) - 1; i >= 0; i-- {
			m, inner := mw[i], next
			next = func(ctx context.Context) error { return m(ctx, j, inner) }
		}
		return next(ctx)
	}
}
