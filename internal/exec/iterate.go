package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/shutdown"
)

// iterHandler runs an iterable.Job.
type iterHandler[A, T, C any] struct {
	job       iterable.Job[A, T, C]
	opts      KindOpts
	starter   iterable.Starter[A]
	resumer   iterable.Resumer[A]
	stopper   iterable.Stopper[A]
	completer iterable.Completer[A]
	committer iterable.Committer[A, T] // transactional checkpoints (nil: none)
	wrap      func(*Execution, enumerators.Enumerator[T, C]) enumerators.Enumerator[T, C]
}

// NewIterable returns the handler of an iterable job kind: arguments A,
// items T, cursor C.
func NewIterable[A, T, C any](job iterable.Job[A, T, C], opts KindOpts) Handler {
	return NewIterableWrapped(job, opts, nil)
}

// NewIterableWrapped is NewIterable with wrap applied to the enumerator of
// every run (test helpers count items or stop runs with it; nil: none).
func NewIterableWrapped[A, T, C any](job iterable.Job[A, T, C], opts KindOpts, wrap func(*Execution, enumerators.Enumerator[T, C]) enumerators.Enumerator[T, C]) Handler {
	h := &iterHandler[A, T, C]{job: job, opts: opts, wrap: wrap}
	h.starter, _ = job.(iterable.Starter[A])
	h.resumer, _ = job.(iterable.Resumer[A])
	h.stopper, _ = job.(iterable.Stopper[A])
	h.completer, _ = job.(iterable.Completer[A])
	h.committer, _ = job.(iterable.Committer[A, T])
	return h
}

func (h *iterHandler[A, T, C]) checkCursor(raw []byte) error {
	_, err := cursor.Decode[C](raw)
	return err
}

// CheckStartCursor returns an error unless raw (JSON) decodes into the
// cursor type of h's kind, as a run does with a start cursor; a plain kind
// has no cursor.
func CheckStartCursor(h Handler, raw []byte) error {
	c, ok := h.(interface{ checkCursor([]byte) error })
	if !ok {
		return errors.New("the kind is not iterable: it has no cursor")
	}
	return c.checkCursor(raw)
}

func (h *iterHandler[A, T, C]) Options() KindOpts { return h.opts }
func (h *iterHandler[A, T, C]) Iterable() bool    { return true }

// Why the item loop stopped early.
type stopCause int

const (
	stopNone stopCause = iota
	stopShutdown
	stopMaxRuntime
	stopCancel
	stopLost
	stopError
)

// iteration is one run of an iterable job.
type iteration[A, T, C any] struct {
	h    *iterHandler[A, T, C]
	x    *Executor
	e    *Execution
	log  *slog.Logger
	args A

	base     cursor.State // as claimed by Begin, plus saved flags
	start    *C           // the cursor the run resumed from
	last     C            // the cursor after the last item finished
	lastRaw  []byte       // the last cursor encoded, saved by checkpoints
	have     bool         // whether an item finished in this run
	items    int64        // items finished in this run
	forceAt  int64        // items after which a checkpoint is due (see recoveredRunCheckpoints)
	began    time.Time
	pr       enumerators.ProgressReporter[C]
	built    bool // the enumerator was built; before, progress is the saved state's
	timer    *time.Timer
	stop     stopCause
	err      error // why the run stopped with stopError
	hooksRan bool  // OnStart or OnResume succeeded, so OnStop is due
}

func (h *iterHandler[A, T, C]) run(ctx context.Context, x *Executor, e *Execution) result {
	j := e.Job
	args, err := decodeArgs[A](j.Args)
	if err != nil {
		return failed(iterable.SkipRetry(err), nil)
	}
	st, err := x.cfg.Store.Begin(ctx, j.ID, j.Lease)
	if errors.Is(err, cursor.ErrStaleRun) {
		return result{kind: resLost}
	}
	if err != nil {
		return failOr(ctx, failed(err, nil))
	}
	if h.committer != nil && st.Status != cursor.StatusCompleted {
		if st, err = h.claimCommitted(ctx, j, args, st); err != nil {
			if errors.Is(err, cursor.ErrStaleRun) {
				return result{kind: resLost}
			}
			return failOr(ctx, failed(err, nil))
		}
	}
	it := &iteration[A, T, C]{
		h: h, x: x, e: e, args: args, base: st, began: x.now(),
		log: x.log.With(slog.String("jid", j.ID), slog.String("kind", j.Kind)),
	}
	e.info.Executions, e.info.TimesInterrupted, e.info.ItemsProcessed = st.Executions, st.TimesInterrupted, st.ItemsProcessed
	ctx = iterable.WithInfo(ctx, e.info)
	return it.run(ctx)
}

