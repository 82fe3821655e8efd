package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/exec"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/shutdown"
)

// fetchLoops is the number of fetch loops: two, so one fetch round trip is
// always in flight while the other's jobs are handed out.
const fetchLoops = 2

// maxFetch caps the jobs one fetch takes.
const maxFetch = 500

// ErrNotStarted is returned by Stop for a runner that was never started.
var ErrNotStarted = errors.New("runner: not started")

// Runner is a worker process: it fetches jobs from its queues and runs them,
// Concurrency at a time, following its shutdown controller.
type Runner struct {
	cfg      Config
	log      *slog.Logger
	sd       *shutdown.Controller
	ownSD    bool // sd was created by New: the runner finishes its shutdown
	cons     *consumer.Consumer
	exec     *exec.Executor
	store    cursor.Store
	eventsOn bool
	now      func() time.Time

	jobs  chan *exec.Execution // fetched, waiting for a worker
	acks  chan consumer.Done
	freed chan struct{} // a worker finished a job (or the backlog was released)

	mu           sync.Mutex
	known        map[string]*exec.Execution // fetched and not yet recorded as finished
	running      int                        // jobs workers are running
	waiting      int                        // jobs in r.jobs
	reserved     int                        // slots of fetches in flight
	suspect      bool                       // jobs may sit in the in-flight hash unheld: sweep before fetching
	sweeping     bool                       // a sweep for orphans is running: no fetch may start
	sweepPending bool                       // a sweep waits for the fetches in flight: no fetch may start
	aheadOff     bool                       // fetch no more than free workers (the backlog went stale)
	batches      []batchMark                // fetched batches still (partly) waiting, oldest first

	beatMu         sync.Mutex // one heartbeat at a time
	beatFailLogged time.Time  // when a failed heartbeat was last logged
	restoreDue     bool       // Redis lost this process's jobs and they are not all put back yet
	restores       atomic.Int64
	busyDirty      atomic.Bool   // the running jobs changed since the last heartbeat
	busyCh         chan struct{} // signalled when busyDirty goes up

	startOnce   sync.Once
	started     atomic.Bool
	workCtx     context.Context
	stopWork    context.CancelFunc
	fetchCtx    context.Context
	stopFetch   context.CancelFunc
	bgCtx       context.Context
	stopBG      context.CancelFunc
	workersDone chan struct{}
	ackerDone   chan struct{}
	bg          sync.WaitGroup
	stopOnce    sync.Once
	stopErr     error
}

