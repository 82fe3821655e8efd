// Package exec runs one job: it owns a run from the handler's call to the
// record of its outcome. It decodes the arguments, calls the job's code
// through server middleware (an iterable job item by item, with hooks,
// checkpoints and stop checks), decides once how the run ended (ack,
// requeue, schedule, retry, dead, cancel or lost), writes an iterable job's
// final state with that outcome, calls OnStop with the real reason, and
// hands the outcome to a Completer.
//
// The runner and iterjobtest both run jobs through an Executor, so a job
// tested with iterjobtest sees what it will see in production.
//
// Transactional checkpoints: for an iterable job that implements
// iterable.Committer (package pg's transactional jobs), a run claims the
// committed state right after the store's Begin, resumes from the committed
// cursor (the store's state is then a mirror, saved as usual), and commits
// each item through CommitItem with the item's encoded cursor instead of
// calling EachIteration. A claim or commit refused as cursor.ErrStaleRun
// ends the run as lost. The executor imports no database driver: the
// Committer brings its own.
package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/shutdown"
)

// Errors the executor gives runs; package runner re-exports them.
var (
	// ErrLeaseLost cancels a run whose job was handed to another run (this
	// process was presumed dead, or a newer run claimed the job's state).
	ErrLeaseLost = errors.New("runner: job lease lost to a newer run")
	// ErrCancelled cancels a plain job's context when the job is cancelled
	// through queue.Client.Cancel.
	ErrCancelled = errors.New("runner: job cancelled")
	// ErrUnknownKind is the error of a job whose kind no handler is
	// registered for.
	ErrUnknownKind = errors.New("runner: unknown job kind")
	// ErrInvalidArgs is the error of a job whose arguments do not decode into
	// its kind's argument type.
	ErrInvalidArgs = errors.New("runner: job arguments do not decode")
)

// Middleware wraps each run of a job (see runner.Middleware).
type Middleware = func(ctx context.Context, job *jobtype.Job, next func(context.Context) error) error

// Action is what becomes of a job after a run.
type Action int

// Actions.
const (
	Ack      Action = iota // succeeded: forget it
	Requeue                // interrupted: back to the head of its queue
	Schedule               // throttled or snoozed: to the scheduled set, at Outcome.At
	Retry                  // failed: to the retry set, at Outcome.At, one attempt more
	Dead                   // failed for good: to the dead set
	Cancel                 // cancelled: forget it
	Lost                   // another run owns the job: leave it alone
)

var actionNames = [...]string{"ack", "requeue", "schedule", "retry", "dead", "cancel", "lost"}

func (a Action) String() string { return actionNames[a] }

// Outcome is how a run ended, as the Completer records it.
type Outcome struct {
	Action Action
	// At is when the job runs again (Schedule, Retry).
	At time.Time
	// Err is what the queue keeps of the failure (Retry, Dead).
	Err *jobtype.JobError
	// Cause is the error the run ended with, if any (a failure, a snooze,
	// a cancellation the job asked for).
	Cause error
	// Event describes the outcome (nil when events are off, and for Lost).
	Event *jobtype.Event
}

// Completer records outcomes in the queue. It retries through outages
// itself: when Complete returns, the outcome is recorded, or the process is
// exiting and the job will be recovered.
type Completer interface {
	Complete(ctx context.Context, e *Execution, o Outcome)
}

// Queue is what a run asks of the queue while it runs.
type Queue interface {
	// CancelRequested reports which jobs have a pending cancellation.
	CancelRequested(ctx context.Context, jobs []*jobtype.Job) ([]bool, error)
	// Forgive zeroes a running job's count of recoveries.
	Forgive(ctx context.Context, j *jobtype.Job) error
	// Publish sends an event that no queue change carries.
	Publish(ctx context.Context, ev jobtype.Event)
}

// Config configures an Executor. Every field is required unless it says
// otherwise; the runner fills in the defaults.
type Config struct {
	Store     cursor.Store
	Queue     Queue
	Completer Completer
	Shutdown  *shutdown.Controller
	Logger    *slog.Logger
	// Middleware wraps every run, outermost first (may be empty).
	Middleware         []Middleware
	CheckpointInterval time.Duration
	MaxRuntime         time.Duration // 0: none
	MaxAttempts        int
	Backoff            func(attempt int) time.Duration
	FinishTimeout      time.Duration
	// EventsOn says whether events go anywhere; off, none is built.
	EventsOn bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Beat, if set, heartbeats at once and reports whether it reached
	// Redis; a run whose state save is refused calls it to learn whether
	// Redis lost its data (then every run's Restore flag goes up).
	Beat func(ctx context.Context) bool
}