// claimCommitted claims the committed state of a job with transactional
// checkpoints (see iterable.Committer) and returns st with the committed
// cursor and item count, which win over the store's mirror. A job with
// nothing committed yet keeps the store's cursor.
func (h *iterHandler[A, T, C]) claimCommitted(ctx context.Context, j *jobtype.Job, args A, st cursor.State) (cursor.State, error) {
	var c iterable.Committed
	trace, err := protect(func() (err error) {
		c, err = h.committer.ClaimCommitted(ctx, j.ID, j.Lease, args)
		return err
	})
	if err != nil {
		if trace != nil || !errors.Is(err, cursor.ErrStaleRun) {
			err = fmt.Errorf("runner: claim the committed state: %w", err)
		}
		return st, err
	}
	if c.Cursor != nil {
		st.Cursor, st.ItemsProcessed = c.Cursor, c.Items
	}
	return st, nil
}

func (it *iteration[A, T, C]) run(ctx context.Context) result {
	j := it.e.Job
	if it.base.Status == cursor.StatusCompleted {
		return it.alreadyCompleted(ctx)
	}
	flags, err := it.x.cfg.Queue.CancelRequested(ctx, []*jobtype.Job{j})
	if err != nil {
		return failOr(ctx, failed(fmt.Errorf("runner: read cancel flag: %w", err), nil))
	}
	// A job cancelled before its run starts still gets its start or resume
	// hook and OnStop(Cancelled), as in Sidekiq's IterableJob, but iterates
	// nothing: its cursor is not even decoded, so a cursor this deploy
	// cannot read does not keep it from being cancelled.
	cancelled := flags[0] || it.e.flags.Load()&flagCancel != 0
	if !cancelled {
		raw := it.base.Cursor
		if first, ok := j.Meta[jobtype.MetaStartCursor]; ok && (len(raw) == 0 || string(raw) == "null") {
			// No item finished yet: start where the enqueuer asked.
			start, err := cursor.Decode[C]([]byte(first))
			if err != nil {
				return failed(iterable.SkipRetry(fmt.Errorf("runner: job %s: start cursor: %w", j.ID, err)), nil)
			}
			it.start = start
		} else {
			start, err := cursor.Decode[C](raw)
			if err != nil {
				// The state is left as it is: nothing is lost, and a fixed
				// deploy resumes from it.
				return failed(fmt.Errorf("runner: job %s: %w", j.ID, err), nil)
			}
			it.start = start
		}
	}

	if out, ok := it.begin(ctx, cancelled); !ok {
		return it.end(ctx, out)
	}
	if cancelled {
		return it.end(ctx, result{kind: resCancelled})
	}
	start := it.start

	var enum enumerators.Enumerator[T, C]
	trace, err := protect(func() (err error) {
		enum, err = it.h.job.BuildEnumerator(ctx, it.args, start)
		return err
	})
	if err == nil && enum == nil {
		err = errors.New("BuildEnumerator returned a nil enumerator")
	}
	if err != nil {
		return it.end(ctx, failOr(ctx, failed(fmt.Errorf("BuildEnumerator: %w", err), trace)))
	}
	it.pr, _ = enum.(enumerators.ProgressReporter[C])
	it.built = true
	if it.h.wrap != nil {
		enum = it.h.wrap(it.e, enum)
	}

	it.forceAt = math.MaxInt64
	if j.Recovered > 0 {
		it.forceAt = 1 // see recoveredRunCheckpoints
	}
	it.timer = time.AfterFunc(it.x.cfg.CheckpointInterval, func() { it.e.flags.Or(flagCheckpoint) })
	defer it.timer.Stop()
	maxRuntime := it.h.opts.MaxRuntime
	if maxRuntime == 0 {
		maxRuntime = it.x.cfg.MaxRuntime
	}
	if maxRuntime > 0 {
		mt := time.AfterFunc(maxRuntime, func() { it.e.flags.Or(flagMaxRuntime) })
		defer mt.Stop()
	}

	return it.end(ctx, it.loop(ctx, enum))
}