// New returns a runner for cfg. It does not touch Redis until Start.
func New(cfg Config) (*Runner, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sd := cfg.Shutdown
	if sd == nil {
		var err error
		sd, err = shutdown.New(shutdown.Config{Timeout: cfg.ShutdownTimeout, Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("runner: %w", err)
		}
	}
	store := cfg.Store
	if store == nil {
		var err error
		store, err = cursor.NewRedisStore(cfg.Redis, cursor.RedisConfig{Namespace: cfg.Namespace})
		if err != nil {
			return nil, fmt.Errorf("runner: %w", err)
		}
	}
	cons, err := consumer.New(cfg.Redis, consumer.Config{
		Namespace: cfg.Namespace, Logger: cfg.Logger, ProcessID: cfg.ProcessID,
		Queues: consumerQueues(cfg.Queues), StrictPriority: cfg.StrictPriority,
		HeartbeatInterval: cfg.HeartbeatInterval, DeadAfter: cfg.DeadAfter, MaxRecoveries: cfg.MaxRecoveries,
		IdleWake:    cfg.IdleWake,
		DeadMaxJobs: cfg.DeadMaxJobs, DeadMaxAge: cfg.DeadMaxAge,
		PublishEvents: cfg.PublishEvents, OnEvent: cfg.OnEvent,
		Info: map[string]any{"concurrency": cfg.Concurrency, "kinds": cfg.Registry.Kinds()},
	})
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	r := &Runner{
		cfg:      cfg,
		log:      cfg.Logger,
		sd:       sd,
		ownSD:    cfg.Shutdown == nil,
		cons:     cons,
		store:    store,
		eventsOn: cfg.PublishEvents || cfg.OnEvent != nil,
		now:      time.Now,
		jobs:     make(chan *exec.Execution, cfg.Concurrency+cfg.FetchAhead),
		acks:     make(chan consumer.Done, 4*cfg.Concurrency),
		freed:    make(chan struct{}, fetchLoops),
		known:    make(map[string]*exec.Execution),
		busyCh:   make(chan struct{}, 1),
	}
	r.exec = exec.New(exec.Config{
		Store: store, Queue: cons, Completer: r, Shutdown: sd, Logger: cfg.Logger,
		Middleware: cfg.Middleware, CheckpointInterval: cfg.CheckpointInterval, MaxRuntime: cfg.MaxRuntime,
		MaxAttempts: cfg.MaxAttempts, Backoff: cfg.Backoff, FinishTimeout: cfg.FinishTimeout,
		EventsOn: r.eventsOn, Now: r.now, Beat: r.beat,
	})
	return r, nil
}

func consumerQueues(qs []queue.QueueWeight) []consumer.Queue {
	out := make([]consumer.Queue, len(qs))
	for i, q := range qs {
		out[i] = consumer.Queue(q)
	}
	return out
}

// Shutdown returns the controller the runner follows: call Quiet, Stop or
// HardStop on it, or let Run's signal handlers do so.
func (r *Runner) Shutdown() *shutdown.Controller { return r.sd }

// ProcessID returns the id the runner registers under in Redis.
func (r *Runner) ProcessID() string { return r.cons.ProcessID() }

// Start registers the process and starts fetching and working. It returns
// once the runner is running; ctx bounds only the start-up.
func (r *Runner) Start(ctx context.Context) error {
	err := errors.New("runner: already started")
	r.startOnce.Do(func() {
		if err = r.cons.Start(ctx); err != nil {
			err = fmt.Errorf("runner: start: %w", err)
			return
		}
		base := context.WithoutCancel(ctx)
		r.workCtx, r.stopWork = r.sd.WorkContext(base)
		r.fetchCtx, r.stopFetch = r.sd.FetchContext(base)
		r.bgCtx, r.stopBG = context.WithCancel(base)
		r.workersDone = make(chan struct{})
		r.ackerDone = make(chan struct{})
		r.started.Store(true)

		var workers sync.WaitGroup
		for range r.cfg.Concurrency {
			workers.Go(r.work)
		}
		go func() {
			workers.Wait()
			close(r.acks)
			close(r.workersDone)
		}()
		go r.ackLoop()
		var fetchers sync.WaitGroup
		for range fetchLoops {
			fetchers.Go(r.fetchLoop)
		}
		go func() {
			fetchers.Wait()
			close(r.jobs)
		}()
		if r.cfg.FetchAhead > 0 {
			r.bg.Go(r.backlogLoop)
		}
		r.bg.Go(r.heartbeatLoop)
		r.bg.Go(r.promoteLoop)
		r.bg.Go(r.cancelLoop)
		r.log.InfoContext(ctx, "runner: started", slog.String("process", r.ProcessID()),
			slog.Int("concurrency", r.cfg.Concurrency), slog.Any("kinds", r.cfg.Registry.Kinds()))
	})
	return err
}

// Quiet stops fetching: running iterable jobs are interrupted at their next
// item (checkpointed and re-enqueued) and plain jobs finish. The runner
// stays registered until Stop.
func (r *Runner) Quiet() { r.sd.Quiet() }

// Stop shuts the runner down: no more fetching, every iterable job is
// interrupted at its next item, plain jobs are waited for. When the
// controller's timeout passes or ctx ends first, it hard-stops: job contexts
// are cancelled and unfinished jobs go back to their queues (iterable ones
// resume from their last checkpoint). Stop returns once all is recorded.
//
// A runner that created its own controller (no Config.Shutdown) then ends
// its shutdown (shutdown.Controller.Finish): the timeout no longer runs, so
// no hard stop is logged after the runner has stopped. A controller given in
// Config.Shutdown is left as it is: its owner calls Finish once everything
// following it has stopped.
func (r *Runner) Stop(ctx context.Context) error {
	if !r.started.Load() {
		return ErrNotStarted
	}
	r.stopOnce.Do(func() { r.stopErr = r.stop(ctx) })
	return r.stopErr
}

func (r *Runner) stop(ctx context.Context) error {
	r.sd.Stop()
	select {
	case <-r.workersDone:
	case <-r.sd.Reached(shutdown.HardStop):
	case <-ctx.Done():
		r.sd.HardStop()
	}
	var errs []error
	select {
	case <-r.workersDone:
	case <-time.After(r.cfg.FinishTimeout + time.Second):
		stuck := r.busy()
		r.log.ErrorContext(ctx, "runner: jobs ignored the hard stop; leaving them to be recovered by another process",
			slog.Int("jobs", len(stuck)))
		errs = append(errs, fmt.Errorf("runner: %d jobs still running after the hard stop", len(stuck)))
	}
	select {
	case <-r.ackerDone:
	case <-time.After(r.cfg.FinishTimeout + time.Second):
		errs = append(errs, errors.New("runner: acknowledgements not written before exit"))
	}
	r.stopBG()
	r.bg.Wait()
	r.stopFetch()
	r.stopWork()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.FinishTimeout)
	defer cancel()
	if err := r.cons.Stop(stopCtx); err != nil {
		errs = append(errs, err)
	}
	if r.ownSD {
		// Nothing is left to hard-stop: a deadline passing now would only
		// log a false hard stop while other runners own the jobs.
		r.sd.Finish()
	}
	r.log.InfoContext(ctx, "runner: stopped", slog.String("process", r.ProcessID()))
	return errors.Join(errs...)
}