// Executor runs jobs. It is safe for concurrent use.
type Executor struct {
	cfg Config
	log *slog.Logger
}

// New returns an executor for cfg.
func New(cfg Config) *Executor {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Executor{cfg: cfg, log: cfg.Logger}
}

func (x *Executor) now() time.Time { return x.cfg.Now() }

func (x *Executor) beat(ctx context.Context) bool {
	return x.cfg.Beat != nil && x.cfg.Beat(ctx)
}

func (x *Executor) publish(ctx context.Context, ev jobtype.Event) {
	if x.cfg.EventsOn {
		x.cfg.Queue.Publish(ctx, ev)
	}
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

// Execution is one run of one job.
type Execution struct {
	Job *jobtype.Job
	// Started is when a worker began the run (zero while it waits).
	Started  time.Time
	iterable bool
	flags    atomic.Uint32
	cancel   context.CancelCauseFunc
	progress atomic.Pointer[jobtype.Progress] // as of the last checkpoint
	info     iterable.Info                    // as the job sees it; set as the run begins
}

// NewExecution returns an execution of j, not yet started.
func NewExecution(j *jobtype.Job) *Execution { return &Execution{Job: j} }

// Begin records that a worker starts the run now, with cancel cancelling
// its context, and whether the job is iterable. The caller serialises Begin,
// Cancel and Abandon (the runner holds a lock).
func (e *Execution) Begin(now time.Time, cancel context.CancelCauseFunc, iterable bool) {
	e.Started, e.cancel, e.iterable = now, cancel, iterable
	if e.flags.Load()&flagLeaseLost != 0 {
		cancel(ErrLeaseLost)
	}
}

// End records that the run is over: Cancel and Abandon no longer reach it.
func (e *Execution) End() { e.cancel = nil }

// Running reports whether a worker runs the execution now.
func (e *Execution) Running() bool { return e.cancel != nil }

// Iterable reports whether the job is an iterable one.
func (e *Execution) Iterable() bool { return e.iterable }

// Cancel asks the run to stop because its job was cancelled: an iterable
// job stops at its next item with OnStop(Cancelled), a plain job's context
// is cancelled with ErrCancelled.
func (e *Execution) Cancel() {
	if e.cancel == nil {
		return
	}
	if e.iterable {
		e.flags.Or(flagCancel)
	} else {
		e.cancel(ErrCancelled)
	}
}

// Abandon stops the run at once: its job belongs to another run now.
func (e *Execution) Abandon() {
	e.flags.Or(flagLeaseLost)
	if e.cancel != nil {
		e.cancel(ErrLeaseLost)
	}
}

// Restore has an iterable run check its state at its next item and put it
// back if Redis lost it.
func (e *Execution) Restore() { e.flags.Or(flagRestore) }

// Info is the run's Info as the job's code sees it (iterable jobs: with the
// counters of the state the run began from). It is set as the run begins;
// read it once Execute has returned.
func (e *Execution) Info() iterable.Info { return e.info }

// Checkpoint has an iterable run save its state after its next item.
func (e *Execution) Checkpoint() { e.flags.Or(flagCheckpoint) }

// Progress is an iterable run's progress as of its last checkpoint (nil
// for a plain job or before the first).
func (e *Execution) Progress() *jobtype.Progress { return e.progress.Load() }

// result is how a handler says its run ended, before middleware.
type result struct {
	kind  resultKind
	after time.Duration // throttled: run again this long after the run ended
	err   error         // failed
	trace []byte
	// finish writes an iterable run's final state with the outcome decided
	// after middleware, calls OnStop with reason, and returns the progress
	// for events (nil for a plain job).
	finish func(ctx context.Context, o Action, reason iterable.StopReason) *jobtype.Progress
}

type resultKind int

const (
	resDone        resultKind = iota // succeeded (enumeration exhausted and OnComplete done)
	resInterrupted                   // stop asked (quiet, shutdown, max runtime) or hard stop
	resThrottled                     // the enumerator throttled
	resCancelled                     // cancelled (flag or context)
	resLost                          // another run owns the job
	resFailed                        // an error or panic
)

func failed(err error, trace []byte) result { return result{kind: resFailed, err: err, trace: trace} }

// interruptedBy reports how a run ends whose context was cancelled: a hard
// stop re-enqueues it, a lost lease abandons it, a cancel cancels it.
func interruptedBy(ctx context.Context) (result, bool) {
	if ctx.Err() == nil {
		return result{}, false
	}
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, ErrLeaseLost):
		return result{kind: resLost}, true
	case errors.Is(cause, ErrCancelled):
		return result{kind: resCancelled}, true
	case errors.Is(cause, shutdown.ErrHardStop):
		return result{kind: resInterrupted}, true
	}
	return result{}, false
}