// begin runs OnStart (first run) or OnResume (later runs) and publishes the
// started or resumed event. If the hook fails, or the first save fails, it
// returns how the run ends and false. A hook failing in a run of a cancelled
// job is logged and the run ends cancelled: the job is not retried.
func (it *iteration[A, T, C]) begin(ctx context.Context, cancelled bool) (result, bool) {
	hookFailed := func(hook string, err error, trace []byte) (result, bool) {
		if cancelled {
			it.log.WarnContext(ctx, "runner: "+hook+" failed in a run of a cancelled job; cancelling it anyway", slog.Any("error", err))
			return result{kind: resCancelled}, false
		}
		return failOr(ctx, failed(fmt.Errorf("%s: %w", hook, err), trace)), false
	}
	if !it.base.Started {
		if it.h.starter != nil {
			if trace, err := protect(func() error { return it.h.starter.OnStart(ctx, it.args) }); err != nil {
				return hookFailed("OnStart", err, trace)
			}
		}
		it.base.Started = true
		if err := it.save(ctx, cursor.StatusRunning); err != nil {
			return failOr(ctx, it.saveFailed(err)), false
		}
		it.x.publish(ctx, it.event(jobtype.EventStarted, nil))
	} else {
		if it.h.resumer != nil {
			if trace, err := protect(func() error { return it.h.resumer.OnResume(ctx, it.args) }); err != nil {
				return hookFailed("OnResume", err, trace)
			}
		}
		it.x.publish(ctx, it.event(jobtype.EventResumed, it.progress(ctx)))
	}
	it.hooksRan = true
	return result{}, true
}

// recoveredRunCheckpoints: a run of a job recovered from a dead process
// checkpoints after its 1st, 2nd, 4th, 8th... item, besides the checkpoint
// interval, and the first of those saves forgives the job's recoveries (see
// save). So a run that finishes items makes that progress durable at once,
// and its death is not counted against the job: workers dying faster than
// the checkpoint interval (a crash loop caused by another job, a bad node)
// never make a job that progresses a poison pill. A run that dies before
// finishing an item is counted. A job that itself kills its worker at some
// item still dies: each run saves at least half the way to that item, so
// within a logarithmic number of runs the job resumes right at it, finishes
// nothing, and its recoveries count up to MaxRecoveries.
//
// loop runs the items. Per item it costs the job's work, a cursor copy, two
// atomic loads and a comparison; everything else happens in attend, only
// when a flag is up, a checkpoint of a recovered run is due, or the process
// is shutting down.
//
// A stop decided after an item (shutdown, maximum runtime, cancel) takes
// effect when the enumerator offers the next item, which is then not
// started: if the enumeration ends instead, the job is complete and is not
// re-enqueued for nothing.
func (it *iteration[A, T, C]) loop(ctx context.Context, enum enumerators.Enumerator[T, C]) result {
	var itemErr error
	refused := false // an item was offered after a stop was decided
	e, sd, job, args := it.e, it.x.cfg.Shutdown, it.h.job, it.args
	cm, jid, run := it.h.committer, e.Job.ID, e.Job.Lease
	yield := func(item T, c C) bool {
		if it.stop != stopNone {
			refused = true
			return false
		}
		if cm != nil {
			// Transactional checkpoints: the item and its cursor commit
			// together, and the cursor saved to the store mirrors it.
			raw, err := cursor.Encode(c)
			if err != nil {
				it.stop, it.err = stopError, fmt.Errorf("runner: cursor after item %d of this run: %w", it.items+1, err)
				return false
			}
			if err := cm.CommitItem(ctx, jid, run, args, item, raw); err != nil {
				if errors.Is(err, cursor.ErrStaleRun) {
					it.stop = stopLost
				} else {
					itemErr = err
				}
				return false
			}
			it.lastRaw = raw
		} else if err := job.EachIteration(ctx, args, item); err != nil {
			itemErr = err
			return false
		}
		it.last, it.have = c, true
		it.items++
		if e.flags.Load() != 0 || it.items >= it.forceAt || sd.State() != shutdown.Running {
			if !it.attend(ctx) {
				refused = true
				return false
			}
		}
		return true
	}
	trace, enumErr := protect(func() error { return enum.Enumerate(ctx, yield) })

	var th *enumerators.ThrottledError
	switch {
	case trace != nil:
		return failed(enumErr, trace)
	case itemErr != nil:
		return failOr(ctx, failed(itemErr, nil))
	case errors.As(enumErr, &th):
		return result{kind: resThrottled, after: th.RetryAfter}
	case enumErr != nil:
		return failOr(ctx, failed(enumErr, nil))
	}
	if it.stop == stopLost {
		return result{kind: resLost}
	}
	if it.stop == stopError {
		return failed(it.err, nil)
	}
	if refused {
		switch it.stop {
		case stopCancel:
			return result{kind: resCancelled}
		default:
			return result{kind: resInterrupted}
		}
	}
	if o, ok := interruptedBy(ctx); ok && o.kind != resInterrupted {
		return o
	}
	return result{kind: resDone}
}

