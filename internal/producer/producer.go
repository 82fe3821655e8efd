// Package producer keeps a runner's workers fed: it fetches jobs for free
// workers (and a few more, fetched ahead, so short jobs do not wait a round
// trip for each other), hands fetched jobs back when workers stay busy,
// sweeps jobs left in the process's in-flight hash after a lost reply, and
// runs the worker pool that hands each job to the executor. It owns the set
// of executions the process holds; the other services ask it about them.
package producer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/exec"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/shutdown"
)

// fetchLoops is the number of fetch loops: two, so one fetch round trip is
// always in flight while the other's jobs are handed out.
const fetchLoops = 2

// maxFetch caps the jobs one fetch takes.
const maxFetch = 500

// Config configures a Producer. Every field is required.
type Config struct {
	Consumer *consumer.Consumer
	Executor *exec.Executor
	// Lookup returns the handler of a kind (false: none registered).
	Lookup      func(kind string) (exec.Handler, bool)
	Shutdown    *shutdown.Controller
	Concurrency int
	// FetchAhead is how many jobs beyond the free workers may be held
	// fetched (0: none); FetchAheadHold how long one may wait for a worker
	// before the waiting jobs go back to their queues.
	FetchAhead     int
	FetchAheadHold time.Duration
	FinishTimeout  time.Duration
	Logger         *slog.Logger
	Now            func() time.Time
	// Changed is called when a job starts or finishes (the heartbeat shows
	// the running jobs). It must be quick.
	Changed func()
	// Unregistered is called when a fetch finds the process unregistered
	// (presumed dead, or Redis lost its data): it heartbeats, which tells
	// which, registers again and deals with the jobs held.
	Unregistered func(ctx context.Context)
}

// Producer fetches jobs and runs them on a pool of workers.
type Producer struct {
	cfg  Config
	cons *consumer.Consumer
	log  *slog.Logger

	jobs  chan *exec.Execution // fetched, waiting for a worker
	freed chan struct{}        // a worker finished a job (or the backlog was released)

	mu           sync.Mutex
	known        map[string]*exec.Execution // fetched and not yet recorded as finished
	running      int                        // jobs workers are running
	waiting      int                        // jobs in p.jobs
	reserved     int                        // slots of fetches in flight
	suspect      bool                       // jobs may sit in the in-flight hash unheld: sweep before fetching
	sweeping     bool                       // a sweep for orphans is running: no fetch may start
	sweepPending bool                       // a sweep waits for the fetches in flight: no fetch may start
	aheadOff     bool                       // fetch no more than free workers (the backlog went stale)
	batches      []batchMark                // fetched batches still (partly) waiting, oldest first

	workCtx, fetchCtx, bgCtx context.Context
	stopWork, stopFetch      context.CancelFunc
	stopBG                   context.CancelFunc
	workersDone              chan struct{}
	bg                       sync.WaitGroup
}

// New returns a producer for cfg; Start starts it.
func New(cfg Config) *Producer {
	return &Producer{
		cfg:   cfg,
		cons:  cfg.Consumer,
		log:   cfg.Logger,
		jobs:  make(chan *exec.Execution, cfg.Concurrency+cfg.FetchAhead),
		freed: make(chan struct{}, fetchLoops),
		known: make(map[string]*exec.Execution),
	}
}

// Start starts fetching (until the process quiets) and working (until the
// fetched jobs are done, or a hard stop). base must not end before Stop.
func (p *Producer) Start(base context.Context) {
	p.workCtx, p.stopWork = p.cfg.Shutdown.WorkContext(base)
	p.fetchCtx, p.stopFetch = p.cfg.Shutdown.FetchContext(base)
	p.bgCtx, p.stopBG = context.WithCancel(base)
	p.workersDone = make(chan struct{})
	var workers sync.WaitGroup
	for range p.cfg.Concurrency {
		workers.Go(p.work)
	}
	go func() {
		workers.Wait()
		close(p.workersDone)
	}()
	var fetchers sync.WaitGroup
	for range fetchLoops {
		fetchers.Go(p.fetchLoop)
	}
	go func() {
		fetchers.Wait()
		close(p.jobs)
	}()
	if p.cfg.FetchAhead > 0 {
		p.bg.Go(p.backlogLoop)
	}
}

// WorkersDone is closed once the workers have run every job the producer
// fetched and stopped (after the process quieted and the fetch loops ended).
func (p *Producer) WorkersDone() <-chan struct{} { return p.workersDone }

// WorkContext is the workers' context: cancelled at a hard stop.
func (p *Producer) WorkContext() context.Context { return p.workCtx }

// Stop stops the producer's background work and releases its contexts.
// Call it after WorkersDone (or once the workers are given up on).
func (p *Producer) Stop() {
	p.stopBG()
	p.bg.Wait()
	p.stopFetch()
	p.stopWork()
}