// Run starts the runner with signal handling (SIGTSTP quiet, SIGTERM/SIGINT
// stop, a second one hard stop, SIGTTIN goroutine dump) and blocks until it
// has stopped. Cancelling ctx stops it too. As with Stop, the runner's own
// controller's timeout ends when Run returns.
func (r *Runner) Run(ctx context.Context) error {
	unhandle := r.sd.HandleSignals(ctx)
	defer unhandle()
	if err := r.Start(ctx); err != nil {
		return err
	}
	select {
	case <-r.sd.Reached(shutdown.Stopping):
	case <-ctx.Done():
	}
	return r.Stop(context.Background())
}

// fetchLoop takes jobs for free workers, and up to FetchAhead more so the
// next jobs are at hand when workers free up, until the process quiets.
func (r *Runner) fetchLoop() {
	ctx := r.fetchCtx
	wait := 10 * time.Millisecond
	for ctx.Err() == nil {
		r.sweepOrphans()
		r.mu.Lock()
		n := r.cfg.Concurrency - r.running - r.waiting - r.reserved
		minBatch := 1
		if !r.aheadOff {
			n += r.cfg.FetchAhead
			// While jobs are at hand, wait until a worthwhile batch is
			// free rather than paying a round trip for one or two jobs;
			// an idle worker with nothing coming fetches at once.
			if r.waiting > 0 || r.reserved > 0 || r.running >= r.cfg.Concurrency {
				minBatch = max(1, (r.cfg.Concurrency+r.cfg.FetchAhead)/3)
			}
		}
		n = min(n, maxFetch)
		if n < minBatch {
			n = 0
		}
		if r.sweeping || r.sweepPending {
			n = 0
		}
		if n > 0 {
			r.reserved += n
		}
		r.mu.Unlock()
		if n <= 0 {
			select {
			case <-r.freed:
			case <-ctx.Done():
			}
			continue
		}
		// The fetch itself is not cancelled by quiet: a reply lost to a
		// cancellation would strand its jobs in flight.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		jobs, err := r.cons.Fetch(fctx, n)
		cancel()
		now := r.now()
		r.mu.Lock()
		r.reserved -= n
		if err != nil {
			r.suspect = true
		}
		if len(jobs) > 0 {
			r.batches = append(r.batches, batchMark{left: len(jobs), at: now})
			r.waiting += len(jobs)
			for _, j := range jobs {
				e := exec.NewExecution(j)
				r.known[j.ID] = e
				r.jobs <- e // never blocks: waiting ≤ Concurrency+FetchAhead
			}
		}
		r.mu.Unlock()
		// A sibling may have been woken by a notification while this fetch
		// held the capacity, and gone to wait for capacity: let it look.
		r.signalFreed()
		switch {
		case errors.Is(err, consumer.ErrReaped):
			// Not registered: presumed dead while alive (a stall), or
			// Redis lost its data. The heartbeat tells which, registers
			// again, and abandons the runs handed to others or puts back
			// the jobs Redis lost.
			r.log.WarnContext(ctx, "runner: this process is not registered in Redis; heartbeating to register again", slog.Any("error", err))
			r.beat(ctx)
		case err != nil:
			r.log.ErrorContext(ctx, "runner: fetch failed; retrying", slog.Any("error", err), slog.Duration("wait", wait))
			sleep(ctx, wait)
			wait = min(2*wait, 2*time.Second)
		case len(jobs) == 0:
			wait = 10 * time.Millisecond
			r.cons.Wait(ctx)
		default:
			wait = 10 * time.Millisecond
			if len(jobs) == n {
				r.cons.Wake() // a sibling fetcher waiting for work may find more
			}
		}
	}
}

