// Package iterjobtest runs jobs in a test, without Redis or a runner, through
// the same executor the runner uses: the same hooks, checkpoints, stop
// checks, outcome rules, middleware and Info. What a job sees here is what it
// sees in production.
//
// Iterate runs one run of an iterable job, from where the previous run left
// it (nil: a first run); stopping after a number of items simulates an
// interruption (a deploy), so a test can check that a resumed job neither
// skips nor repeats an item:
//
//	first, _ := iterjobtest.Iterate(ctx, job, args, nil, 3)    // 3 items, then interrupted
//	rest, err := iterjobtest.Iterate(ctx, job, args, first, 0) // resume to the end
//
// IterateWith takes Options to simulate a crash between checkpoints,
// checkpoint every few items, add server middleware, cap attempts or set the
// clock; a failed run is followed by a retry (the next call) with its
// attempt raised, as the runner's retry set does. Perform runs a plain job
// the same way.
//
// RequireEnqueued, RequireEnqueuedArgs and RequireNotEnqueued check what
// code under test enqueued (kind, args, queue, schedule, meta), reading a
// namespace through the admin API, on miniredis as on a real Redis.
// IterateEnqueued and PerformEnqueued then run such a job from its record,
// its arguments decoded as the runner decodes them:
//
//	rec := iterjobtest.RequireEnqueuedArgs(ctx, t, client, ReindexArgs{Tenant: "acme"}, nil)
//	run, err := iterjobtest.IterateEnqueued(ctx, job, rec, nil, iterjobtest.Options{})
//
// The job a run sees is the one the client would enqueue: typed arguments
// (queue.JobArgs) name its kind, Options set its queue and meta, and
// Options.StartCursor starts it where queue.EnqueueOpts.StartCursor would,
// through the same check of the cursor's shape.
//
// Timers (the checkpoint interval, MaxRuntime) use the standard library's
// clock, so a test that wants to control them runs inside a
// testing/synctest bubble, where time moves only while every goroutine
// waits; Options.Now and Options.Backoff fix when a retry is due:
//
//	synctest.Test(t, func(t *testing.T) {
//		// items that sleep 1 s each: MaxRuntime ends the run after item 31
//		run, _ := iterjobtest.IterateWith(t.Context(), job, args, nil,
//			iterjobtest.Options{MaxRuntime: 30*time.Second + time.Millisecond})
//	})
package iterjobtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/exec"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
	"github.com/iterjob/iterjob/shutdown"
)

// Crashed is the Stop of a run that crashed (see Options.CrashAfter): the
// process died, so no hook ran after the crash and nothing was saved.
const Crashed iterable.StopReason = "crashed"

// Run is the outcome of one run, and what the next run resumes from.
type Run struct {
	// Cursor is the saved cursor as JSON (nil if no item ever finished). A
	// Run built by hand with only Cursor set starts a job at that cursor.
	Cursor json.RawMessage
	// Items is the number of items this run finished; Total counts the
	// items saved over all runs (a crash loses the items since the last
	// checkpoint).
	Items, Total int64
	// Runs counts the runs so far, this one included.
	Runs int
	// Stop is why the run ended, as OnStop saw it (Crashed for a crash).
	Stop iterable.StopReason
	// Action is what the runner would do with the job next: "ack",
	// "requeue", "schedule", "retry", "dead", "cancel" or "lost"; "" after
	// a crash (the job is recovered and runs again).
	Action string
	// RunAt is when the job runs again (schedule, retry).
	RunAt time.Time
	// Err is the error the run ended with (also returned).
	Err error
	// Info is the run's Info as the job saw it.
	Info iterable.Info
	// Attempt is the attempt the next run will be.
	Attempt int

	job   *jobtype.Job
	store *cursor.MemoryStore
}