// attend handles a raised flag or a shutdown after an item. It returns false
// to stop at once (the run lost its lease, or its cursor cannot be saved);
// other stops are recorded in it.stop and take effect at the next item.
func (it *iteration[A, T, C]) attend(ctx context.Context) bool {
	f := it.e.flags.Load()
	switch {
	case f&flagLeaseLost != 0:
		it.stop = stopLost
		return false
	case f&flagCancel != 0:
		it.stop = stopCancel
	case it.x.cfg.Shutdown.State() != shutdown.Running:
		it.stop = stopShutdown
	case f&flagMaxRuntime != 0:
		it.stop = stopMaxRuntime
	}
	if it.stop != stopNone {
		return true
	}
	if f&flagRestore != 0 {
		it.restore(ctx)
	}
	if f&flagCheckpoint != 0 || it.items >= it.forceAt {
		it.e.flags.And(^flagCheckpoint)
		if it.items >= it.forceAt {
			it.forceAt = 2 * it.items
		}
		if err := it.encodeLast(); err != nil {
			it.stop, it.err = stopError, err
			return false
		}
		err := it.save(ctx, cursor.StatusRunning)
		if errors.Is(err, cursor.ErrStaleRun) {
			it.stop = stopLost
			return false
		}
		if err != nil {
			it.log.WarnContext(ctx, "runner: checkpoint failed; the next one will try again", slog.Any("error", err))
		} else {
			it.x.publish(ctx, it.event(jobtype.EventCheckpointed, it.progress(ctx)))
		}
		it.timer.Reset(it.x.cfg.CheckpointInterval)
	}
	return true
}

// encodeLast encodes the cursor after the last item finished, for the next
// save. If it cannot be encoded (or its MarshalJSON panics), the run must
// end: saves keep the last cursor that could be encoded.
func (it *iteration[A, T, C]) encodeLast() error {
	if !it.have || it.h.committer != nil { // a committer's items encode their cursors
		return nil
	}
	var raw []byte
	_, err := protect(func() (err error) {
		raw, err = cursor.Encode(it.last)
		return err
	})
	if err != nil {
		return fmt.Errorf("runner: cursor after item %d of this run: %w", it.items, err)
	}
	it.lastRaw = raw
	return nil
}

// snapshot is the state as of now.
func (it *iteration[A, T, C]) snapshot(ctx context.Context, status cursor.Status) cursor.State {
	st := it.base
	if it.lastRaw != nil {
		st.Cursor = it.lastRaw
	}
	now := it.x.now()
	st.ItemsProcessed += it.items
	st.RunTime += now.Sub(it.began)
	st.LastCheckpointAt = now
	st.Status = status
	if it.pr != nil {
		var p enumerators.Progress
		_, err := protect(func() (err error) {
			p, err = it.pr.Progress(ctx, it.cursor())
			return err
		})
		if err != nil {
			it.log.WarnContext(ctx, "runner: enumerator progress", slog.Any("error", err))
		} else {
			st.ProgressDone, st.ProgressTotal, st.ProgressUnit = p.Done, p.Total, p.Unit
		}
	}
	// Until the enumerator is built, the progress the last checkpoint saved
	// stands (a resumed event must not forget the total); an enumerator
	// that reports no progress counts items, out of an unknown total.
	noReport := it.built && it.pr == nil
	if st.ProgressDone < 0 || noReport {
		st.ProgressDone = st.ItemsProcessed
		if st.ProgressUnit == "" {
			st.ProgressUnit = "items"
		}
	}
	if noReport {
		st.ProgressTotal = -1
	}
	return st
}