// batchMark records when a batch of fetched jobs arrived and how many of it
// still wait for a worker.
type batchMark struct {
	left int
	at   time.Time
}

// took records that a worker took the oldest waiting job. r.mu is held.
func (r *Runner) took() {
	r.waiting--
	if len(r.batches) > 0 {
		if r.batches[0].left--; r.batches[0].left <= 0 {
			r.batches = r.batches[1:]
		}
	}
}

// backlogLoop hands fetched jobs back to their queues once the oldest has
// waited FetchAheadHold for a worker (every worker is busy with long jobs),
// so other processes can run them, and then fetches no more than free
// workers until a worker frees up.
func (r *Runner) backlogLoop() {
	ctx := r.fetchCtx
	hold := r.cfg.FetchAheadHold
	for {
		sleep(ctx, hold/2)
		if ctx.Err() != nil {
			return
		}
		var back []*exec.Execution
		r.mu.Lock()
		if r.waiting > 0 && len(r.batches) > 0 && r.now().Sub(r.batches[0].at) > hold {
			r.aheadOff = true
		drain:
			for {
				select {
				case e := <-r.jobs:
					back = append(back, e)
				default:
					break drain
				}
			}
			r.waiting -= len(back)
			r.batches = nil
		}
		r.mu.Unlock()
		if len(back) > 0 {
			r.releaseUnstarted(back...)
			r.signalFreed()
		}
	}
}

func (r *Runner) signalFreed() {
	select {
	case r.freed <- struct{}{}:
	default:
	}
}

// sweepOrphans returns to their queues the jobs in this process's in-flight
// hash that it does not hold, when there may be some: a fetch failed, a
// release failed, or a fetch reply was lost and the Redis client retried the
// fetch without telling (the heartbeat asks for a sweep every beat for
// that). It runs only while no fetch is in flight, and keeps fetches from
// starting until it is done.
func (r *Runner) sweepOrphans() {
	r.mu.Lock()
	if !r.suspect || r.sweeping {
		r.mu.Unlock()
		return
	}
	if r.reserved > 0 {
		// Hold new fetches back until those in flight return, so that a
		// busy runner's pipelined fetches cannot put the sweep off forever.
		r.sweepPending = true
		r.mu.Unlock()
		return
	}
	r.sweeping, r.sweepPending = true, false
	known := make(map[string]bool, len(r.known))
	for id := range r.known {
		known[id] = true
	}
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.bgCtx), 10*time.Second)
	defer cancel()
	n, err := r.cons.RecoverOrphans(ctx, known)
	switch {
	case err != nil:
		r.log.WarnContext(ctx, "runner: sweep for orphaned jobs failed; will try again", slog.Any("error", err))
	case n > 0:
		r.log.WarnContext(ctx, "runner: returned jobs this process held but was not running (a lost fetch reply or release) to their queues", slog.Int("jobs", n))
	}
	r.mu.Lock()
	r.sweeping = false
	if err == nil {
		r.suspect = false
	}
	r.mu.Unlock()
	r.signalFreed()
	r.signalFreed()
}