// Options shape a run.
type Options struct {
	// InterruptAfter stops the run after this many items, as quiet or a
	// shutdown would (0: never).
	InterruptAfter int64
	// CrashAfter kills the run right after this many items, as kill -9
	// would: nothing is saved and no hook runs; the next run resumes from
	// the last checkpoint (0: never).
	CrashAfter int64
	// CheckpointEvery saves the state after every this many items, besides
	// the checkpoint interval (0: only the interval and the end of the run).
	CheckpointEvery int64
	// CheckpointInterval is the runner's CheckpointInterval. Default 5 s.
	CheckpointInterval time.Duration
	// Middleware is the runner's server middleware.
	Middleware []runner.Middleware
	// MaxAttempts caps attempts as the runner's Config.MaxAttempts does.
	// Default runner.MaxAttemptsDefault.
	MaxAttempts int
	// Now is the clock events and the state's times use. Default time.Now.
	Now func() time.Time
	// Logger receives the executor's logs. Default: discarded.
	Logger *slog.Logger
	// MaxRuntime ends an iterable run after this long, as the runner's
	// Config.MaxRuntime does: checkpoint, then requeue (0: no limit).
	MaxRuntime time.Duration
	// Backoff is the runner's Config.Backoff: how long a failed job waits
	// before its retry (Run.RunAt). Default runner.DefaultBackoff.
	Backoff func(attempt int) time.Duration

	// Kind is the job's kind, as middleware and Info see it. Default: the
	// arguments' own kind if their type implements queue.JobArgs, else
	// "iterjobtest".
	Kind string
	// Queue is the job's queue. Default queue.QueueDefault.
	Queue string
	// Meta is the job's metadata, as queue.EnqueueOpts.Meta sets it.
	Meta map[string]string
	// StartCursor starts a first run at this cursor, exactly as
	// queue.EnqueueOpts.StartCursor does (the same encoding and the same
	// check: a cursor that does not decode into the job's cursor type fails
	// the run without retry, Action "dead"). Ignored when prev is set.
	StartCursor any

	sd *shutdown.Controller // the run's
}

// Iterate runs job from where prev left it (nil: a first run) and stops
// after maxItems items as an interruption would (0: no limit). It returns the
// run's outcome and the error it ended with (also in Run.Err). A panic in
// the job is returned as a *runner.PanicError, as the runner would record it.
func Iterate[A, T, C any](ctx context.Context, job iterable.Job[A, T, C], args A, prev *Run, maxItems int64) (*Run, error) {
	return IterateWith(ctx, job, args, prev, Options{InterruptAfter: maxItems})
}

// IterateWith is Iterate with Options.
func IterateWith[A, T, C any](ctx context.Context, job iterable.Job[A, T, C], args A, prev *Run, o Options) (*Run, error) {
	raw, fresh, err := first(args, &o)
	if err != nil {
		return nil, err
	}
	var items atomic.Int64
	return run(ctx, iterHandler(job, &o, &items), raw, fresh, prev, &o, &items)
}

// IterateEnqueued runs a job that code under test enqueued (the record
// RequireEnqueued returns) with job, from where prev left it (nil: a first
// run): the arguments are decoded from the record exactly as the runner
// decodes them (arguments that do not fit A end the run with
// runner.ErrInvalidArgs, Action "dead"), and the record's kind, queue, meta,
// attempt and start cursor are the run's. Options.Kind, Queue, Meta and
// StartCursor are not used.
func IterateEnqueued[A, T, C any](ctx context.Context, job iterable.Job[A, T, C], enqueued *jobtype.Job, prev *Run, o Options) (*Run, error) {
	var items atomic.Int64
	return run(ctx, iterHandler(job, &o, &items), enqueued.Args, fromRecord(enqueued), prev, &o, &items)
}

// PerformEnqueued runs a plain job that code under test enqueued, as
// IterateEnqueued does an iterable one.
func PerformEnqueued[A any](ctx context.Context, job iterable.Performer[A], enqueued *jobtype.Job, prev *Run, o Options) (*Run, error) {
	return run(ctx, exec.NewPlain(job, exec.KindOpts{}), enqueued.Args, fromRecord(enqueued), prev, &o, nil)
}