// fetchLoop takes jobs for free workers, and up to FetchAhead more so the
// next jobs are at hand when workers free up, until the process quiets.
func (p *Producer) fetchLoop() {
	ctx := p.fetchCtx
	wait := 10 * time.Millisecond
	for ctx.Err() == nil {
		p.sweepOrphans()
		p.mu.Lock()
		n := p.cfg.Concurrency - p.running - p.waiting - p.reserved
		minBatch := 1
		if !p.aheadOff {
			n += p.cfg.FetchAhead
			// While jobs are at hand, wait until a worthwhile batch is
			// free rather than paying a round trip for one or two jobs;
			// an idle worker with nothing coming fetches at once.
			if p.waiting > 0 || p.reserved > 0 || p.running >= p.cfg.Concurrency {
				minBatch = max(1, (p.cfg.Concurrency+p.cfg.FetchAhead)/3)
			}
		}
		n = min(n, maxFetch)
		if n < minBatch || p.sweeping || p.sweepPending {
			n = 0
		}
		if n > 0 {
			p.reserved += n
		}
		p.mu.Unlock()
		if n <= 0 {
			select {
			case <-p.freed:
			case <-ctx.Done():
			}
			continue
		}
		// The fetch itself is not cancelled by quiet: a reply lost to a
		// cancellation would strand its jobs in flight.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		jobs, err := p.cons.Fetch(fctx, n)
		cancel()
		now := p.cfg.Now()
		p.mu.Lock()
		p.reserved -= n
		if err != nil {
			p.suspect = true
		}
		if len(jobs) > 0 {
			p.batches = append(p.batches, batchMark{left: len(jobs), at: now})
			p.waiting += len(jobs)
			for _, j := range jobs {
				e := exec.NewExecution(j)
				p.known[j.ID] = e
				p.jobs <- e // never blocks: waiting ≤ Concurrency+FetchAhead
			}
		}
		p.mu.Unlock()
		// A sibling may have been woken by a notification while this fetch
		// held the capacity, and gone to wait for capacity: let it look.
		p.signalFreed()
		switch {
		case errors.Is(err, consumer.ErrReaped):
			// Not registered: presumed dead while alive (a stall), or
			// Redis lost its data. The heartbeat tells which, registers
			// again, and abandons the runs handed to others or puts back
			// the jobs Redis lost.
			p.log.WarnContext(ctx, "runner: this process is not registered in Redis; heartbeating to register again", slog.Any("error", err))
			p.cfg.Unregistered(ctx)
		case err != nil:
			p.log.ErrorContext(ctx, "runner: fetch failed; retrying", slog.Any("error", err), slog.Duration("wait", wait))
			sleep(ctx, wait)
			wait = min(2*wait, 2*time.Second)
		case len(jobs) == 0:
			wait = 10 * time.Millisecond
			p.cons.Wait(ctx)
		default:
			wait = 10 * time.Millisecond
			if len(jobs) == n {
				p.cons.Wake() // a sibling fetcher waiting for work may find more
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

// took records that a worker took the oldest waiting job. p.mu is held.
func (p *Producer) took() {
	p.waiting--
	if len(p.batches) > 0 {
		if p.batches[0].left--; p.batches[0].left <= 0 {
			p.batches = p.batches[1:]
		}
	}
}

// backlogLoop hands fetched jobs back to their queues once the oldest has
// waited FetchAheadHold for a worker (every worker is busy with long jobs),
// so other processes can run them, and then fetches no more than free
// workers until a worker frees up.
func (p *Producer) backlogLoop() {
	ctx := p.fetchCtx
	hold := p.cfg.FetchAheadHold
	for {
		sleep(ctx, hold/2)
		if ctx.Err() != nil {
			return
		}
		var back []*exec.Execution
		p.mu.Lock()
		if p.waiting > 0 && len(p.batches) > 0 && p.cfg.Now().Sub(p.batches[0].at) > hold {
			p.aheadOff = true
		drain:
			for {
				select {
				case e := <-p.jobs:
					back = append(back, e)
				default:
					break drain
				}
			}
			p.waiting -= len(back)
			p.batches = nil
		}
		p.mu.Unlock()
		if len(back) > 0 {
			p.releaseUnstarted(back...)
			p.signalFreed()
		}
	}
}

func (p *Producer) signalFreed() {
	select {
	case p.freed <- struct{}{}:
	default:
	}
}

// Sweep asks for a sweep for orphans and runs it if no fetch is in flight
// (else the next fetch loop runs it first). The heartbeat asks every beat:
// the Redis client retries a command whose reply was lost, so a fetch may
// have run twice with one reply seen.
func (p *Producer) Sweep() {
	p.mu.Lock()
	p.suspect = true
	p.mu.Unlock()
	p.sweepOrphans()
}

// sweepOrphans returns to their queues the jobs in this process's in-flight
// hash that it does not hold, when there may be some: a fetch failed, a
// release failed, or a fetch reply was lost. It runs only while no fetch is
// in flight, and keeps fetches from starting until it is done.
func (p *Producer) sweepOrphans() {
	p.mu.Lock()
	if !p.suspect || p.sweeping {
		p.mu.Unlock()
		return
	}
	if p.reserved > 0 {
		// Hold new fetches back until those in flight return, so that a
		// busy runner's pipelined fetches cannot put the sweep off forever.
		p.sweepPending = true
		p.mu.Unlock()
		return
	}
	p.sweeping, p.sweepPending = true, false
	known := make(map[string]bool, len(p.known))
	for id := range p.known {
		known[id] = true
	}
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.bgCtx), 10*time.Second)
	defer cancel()
	n, err := p.cons.RecoverOrphans(ctx, known)
	switch {
	case err != nil:
		p.log.WarnContext(ctx, "runner: sweep for orphaned jobs failed; will try again", slog.Any("error", err))
	case n > 0:
		p.log.WarnContext(ctx, "runner: returned jobs this process held but was not running (a lost fetch reply or release) to their queues", slog.Int("jobs", n))
	}
	p.mu.Lock()
	p.sweeping = false
	if err == nil {
		p.suspect = false
	}
	p.mu.Unlock()
	p.signalFreed()
	p.signalFreed()
}

// work runs fetched jobs until the fetch loops end. A worker keeps one
// context for the jobs it runs, cancelled only to cancel the job it is
// running (cancel, lost lease) and then replaced, or by a hard stop.
func (p *Producer) work() {
	w := &workerCtx{parent: p.workCtx}
	defer w.close()
	for e := range p.jobs {
		ctx, cancel := w.get()
		h, ok := p.cfg.Lookup(e.Job.Kind)
		now := p.cfg.Now()
		p.mu.Lock()
		p.took()
		run := p.cfg.Shutdown.State() == shutdown.Running
		if run {
			p.running++
			e.Begin(now, cancel, ok && h.Iterable())
		}
		p.mu.Unlock()
		if !run {
			p.releaseUnstarted(e)
			continue
		}
		p.cfg.Changed()
		if e.Job.Recovered > 0 {
			// Before any of its code runs: if this process dies now, the
			// job may be why, and its next recovery must count.
			if err := p.cons.MarkStarted(ctx, e.Job); err != nil {
				p.log.WarnContext(ctx, "runner: could not mark a recovered job started", slog.String("jid", e.Job.ID), slog.Any("error", err))
			}
		}
		if !ok {
			h = nil
		}
		p.cfg.Executor.Execute(ctx, e, h)
		p.mu.Lock()
		p.running--
		p.aheadOff = false
		e.End()
		p.mu.Unlock()
		p.signalFreed()
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
func (p *Producer) releaseUnstarted(es ...*exec.Execution) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.fetchCtx), p.cfg.FinishTimeout)
	defer cancel()
	jobs := make([]*jobtype.Job, len(es))
	for i, e := range es {
		jobs[i] = e.Job
	}
	if err := p.cons.Release(ctx, jobs); err != nil {
		// Forget them anyway: the next sweep for orphans hands them back
		// once Redis answers.
		p.log.ErrorContext(ctx, "runner: could not hand unstarted jobs back; the next sweep will", slog.Int("jobs", len(jobs)), slog.Any("error", err))
		p.mu.Lock()
		p.suspect = true
		p.mu.Unlock()
	}
	p.Forget(es...)
}

// Forget drops executions whose end is recorded. A newer run of the same
// job (fetched again after one of them requeued it) stays known.
func (p *Producer) Forget(es ...*exec.Execution) {
	p.mu.Lock()
	for _, e := range es {
		if p.known[e.Job.ID] == e {
			delete(p.known, e.Job.ID)
		}
	}
	p.mu.Unlock()
	p.cfg.Changed()
}

// Busy lists the jobs running now, for the heartbeat.
func (p *Producer) Busy() []jobtype.BusyJob {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]jobtype.BusyJob, 0, len(p.known))
	for _, e := range p.known {
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

// Held lists every job the process holds (fetched, waiting or running).
func (p *Producer) Held() []consumer.HeldJob {
	p.mu.Lock()
	defer p.mu.Unlock()
	held := make([]consumer.HeldJob, 0, len(p.known))
	for _, e := range p.known {
		held = append(held, consumer.HeldJob{Job: e.Job, Started: !e.Started.IsZero()})
	}
	return held
}

// Each calls fn for every execution the process holds, under the
// producer's lock (fn must be quick and not call the producer).
func (p *Producer) Each(fn func(*exec.Execution)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.known {
		fn(e)
	}
}

// Running returns the executions workers run now.
func (p *Producer) Running() []*exec.Execution {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*exec.Execution
	for _, e := range p.known {
		if !e.Started.IsZero() {
			out = append(out, e)
		}
	}
	return out
}

// Current calls fn on e under the producer's lock if e is still the
// process's run of its job (its worker may have moved on).
func (p *Producer) Current(e *exec.Execution, fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.known[e.Job.ID] == e {
		fn()
	}
}

// Known returns the execution holding job id, if any.
func (p *Producer) Known(id string) *exec.Execution {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.known[id]
}

// RunningCount returns how many jobs workers run now.
func (p *Producer) RunningCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
