package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/completer"
	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/exec"
	"github.com/iterjob/iterjob/internal/maintenance"
	"github.com/iterjob/iterjob/internal/producer"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/shutdown"
)

// ErrNotStarted is returned by Stop for a runner that was never started.
var ErrNotStarted = errors.New("runner: not started")

// Runner is a worker process: it fetches jobs from its queues and runs them,
// Concurrency at a time, following its shutdown controller. It composes small
// services: a producer (fetching and the worker pool), the executor (one
// run), a completer (recording outcomes), a heartbeater, a promoter and a
// cancel poller.
type Runner struct {
	cfg      Config
	log      *slog.Logger
	sd       *shutdown.Controller
	ownSD    bool // sd was created by New: the runner finishes its shutdown
	cons     *consumer.Consumer
	store    cursor.Store
	exec     *exec.Executor
	prod     *producer.Producer
	comp     *completer.Completer
	beats    *maintenance.Heartbeater
	promoter *maintenance.Promoter
	cancels  *maintenance.CancelPoller
	periodic *periodicService
	now      func() time.Time

	startOnce sync.Once
	started   atomic.Bool
	stopOnce  sync.Once
	stopErr   error
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
		PublishEvents: cfg.PublishEvents, OnEvent: cfg.OnEvent, EventsMax: cfg.EventsMax,
		Forget: store.Delete,
		Info:   map[string]any{"concurrency": cfg.Concurrency, "kinds": cfg.Registry.Kinds()},
	})
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	r := &Runner{cfg: cfg, log: cfg.Logger, sd: sd, ownSD: cfg.Shutdown == nil, cons: cons, store: store, now: time.Now}
	var prod *producer.Producer // set below: the services refer to each other
	r.beats = maintenance.NewHeartbeater(cons, jobsOf{&prod}, cfg.Logger, r.now)
	r.comp = completer.New(completer.Config{
		Consumer: cons, Liveness: r.beats, Shutdown: sd, Forget: func(es ...*exec.Execution) { prod.Forget(es...) },
		Buffer: 4 * cfg.Concurrency, FinishTimeout: cfg.FinishTimeout, Logger: cfg.Logger,
	})
	r.exec = exec.New(exec.Config{
		Store: store, Queue: cons, Completer: r.comp, Shutdown: sd, Logger: cfg.Logger,
		Middleware: cfg.Middleware, CheckpointInterval: cfg.CheckpointInterval, MaxRuntime: cfg.MaxRuntime,
		MaxAttempts: cfg.MaxAttempts, Backoff: cfg.Backoff, FinishTimeout: cfg.FinishTimeout,
		EventsOn: cfg.PublishEvents || cfg.OnEvent != nil, Now: r.now, Beat: r.beats.Beat,
	})
	prod = producer.New(producer.Config{
		Consumer: cons, Executor: r.exec, Lookup: cfg.Registry.lookup, Shutdown: sd,
		Concurrency: cfg.Concurrency, FetchAhead: cfg.FetchAhead, FetchAheadHold: cfg.FetchAheadHold,
		FinishTimeout: cfg.FinishTimeout, Logger: cfg.Logger, Now: r.now,
		Changed: r.beats.Changed, Unregistered: func(ctx context.Context) { r.beats.Beat(ctx) },
	})
	r.prod = prod
	r.promoter = maintenance.NewPromoter(cons, sd, cfg.PollInterval, cfg.Logger)
	r.cancels = maintenance.NewCancelPoller(cons, prod, cfg.CancelCheckInterval, cfg.Logger)
	if r.periodic, err = newPeriodicService(cfg, sd, r.now); err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	return r, nil
}

// jobsOf lets the heartbeater reach the producer, made after it.
type jobsOf struct{ p **producer.Producer }

func (j jobsOf) Busy() []jobtype.BusyJob       { return (*j.p).Busy() }
func (j jobsOf) Held() []consumer.HeldJob      { return (*j.p).Held() }
func (j jobsOf) Each(fn func(*exec.Execution)) { (*j.p).Each(fn) }
func (j jobsOf) Sweep()                        { (*j.p).Sweep() }

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
		if err = r.periodic.add(ctx); err != nil {
			err = fmt.Errorf("runner: start: %w", err)
			return
		}
		if err = r.cons.Start(ctx); err != nil {
			err = fmt.Errorf("runner: start: %w", err)
			return
		}
		r.started.Store(true)
		r.comp.Start()
		r.prod.Start(context.WithoutCancel(ctx))
		r.beats.Start()
		r.promoter.Start()
		r.cancels.Start()
		r.periodic.start()
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
	case <-r.prod.WorkersDone():
	case <-r.sd.Reached(shutdown.HardStop):
	case <-ctx.Done():
		r.sd.HardStop()
	}
	var errs []error
	select {
	case <-r.prod.WorkersDone():
	case <-time.After(r.cfg.FinishTimeout + time.Second):
		stuck := r.prod.Busy()
		r.log.ErrorContext(ctx, "runner: jobs ignored the hard stop; leaving them to be recovered by another process",
			slog.Int("jobs", len(stuck)))
		errs = append(errs, fmt.Errorf("runner: %d jobs still running after the hard stop", len(stuck)))
	}
	if !r.comp.Close(r.cfg.FinishTimeout + time.Second) {
		errs = append(errs, errors.New("runner: acknowledgements not written before exit"))
	}
	r.periodic.stop()
	r.cancels.Stop()
	r.promoter.Stop()
	r.beats.Stop()
	r.prod.Stop()
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