// iterHandler wraps job's enumerator to count items and to raise the
// interruptions, crashes and checkpoints o asks for.
func iterHandler[A, T, C any](job iterable.Job[A, T, C], o *Options, items *atomic.Int64) exec.Handler {
	wrap := func(e *exec.Execution, enum enumerators.Enumerator[T, C]) enumerators.Enumerator[T, C] {
		return enumerators.EnumeratorFunc[T, C](func(ctx context.Context, yield func(T, C) bool) error {
			return enum.Enumerate(ctx, func(item T, c C) bool {
				// The executor checks for a stop or a checkpoint after each
				// item: raise them before the item they follow.
				n := items.Load() + 1
				if o.InterruptAfter > 0 && n == o.InterruptAfter {
					o.shutdown().Quiet()
				}
				if o.CheckpointEvery > 0 && n%o.CheckpointEvery == 0 {
					e.Checkpoint()
				}
				if !yield(item, c) {
					return false
				}
				items.Add(1)
				if o.CrashAfter > 0 && n >= o.CrashAfter {
					runtime.Goexit() // the process dies: nothing more runs
				}
				return true
			})
		})
	}
	return exec.NewIterableWrapped(job, exec.KindOpts{}, wrap)
}

// Perform runs a plain job once, through the same executor and middleware
// as the runner; prev is the previous run (nil: a first run), so a retry
// after a failure runs with its attempt raised.
func Perform[A any](ctx context.Context, job iterable.Performer[A], args A, prev *Run, o Options) (*Run, error) {
	raw, fresh, err := first(args, &o)
	if err != nil {
		return nil, err
	}
	return run(ctx, exec.NewPlain(job, exec.KindOpts{}), raw, fresh, prev, &o, nil)
}

// first encodes args and builds the record of a first run from them and o.
func first(args any, o *Options) (json.RawMessage, *jobtype.Job, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, nil, err
	}
	j, err := newJob(args, o, o.now()())
	return raw, j, err
}

// fromRecord is the record of a first run of an enqueued job.
func fromRecord(j *jobtype.Job) *jobtype.Job {
	c := *j
	c.Args, c.Lease, c.Meta = nil, 0, maps.Clone(j.Meta)
	if c.Attempt == 0 {
		c.Attempt = 1
	}
	return &c
}

func (o *Options) now() func() time.Time {
	if o.Now == nil {
		return time.Now
	}
	return o.Now
}

// shutdown returns the run's shutdown controller.
func (o *Options) shutdown() *shutdown.Controller { return o.sd }