// work runs fetched jobs until the fetch loops end. A worker keeps one
// context for the jobs it runs, cancelled only to cancel the job it is
// running (cancel, lost lease) and then replaced, or by a hard stop.
func (r *Runner) work() {
	w := &workerCtx{parent: r.workCtx}
	defer w.close()
	for e := range r.jobs {
		ctx, cancel := w.get()
		h, ok := r.cfg.Registry.lookup(e.Job.Kind)
		now := r.now()
		r.mu.Lock()
		r.took()
		run := r.sd.State() == shutdown.Running
		if run {
			r.running++
			e.Begin(now, cancel, ok && h.Iterable())
		}
		r.mu.Unlock()
		if !run {
			r.releaseUnstarted(e)
			continue
		}
		r.busyChanged()
		if e.Job.Recovered > 0 {
			// Before any of its code runs: if this process dies now, the
			// job may be why, and its next recovery must count.
			if err := r.cons.MarkStarted(ctx, e.Job); err != nil {
				r.log.WarnContext(ctx, "runner: could not mark a recovered job started", slog.String("jid", e.Job.ID), slog.Any("error", err))
			}
		}
		r.exec.Execute(ctx, e, h)
		r.mu.Lock()
		r.running--
		r.aheadOff = false
		e.End()
		r.mu.Unlock()
		r.signalFreed()
	}
}

// workerCtx is a worker's context, replaced once cancelled.
type workerCtx struct {
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (w *workerCtx) get() (context.Context, context.CancelCauseFunc) {
	if w.ctx == nil || w.ctx.Err() != nil {
		w.close()
		w.ctx, w.cancel = context.WithCancelCause(w.parent)
	}
	return w.ctx, w.cancel
}

func (w *workerCtx) close() {
	if w.cancel != nil {
		w.cancel(nil)
	}
}

// releaseUnstarted hands fetched jobs that will not run here back to the
// head of their queues.
func (r *Runner) releaseUnstarted(es ...*exec.Execution) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.fetchCtx), r.cfg.FinishTimeout)
	defer cancel()
	jobs := make([]*jobtype.Job, len(es))
	for i, e := range es {
		jobs[i] = e.Job
	}
	if err := r.cons.Release(ctx, jobs); err != nil {
		// Forget them anyway: the next sweep for orphans hands them back
		// once Redis answers.
		r.log.ErrorContext(ctx, "runner: could not hand unstarted jobs back; the next sweep will", slog.Int("jobs", len(jobs)), slog.Any("error", err))
		r.mu.Lock()
		r.suspect = true
		r.mu.Unlock()
	}
	r.forget(es...)
}

func (r *Runner) forget(es ...*exec.Execution) {
	r.mu.Lock()
	for _, e := range es {
		// A newer run of the same job (fetched again after this one
		// requeued it) must stay known.
		if r.known[e.Job.ID] == e {
			delete(r.known, e.Job.ID)
		}
	}
	r.mu.Unlock()
	r.busyChanged()
}

// ackLoop acknowledges succeeded jobs in batches: whatever has piled up
// while the last batch was written goes in the next one.
func (r *Runner) ackLoop() {
	defer close(r.ackerDone)
	batch := make([]consumer.Done, 0, 256)
	for d := range r.acks {
		batch = append(batch[:0], d)
	drain:
		for len(batch) < 1000 {
			select {
			case d, ok := <-r.acks:
				if !ok {
					break drain
				}
				batch = append(batch, d)
			default:
				break drain
			}
		}
		r.record(r.workCtx, r.log, func(ctx context.Context) error {
			gen := r.restores.Load()
			stale, err := r.cons.Ack(ctx, batch)
			if err != nil {
				return err
			}
			if len(stale) > 0 {
				// Redis may have lost the jobs' entries with its data: a
				// heartbeat finds out, and puts them back.
				r.beat(ctx)
				if r.restores.Load() != gen {
					again := make([]consumer.Done, 0, len(stale))
					for _, d := range batch {
						if slices.Contains(stale, d.Job.ID) {
							again = append(again, d)
						}
					}
					if stale, err = r.cons.Ack(ctx, again); err != nil {
						return err
					}
				}
			}
			for _, id := range stale {
				r.log.WarnContext(ctx, "runner: acknowledgement not applied: the job is not in flight here with this lease (acknowledged already by a retried call, or handed to a newer run)", slog.String("jid", id))
			}
			return nil
		})
		r.mu.Lock()
		for _, d := range batch {
			if e := r.known[d.Job.ID]; e != nil && e.Job == d.Job {
				delete(r.known, d.Job.ID)
			}
		}
		r.mu.Unlock()
		r.busyChanged()
	}
}