// failOr returns how a run ends whose context was cancelled rather than res,
// a failure the cancellation may have caused: a deploy must not cost a job
// an attempt.
func failOr(ctx context.Context, res result) result {
	if r, ok := interruptedBy(ctx); ok {
		return r
	}
	return res
}

// Handler runs the jobs of one kind. NewPlain and NewIterable build them.
type Handler interface {
	// Options are the kind's settings.
	Options() KindOpts
	// Iterable reports whether the kind's jobs are iterable.
	Iterable() bool
	run(ctx context.Context, x *Executor, e *Execution) result
}

// KindOpts are per-kind settings; zero fields fall back to Config.
type KindOpts struct {
	MaxAttempts int
	MaxRuntime  time.Duration
}

// Execute runs e's job with h (nil: no handler is registered for its kind)
// through the middleware, decides how the run ended and records it. ctx is
// the worker's context: cancelling it (hard stop, lost lease, cancel)
// cancels the job.
func (x *Executor) Execute(ctx context.Context, e *Execution, h Handler) {
	j := e.Job
	e.info = iterable.Info{
		JobID: j.ID, Kind: j.Kind, Queue: j.Queue, Attempt: j.Attempt,
		Run: j.Lease, EnqueuedAt: j.EnqueuedAt,
	}
	ctx = iterable.WithInfo(ctx, e.info)
	var res result
	run := func(ctx context.Context) error {
		if h == nil {
			res = failed(fmt.Errorf("%w %q", ErrUnknownKind, j.Kind), nil)
		} else {
			res = h.run(ctx, x, e)
		}
		if res.kind == resFailed {
			return res.err
		}
		return nil
	}
	var mwErr error
	var mwTrace []byte
	if len(x.cfg.Middleware) == 0 {
		_ = run(ctx)
	} else {
		mwTrace, mwErr = protect(func() error { return chain(x.cfg.Middleware, run)(ctx, j) })
	}
	var opts KindOpts
	if h != nil {
		opts = h.Options()
	}
	x.finish(ctx, e, x.decide(ctx, j, res, mwErr, mwTrace, opts))
}

// decision is how a run ended, after middleware: the one place a run's
// outcome is decided.
type decision struct {
	action Action
	reason iterable.StopReason
	at     time.Time
	err    error // the failure, or the error a job cancelled itself with
	trace  []byte
	res    result
	now    time.Time // when the run ended; At and events count from it
}

// decide classifies a run: the handler's result, the error the middleware
// returned (nil if it passed the handler's on, or there is none), and the
// context's cause.
func (x *Executor) decide(ctx context.Context, j *jobtype.Job, res result, mwErr error, mwTrace []byte, opts KindOpts) decision {
	// A middleware's error replaces the handler's result, except that a
	// middleware that wraps the handler's own failure keeps its trace.
	switch {
	case mwErr == nil || mwErr == res.err:
	case res.kind == resFailed && errors.Is(mwErr, res.err):
		res.err = mwErr
	default:
		res.kind, res.err, res.trace = resFailed, mwErr, mwTrace
	}
	now := x.now()
	d := decision{res: res, err: res.err, trace: res.trace, now: now}
	switch res.kind {
	case resDone:
		d.action, d.reason = Ack, iterable.Completed
	case resInterrupted:
		d.action, d.reason = Requeue, iterable.Interrupted
	case resThrottled:
		d.action, d.reason, d.at = Schedule, iterable.Interrupted, now.Add(res.after)
	case resCancelled:
		d.action, d.reason = Cancel, iterable.Cancelled
	case resLost:
		d.action, d.reason = Lost, iterable.Interrupted
	case resFailed:
		var snooze *iterable.SnoozeError
		switch {
		case errors.As(res.err, &snooze):
			d.action, d.reason, d.at = Schedule, iterable.Interrupted, now.Add(snooze.Duration)
		case errors.Is(res.err, iterable.ErrCancel):
			d.action, d.reason = Cancel, iterable.Cancelled
		case errors.Is(res.err, iterable.ErrSkipRetry) || j.Attempt >= x.maxAttempts(j, opts):
			d.action, d.reason = Dead, iterable.Failed
		default:
			d.action, d.reason, d.at = Retry, iterable.Failed, now.Add(x.cfg.Backoff(j.Attempt))
		}
	}
	return d
}