// run runs h on raw arguments: a first run (prev nil) of fresh, or the run
// after prev.
func run(ctx context.Context, h exec.Handler, raw json.RawMessage, fresh *jobtype.Job, prev *Run, o *Options, items *atomic.Int64) (*Run, error) {
	now := o.now()
	r := &Run{Runs: 1, store: cursor.NewMemoryStore(), job: fresh}
	if prev != nil {
		r.Runs = prev.Runs + 1
		if prev.store != nil {
			r.store, r.job = prev.store, prev.job
		} else if prev.Cursor != nil {
			// A hand-made Run: the job starts at its cursor.
			if _, err := r.store.Begin(ctx, r.job.ID, 1); err != nil {
				return nil, err
			}
			if err := r.store.Save(ctx, r.job.ID, 1, cursor.State{Cursor: prev.Cursor, ProgressDone: -1, ProgressTotal: -1}); err != nil {
				return nil, err
			}
			r.job.Lease = 1
		}
	}
	j := *r.job
	j.Args = raw
	j.Lease++
	if o.MaxAttempts == 0 {
		o.MaxAttempts = runner.MaxAttemptsDefault
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = runner.CheckpointIntervalDefault
	}
	if o.Backoff == nil {
		o.Backoff = runner.DefaultBackoff
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sd, err := shutdown.New(shutdown.Config{})
	if err != nil {
		return nil, err
	}
	o.sd = sd
	c := &completer{}
	x := exec.New(exec.Config{
		Store: r.store, Queue: nopQueue{}, Completer: c, Shutdown: sd, Logger: log,
		Middleware: o.Middleware, CheckpointInterval: o.CheckpointInterval, MaxAttempts: o.MaxAttempts,
		MaxRuntime: o.MaxRuntime, Backoff: o.Backoff, FinishTimeout: 5 * time.Second, Now: now,
	})
	e := exec.NewExecution(&j)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	e.Begin(now(), cancel, h.Iterable())
	done := make(chan struct{})
	go func() {
		defer close(done)
		x.Execute(ctx, e, h)
	}()
	<-done

	r.Info = e.Info()
	if items != nil {
		r.Items = items.Load()
	}
	if st, err := r.store.Load(ctx, j.ID); err == nil {
		r.Cursor, r.Total = st.Cursor, st.ItemsProcessed
	} else if !errors.Is(err, cursor.ErrNotFound) {
		return nil, err
	}
	next := j
	next.Args = nil
	switch out, ok := c.get(); {
	case !ok: // crashed: a reaper takes the job back
		r.Stop = Crashed
		next.Recovered++
	default:
		r.Action, r.RunAt, r.Err = out.Action.String(), out.At, out.Cause
		r.Stop = stopOf(out.Action)
		if out.Action == exec.Retry {
			next.Attempt++
		}
	}
	r.job = &next
	r.Attempt = next.Attempt
	if r.Action == "ack" || r.Action == "requeue" || r.Action == "schedule" || r.Action == "cancel" || r.Action == "lost" || r.Stop == Crashed {
		return r, nil
	}
	return r, r.Err
}

// newJob builds the job record of a first run, as the client would enqueue
// it.
func newJob(args any, o *Options, now time.Time) (*jobtype.Job, error) {
	j := &jobtype.Job{ID: rdb.NewID(), Kind: o.Kind, Queue: o.Queue, Attempt: 1, EnqueuedAt: now, Meta: maps.Clone(o.Meta)}
	if j.Kind == "" {
		j.Kind = "iterjobtest"
		if a, ok := args.(queue.JobArgs); ok {
			j.Kind = a.Kind()
		}
	}
	if j.Queue == "" {
		j.Queue = queue.QueueDefault
	}
	if o.StartCursor != nil {
		raw, err := json.Marshal(o.StartCursor)
		if err != nil {
			return nil, fmt.Errorf("iterjobtest: encode StartCursor: %w", err)
		}
		if j.Meta == nil {
			j.Meta = map[string]string{}
		}
		j.Meta[jobtype.MetaStartCursor] = string(raw)
	}
	return j, nil
}

func stopOf(a exec.Action) iterable.StopReason {
	switch a {
	case exec.Ack:
		return iterable.Completed
	case exec.Retry, exec.Dead:
		return iterable.Failed
	case exec.Cancel:
		return iterable.Cancelled
	}
	return iterable.Interrupted
}

// completer keeps the outcome of the one run.
type completer struct {
	out atomic.Pointer[exec.Outcome]
}

func (c *completer) Complete(_ context.Context, _ *exec.Execution, o exec.Outcome) { c.out.Store(&o) }

func (c *completer) get() (exec.Outcome, bool) {
	o := c.out.Load()
	if o == nil {
		return exec.Outcome{}, false
	}
	return *o, true
}

// nopQueue answers for a queue with no pending cancellation.
type nopQueue struct{}

func (nopQueue) CancelRequested(_ context.Context, jobs []*jobtype.Job) ([]bool, error) {
	return make([]bool, len(jobs)), nil
}
func (nopQueue) Forgive(context.Context, *jobtype.Job) error { return nil }
func (nopQueue) Publish(context.Context, jobtype.Event)      {}