func (r *Runner) busy() []jobtype.BusyJob {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]jobtype.BusyJob, 0, len(r.known))
	for _, e := range r.known {
		if e.Started.IsZero() {
			continue
		}
		out = append(out, jobtype.BusyJob{
			ID: e.Job.ID, Kind: e.Job.Kind, Queue: e.Job.Queue, Run: e.Job.Lease,
			StartedAt: e.Started, Iterable: e.Iterable(), Progress: e.Progress(),
		})
	}
	return out
}

// busyBeatGap is the shortest time between two heartbeats that the running
// jobs changing brings forward: the jobs a process runs, as Processes shows
// them, are at most this much behind (plus a round trip).
const busyBeatGap = 250 * time.Millisecond

// busyChanged records that a job started or finished, for the heartbeat
// loop to show soon. Per job it costs an atomic load while a beat is due
// anyway.
func (r *Runner) busyChanged() {
	if !r.busyDirty.Load() && r.busyDirty.CompareAndSwap(false, true) {
		select {
		case r.busyCh <- struct{}{}:
		default:
		}
	}
}

// heartbeatLoop says the process is alive and reaps dead ones: a beat every
// HeartbeatInterval (and sooner after a failed one, so that a process cut
// off from Redis for a moment is seen alive again as soon as Redis answers),
// one more when the running jobs change (at most one per busyBeatGap), and a
// reap twice per interval, plus one when a reap asks to confirm a process
// dead.
func (r *Runner) heartbeatLoop() {
	ctx := r.bgCtx
	hb := r.cons.Config().HeartbeatInterval
	beatT := time.NewTimer(jitter(hb, 0.1))
	defer beatT.Stop()
	reapT := time.NewTimer(jitter(hb/2, 0.1))
	defer reapT.Stop()
	var extraT *time.Timer
	var extraC <-chan time.Time // armed while a beat for changed jobs waits
	defer func() {
		if extraT != nil {
			extraT.Stop()
		}
	}()
	lastBeat := r.now()
	var retry time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-beatT.C:
			lastBeat = r.now()
			if !r.beat(ctx) {
				retry = min(max(2*retry, 50*time.Millisecond), hb/4)
				beatT.Reset(retry)
				continue
			}
			retry = 0
			beatT.Reset(jitter(hb, 0.1))
			// The Redis client retries a command whose reply was lost, so a
			// fetch may have run twice with one reply seen: sweep every beat.
			r.mu.Lock()
			r.suspect = true
			r.mu.Unlock()
			r.sweepOrphans()
		case <-r.busyCh:
			if extraC != nil {
				continue
			}
			wait := max(lastBeat.Add(busyBeatGap).Sub(r.now()), 0)
			if extraT == nil {
				extraT = time.NewTimer(wait)
			} else {
				extraT.Reset(wait)
			}
			extraC = extraT.C
		case <-extraC:
			extraC = nil
			lastBeat = r.now()
			r.beat(ctx)
		case <-reapT.C:
			if _, err := r.cons.Reap(ctx); err != nil && ctx.Err() == nil {
				r.log.ErrorContext(ctx, "runner: reap failed", slog.Any("error", err))
			}
			next := jitter(hb/2, 0.1)
			if d := r.cons.NextReap(); d > 0 && d+5*time.Millisecond < next {
				next = d + 5*time.Millisecond
			}
			reapT.Reset(next)
		}
	}
}

// beat heartbeats. If the process had been presumed dead and reaped, it
// abandons its runs (their jobs were handed to others); if Redis lost its
// data, it puts back the jobs the process holds (see restore). Either way
// the process is registered again. It reports whether the heartbeat reached
// Redis.
func (r *Runner) beat(ctx context.Context) bool {
	r.beatMu.Lock()
	defer r.beatMu.Unlock()
	r.busyDirty.Store(false) // changes from now on bring another beat
	status, err := r.cons.Heartbeat(ctx, r.busy())
	if err != nil {
		// Failed beats are retried quickly: log one per interval.
		if now := r.now(); ctx.Err() == nil && now.Sub(r.beatFailLogged) >= r.cons.Config().HeartbeatInterval {
			r.beatFailLogged = now
			r.log.ErrorContext(ctx, "runner: heartbeat failed", slog.Any("error", err))
		}
		return false
	}
	r.beatFailLogged = time.Time{}
	switch status {
	case consumer.BeatReaped:
		r.restoreDue = false // its jobs are others' now: nothing to put back
		r.leaseLost(ctx)
	case consumer.BeatDataLost:
		r.restoreDue = true
	}
	if r.restoreDue {
		r.restore(ctx, status == consumer.BeatDataLost)
	}
	return true
}