func (it *iteration[A, T, C]) cursor() *C {
	if it.have {
		return &it.last
	}
	return it.start
}

// save checkpoints the state. A save refused as stale may be Redis having
// lost the state with its data: then the state is restored and saved.
func (it *iteration[A, T, C]) save(ctx context.Context, status cursor.Status) error {
	st := it.snapshot(ctx, status)
	err := it.x.cfg.Store.Save(ctx, it.e.Job.ID, it.e.Job.Lease, st)
	if errors.Is(err, cursor.ErrStaleRun) && it.restoreIfLost(ctx) {
		err = it.x.cfg.Store.Save(ctx, it.e.Job.ID, it.e.Job.Lease, st)
	}
	if err != nil {
		return err
	}
	it.e.progress.Store(progressOf(st))
	if it.have && it.e.Job.Recovered > 0 {
		// This run finished items since the job's last recovery, and saved
		// them: the crashes before were not the job's fault, so they must
		// not make it a poison pill (see recoveredRunCheckpoints).
		if err := it.x.cfg.Queue.Forgive(ctx, it.e.Job); err != nil {
			it.log.WarnContext(ctx, "runner: could not reset the job's recovery count", slog.Any("error", err))
		}
	}
	return nil
}

// restoreIfLost reports whether a save refused as stale can be tried again:
// Redis lost its data, as a heartbeat tells (it sets flagRestore on every
// run when it finds that), and the run's state has been restored.
func (it *iteration[A, T, C]) restoreIfLost(ctx context.Context) bool {
	if it.e.flags.Load()&flagRestore == 0 {
		it.x.beat(ctx)
	}
	if it.e.flags.Load()&flagRestore == 0 {
		return false // the state belongs to a newer run
	}
	return it.restore(ctx) == nil
}

// restore writes the run's state as of now if Redis lost it (the store is a
// cursor.Restorer), after a heartbeat found that Redis lost its data. The
// state the store had is restored from what the run holds: the counters it
// began with plus its own items, and the cursor after its last finished
// item, so the run goes on without repeating or skipping anything.
func (it *iteration[A, T, C]) restore(ctx context.Context) error {
	it.e.flags.And(^flagRestore)
	rs, ok := it.x.cfg.Store.(cursor.Restorer)
	if !ok {
		return errors.New("runner: the store cannot restore lost state")
	}
	if err := it.encodeLast(); err != nil {
		return err
	}
	st := it.snapshot(ctx, cursor.StatusRunning)
	restored, err := rs.Restore(ctx, it.e.Job.ID, it.e.Job.Lease, st)
	if err != nil {
		if !errors.Is(err, cursor.ErrStaleRun) {
			it.e.flags.Or(flagRestore) // try again at the next item
		}
		it.log.WarnContext(ctx, "runner: could not restore the job's state after Redis lost it", slog.Any("error", err))
		return err
	}
	if restored {
		it.log.WarnContext(ctx, "runner: restored the job's state, which Redis lost with its data, from this run; the run goes on",
			slog.String("cursor", string(st.Cursor)), slog.Int64("items_processed", st.ItemsProcessed))
	}
	return nil
}

// saveFinal saves the state at the end of a run, retrying through Redis
// outages (bounded after a hard stop).
func (it *iteration[A, T, C]) saveFinal(ctx context.Context, status cursor.Status) error {
	return it.x.persist(ctx, it.log, func(ctx context.Context) error { return it.save(ctx, status) })
}

func (it *iteration[A, T, C]) saveFailed(err error) result {
	if errors.Is(err, cursor.ErrStaleRun) {
		return result{kind: resLost}
	}
	return failed(fmt.Errorf("save state: %w", err), nil)
}