func (x *Executor) maxAttempts(j *jobtype.Job, opts KindOpts) int {
	switch {
	case j.MaxAttempts > 0:
		return j.MaxAttempts
	case opts.MaxAttempts > 0:
		return opts.MaxAttempts
	}
	return x.cfg.MaxAttempts
}

// finish writes an iterable job's final state, calls OnStop, logs, builds
// the outcome's events and hands it to the completer.
func (x *Executor) finish(ctx context.Context, e *Execution, d decision) {
	j := e.Job
	var progress *jobtype.Progress
	if d.res.finish != nil {
		hookCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), x.cfg.FinishTimeout)
		progress = d.res.finish(hookCtx, d.action, d.reason)
		cancel()
		if progress == lostProgress {
			// The final state could not be saved: another run owns it, or
			// Redis stayed unreachable through a hard stop. Either way the
			// job stays where it is, for its owner or the reaper.
			d.action, progress = Lost, nil
		}
	}
	now := d.now
	var log *slog.Logger
	if d.action != Ack { // not on the common path: With allocates
		log = x.log.With(slog.String("jid", j.ID), slog.String("kind", j.Kind), slog.String("queue", j.Queue), slog.Int("attempt", j.Attempt))
	}
	o := Outcome{Action: d.action, At: d.at, Cause: d.err}
	ev := func(t jobtype.EventType) *jobtype.Event {
		if !x.cfg.EventsOn {
			return nil
		}
		ev := jobtype.NewEvent(t, j, now)
		ev.Progress = progress
		if !d.at.IsZero() {
			ev.RunAt = &d.at
		}
		return &ev
	}
	switch d.action {
	case Ack:
		o.Event = ev(jobtype.EventSucceeded)
	case Lost:
		log.WarnContext(ctx, "runner: run abandoned: another run owns the job now")
	case Requeue:
		log.InfoContext(ctx, "runner: job interrupted and re-enqueued")
		o.Event = ev(jobtype.EventInterrupted)
	case Schedule:
		log.InfoContext(ctx, "runner: job interrupted and scheduled", slog.Time("run_at", d.at), slog.Any("error", d.err))
		o.Event = ev(jobtype.EventScheduled)
	case Cancel:
		log.InfoContext(ctx, "runner: job cancelled", slog.Any("error", d.err))
		o.Event = ev(jobtype.EventCancelled)
	case Retry, Dead:
		jerr := jobtype.NewJobError(d.err, d.trace, j.Attempt, now)
		jerr.Class = jobtype.ErrorClass(d.err, steering)
		o.Err = jerr
		if fe := ev(jobtype.EventFailed); fe != nil {
			fe.Error, fe.RunAt = jerr.Message, nil
			x.cfg.Queue.Publish(ctx, *fe)
		}
		if d.action == Dead {
			log.ErrorContext(ctx, "runner: job failed and died", slog.Any("error", d.err))
			o.Event = ev(jobtype.EventDead)
		} else {
			log.WarnContext(ctx, "runner: job failed; will retry", slog.Any("error", d.err), slog.Time("retry_at", d.at))
			o.Event = ev(jobtype.EventRetrying)
		}
		if o.Event != nil {
			o.Event.Error = jerr.Message
		}
	}
	x.cfg.Completer.Complete(ctx, e, o)
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

// persist runs a state write, retrying while the store is unreachable. After
// a hard stop it gives up after FinishTimeout: the process is exiting and the
// job will be recovered. A stale-run error ends it at once.
func (x *Executor) persist(ctx context.Context, log *slog.Logger, do func(context.Context) error) error {
	ctx = context.WithoutCancel(ctx)
	wait := 10 * time.Millisecond
	var deadline time.Time
	for {
		err := do(ctx)
		if err == nil || errors.Is(err, cursor.ErrStaleRun) {
			return err
		}
		if x.cfg.Shutdown.State() == shutdown.HardStop {
			if deadline.IsZero() {
				deadline = time.Now().Add(x.cfg.FinishTimeout)
			} else if time.Now().After(deadline) {
				return err
			}
		}
		log.ErrorContext(ctx, "runner: saving the job's state failed; retrying", slog.Any("error", err), slog.Duration("wait", wait))
		time.Sleep(wait)
		wait = min(wait*2, time.Second)
	}
}

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

// protect calls fn, turning a panic into a *jobtype.PanicError.
func protect(fn func() error) (trace []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			pe := &jobtype.PanicError{Value: p, Stack: debug.Stack()}
			trace, err = pe.Stack, pe
		}
	}()
	return nil, fn()
}