// restore puts back the in-flight entries of the jobs this process holds,
// after Redis lost them with its data, and has every run check its state
// at its next item (and restore it if it is gone too). Until it succeeds, it
// is tried again at every beat. r.beatMu is held.
func (r *Runner) restore(ctx context.Context, first bool) {
	r.mu.Lock()
	held := make([]consumer.HeldJob, 0, len(r.known))
	for _, e := range r.known {
		held = append(held, consumer.HeldJob{Job: e.Job, Started: !e.Started.IsZero()})
	}
	r.mu.Unlock()
	if first {
		r.log.ErrorContext(ctx, "runner: Redis lost this process's registration and the records of the jobs it holds "+
			"(restarted without persistence, failed over to a replica without them, or flushed); registered again, "+
			"putting back the jobs it holds; jobs that were only in Redis (queued, scheduled) are gone",
			slog.String("process", r.ProcessID()), slog.Int("jobs", len(held)))
	}
	n, err := r.cons.Restore(ctx, held)
	if err != nil {
		r.log.ErrorContext(ctx, "runner: could not put back the jobs this process holds; trying again at the next heartbeat", slog.Any("error", err))
		return
	}
	r.restoreDue = false
	r.mu.Lock()
	for _, e := range r.known {
		e.Restore()
	}
	r.mu.Unlock()
	r.restores.Add(1)
	r.log.WarnContext(ctx, "runner: put back the jobs this process holds; they go on running here",
		slog.Int("jobs", len(held)), slog.Int("restored", n))
}

// leaseLost stops every run: the process was presumed dead and its jobs
// handed to others.
func (r *Runner) leaseLost(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log.ErrorContext(ctx, "runner: this process was presumed dead and its jobs handed to others; abandoning its runs",
		slog.Int("jobs", len(r.known)))
	for _, e := range r.known {
		e.Abandon()
	}
}

// promoteLoop moves due scheduled and retry jobs to their queues.
func (r *Runner) promoteLoop() {
	ctx := r.bgCtx
	for ctx.Err() == nil && r.sd.State() < shutdown.Stopping {
		const limit = 500
		moved, next, err := r.cons.Promote(ctx, limit)
		if err != nil {
			if ctx.Err() == nil {
				r.log.ErrorContext(ctx, "runner: promoting due jobs failed", slog.Any("error", err))
			}
			sleep(ctx, r.cfg.PollInterval)
			continue
		}
		if moved == limit {
			continue
		}
		wait := jitter(r.cfg.PollInterval, 0.25)
		if !next.IsZero() {
			if d := time.Until(next); d < wait {
				wait = max(d, time.Millisecond)
			}
		}
		sleep(ctx, wait)
	}
}

// cancelLoop reads the cancel flags of running jobs.
func (r *Runner) cancelLoop() {
	ctx := r.bgCtx
	for {
		sleep(ctx, r.cfg.CancelCheckInterval)
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		var running []*exec.Execution
		for _, e := range r.known {
			if !e.Started.IsZero() {
				running = append(running, e)
			}
		}
		r.mu.Unlock()
		if len(running) == 0 {
			continue
		}
		ids := make([]string, len(running))
		for i, e := range running {
			ids[i] = e.Job.ID
		}
		flags, err := r.cons.CancelRequested(ctx, ids)
		if err != nil {
			r.log.ErrorContext(ctx, "runner: reading cancel flags failed", slog.Any("error", err))
			continue
		}
		r.mu.Lock()
		for i, cancelled := range flags {
			e := running[i]
			// Only a run still current: its worker may have moved on, and
			// e.cancel is then the next job's.
			if !cancelled || r.known[e.Job.ID] != e {
				continue
			}
			e.Cancel()
		}
		r.mu.Unlock()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// jitter returns d ± frac·d.
func jitter(d time.Duration, frac float64) time.Duration {
	return time.Duration(float64(d) * (1 - frac + 2*frac*rand.Float64()))
}