// alreadyCompleted acknowledges a job whose state says an earlier run
// completed it, OnComplete included: that run's acknowledgement was lost (the
// process died before its batched ack reached Redis), so the job came back.
// Nothing runs again, no hook included. Its final save (see finish) gives
// the state back the shorter TTL of a finished job.
func (it *iteration[A, T, C]) alreadyCompleted(ctx context.Context) result {
	it.log.InfoContext(ctx, "runner: an earlier run completed this job; acknowledging it without running it again",
		slog.Int64("items_processed", it.base.ItemsProcessed))
	return result{kind: resDone, finish: it.finish}
}

// end ends a run's work: it encodes the cursor after the last item and, for
// an enumeration that is exhausted, saves it and runs OnComplete. The final
// state is written by finish, once the executor has decided the outcome
// (server middleware may still turn a success into a failure).
func (it *iteration[A, T, C]) end(ctx context.Context, res result) result {
	res.finish = it.finish
	if res.kind == resLost {
		return res
	}
	if err := it.encodeLast(); err != nil {
		res = failed(err, nil)
		res.finish = it.finish
	}
	if res.kind != resDone {
		return res
	}
	// The cursor is at the end: save it before OnComplete, so a failure
	// there (or a crash) does not repeat any item.
	hookCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), it.x.cfg.FinishTimeout)
	defer cancel()
	if err := it.saveFinal(hookCtx, cursor.StatusRunning); err != nil {
		it.log.ErrorContext(ctx, "runner: could not save the final cursor", slog.Any("error", err))
		return result{kind: resLost, finish: it.finish}
	}
	if it.h.completer != nil {
		if trace, err := protect(func() error { return it.h.completer.OnComplete(ctx, it.args) }); err != nil {
			res = failOr(ctx, failed(fmt.Errorf("OnComplete: %w", err), trace))
			res.finish = it.finish
		}
	}
	return res
}

// lostProgress is what finish returns when the final state could not be
// saved: the run no longer owns the job.
var lostProgress = &jobtype.Progress{}

// finish writes the run's final state, with the status its outcome gives,
// and calls OnStop with reason. It returns the progress for events, or
// lostProgress if the state could not be saved (another run owns it, or
// Redis stayed unreachable through a hard stop).
func (it *iteration[A, T, C]) finish(ctx context.Context, a Action, reason iterable.StopReason) *jobtype.Progress {
	var status cursor.Status
	switch a {
	case Ack:
		status = cursor.StatusCompleted
	case Requeue, Schedule:
		it.base.TimesInterrupted++
		status = cursor.StatusInterrupted
	case Cancel:
		status = cursor.StatusCancelled
	case Retry:
		status = cursor.StatusFailed
	case Dead:
		status = cursor.StatusDead
	case Lost:
		it.onStop(ctx, iterable.Interrupted)
		return nil
	}
	if err := it.saveFinal(ctx, status); err != nil {
		it.onStop(ctx, iterable.Interrupted)
		if !errors.Is(err, cursor.ErrStaleRun) {
			// Only after a hard stop: the job stays in flight, to be
			// recovered.
			it.log.ErrorContext(ctx, "runner: could not save the final state", slog.Any("error", err))
		}
		return lostProgress
	}
	p := it.progress(ctx)
	it.onStop(ctx, reason)
	return p
}

func (it *iteration[A, T, C]) onStop(ctx context.Context, reason iterable.StopReason) {
	if !it.hooksRan || it.h.stopper == nil {
		return
	}
	if _, err := protect(func() error { return it.h.stopper.OnStop(ctx, it.args, reason) }); err != nil {
		it.log.ErrorContext(ctx, "runner: OnStop failed", slog.String("reason", string(reason)), slog.Any("error", err))
	}
}

// progress describes the run so far for events.
func (it *iteration[A, T, C]) progress(ctx context.Context) *jobtype.Progress {
	if !it.x.cfg.EventsOn {
		return nil
	}
	return progressOf(it.snapshot(ctx, ""))
}

func progressOf(st cursor.State) *jobtype.Progress { return st.Progress() }

func (it *iteration[A, T, C]) event(t jobtype.EventType, p *jobtype.Progress) jobtype.Event {
	ev := jobtype.NewEvent(t, it.e.Job, it.x.now())
	ev.Progress = p
	return ev
}
