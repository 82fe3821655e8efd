package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/shutdown"
)

// Defaults for Config.
const (
	// ConcurrencyDefault is the number of jobs a runner works on at once.
	ConcurrencyDefault = 10
	// CheckpointIntervalDefault is the longest an iterable job runs between
	// two saves of its cursor.
	CheckpointIntervalDefault = 5 * time.Second
	// MaxAttemptsDefault is how many attempts a job gets before it dies.
	MaxAttemptsDefault = 25
	// PollIntervalDefault is how often, on average, the scheduled and retry
	// sets are checked for due jobs (each wait is jittered by ±25%, and cut
	// short when the earliest job is due sooner).
	PollIntervalDefault = time.Second
	// CancelCheckIntervalDefault is how often running jobs' cancel flags are
	// read (one round trip per runner, whatever the number of jobs).
	CancelCheckIntervalDefault = time.Second
	// FetchAheadFactorDefault times Concurrency is the default FetchAhead.
	FetchAheadFactorDefault = 8
	// FetchAheadHoldDefault is how long a fetched job may wait for a worker
	// before the jobs waiting go back to their queue.
	FetchAheadHoldDefault = 100 * time.Millisecond
	// HeartbeatIntervalDefault is how often a runner says it is alive (and
	// reaps dead processes, twice per interval). A process that died (its
	// connections closed) is found dead about two intervals after its last
	// beat.
	HeartbeatIntervalDefault = consumer.HeartbeatIntervalDefault
	// DeadAfterDefault is how long after its last heartbeat a process that
	// still holds its Redis connections (hung, stopped, partitioned) is
	// presumed dead and its in-flight jobs are handed to live ones.
	DeadAfterDefault = consumer.DeadAfterDefault
	// MaxRecoveriesDefault is how many times a job may be taken back from a
	// worker that died running it before it is treated as a poison pill and
	// sent to the dead set.
	MaxRecoveriesDefault = consumer.MaxRecoveriesDefault
	// IdleWakeDefault is the longest an idle runner waits for a work
	// notification before it looks at its queues anyway (a safety net for
	// notifications lost while the pub/sub connection was down).
	IdleWakeDefault = consumer.IdleWakeDefault
	// FinishTimeoutDefault bounds the Redis writes that end a run after a
	// hard stop cancelled its context.
	FinishTimeoutDefault = 5 * time.Second
)

// Config configures a Runner. Only Redis and Registry are required.
type Config struct {
	// Redis is the client the runner works through; it is never closed by
	// the runner. Required.
	Redis redis.UniversalClient
	// Registry maps job kinds to the code that runs them. Required.
	Registry *Registry
	// Namespace must match the queue clients'. Default
	// queue.NamespaceDefault.
	Namespace string
	// Logger receives the runner's logs. Default slog.Default().
	Logger *slog.Logger
	// Concurrency is the number of jobs run at once. Default
	// ConcurrencyDefault.
	Concurrency int
	// Queues to work, with weights. Default [{default 1}]. See
	// queue.ParseQueues for the "urgent:10,default:1" form.
	Queues []queue.QueueWeight
	// FetchAhead is how many jobs beyond the free workers the runner may
	// hold fetched, so that short jobs do not wait a Redis round trip for
	// each other. Zero means FetchAheadFactorDefault × Concurrency; negative
	// means none. Held jobs are in this process's in-flight hash
	// (crash-safe). When the oldest has waited FetchAheadHold for a worker
	// (all are busy with long jobs), the waiting jobs go back to the head of
	// their queues for other processes, and the runner fetches no more than
	// free workers until a worker frees up.
	FetchAhead int
	// FetchAheadHold: see FetchAheadHoldDefault. Zero means the default.
	FetchAheadHold time.Duration
	// StrictPriority looks at queues in order of weight on every fetch
	// instead of in weighted random order.
	StrictPriority bool
	// CheckpointInterval is the longest an iterable job runs between saves
	// of its state. Default CheckpointIntervalDefault. The state is also
	// saved whenever a run ends, never per item.
	CheckpointInterval time.Duration
	// MaxAttempts is the default cap on attempts for kinds and jobs that do
	// not set one. Default MaxAttemptsDefault.
	MaxAttempts int
	// Backoff returns the wait before retry after the given failed attempt
	// (1 = the first). Default DefaultBackoff.
	Backoff func(attempt int) time.Duration
	// MaxRuntime is the longest one run of an iterable job goes before it
	// checkpoints and re-enqueues itself, so a long job does not hold a
	// worker forever. Zero (the default) means no limit; KindOpts can set one
	// per kind. Every run finishes at least one item.
	MaxRuntime time.Duration
	// Shutdown is the controller whose state the runner follows. Default: a
	// new controller with ShutdownTimeout, whose shutdown the runner ends
	// (shutdown.Controller.Finish) once it has stopped. Run installs its
	// signal handlers. A controller given here may be shared by several
	// runners: the runner never calls Finish on it, so its owner calls
	// Finish once all of them have stopped, or its timeout still fires
	// (and logs a hard stop) after they are gone.
	Shutdown *shutdown.Controller
	// ShutdownTimeout is the timeout of the default controller (ignored when
	// Shutdown is set). Zero means shutdown.TimeoutDefault.
	ShutdownTimeout time.Duration
	// Store keeps iterable jobs' state. Default a cursor.RedisStore on Redis
	// in Namespace.
	Store cursor.Store
	// Middleware wraps every run, outermost first.
	Middleware []Middleware
	// PublishEvents appends lifecycle events to the namespace's capped
	// events stream (see queue.Client.Subscribe). Default off.
	PublishEvents bool
	// EventsMax is how many events the namespace's events stream keeps;
	// see queue.Config.EventsMax. Zero means queue.EventsMaxDefault.
	EventsMax int64
	// OnEvent, if set, is called in-process for every lifecycle event the
	// runner causes. It must be quick.
	OnEvent func(context.Context, jobtype.Event)
	// ProcessID names this process in Redis; it must be unique among live
	// processes. Default host:pid:random.
	ProcessID string
	// HeartbeatInterval: see HeartbeatIntervalDefault. Zero means the
	// default.
	HeartbeatInterval time.Duration
	// DeadAfter: see DeadAfterDefault. Zero means the default (at least
	// twice HeartbeatInterval).
	DeadAfter time.Duration
	// MaxRecoveries: see MaxRecoveriesDefault. Zero means the default.
	MaxRecoveries int
	// IdleWake: see IdleWakeDefault. Zero means the default.
	IdleWake time.Duration
	// PollInterval: see PollIntervalDefault.
	PollInterval time.Duration
	// CancelCheckInterval: see CancelCheckIntervalDefault.
	CancelCheckInterval time.Duration
	// FinishTimeout: see FinishTimeoutDefault.
	FinishTimeout time.Duration
	// DeadMaxJobs and DeadMaxAge cap the dead set; see queue.Config.
	DeadMaxJobs int
	DeadMaxAge  time.Duration
	// Periodic are schedules the runner adds (queue.Client.AddPeriodic)
	// when it starts. Every runner of the namespace, whatever its Periodic,
	// enqueues the due ticks of every schedule stored in Redis, together
	// exactly once per tick; schedules are read again every PollInterval,
	// so ones added or removed at run time through a queue.Client take
	// effect within about a second. A schedule dropped from Periodic stays
	// in Redis until queue.Client.RemovePeriodic removes it.
	Periodic []queue.PeriodicJob
}

func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = queue.NamespaceDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Concurrency == 0 {
		c.Concurrency = ConcurrencyDefault
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = CheckpointIntervalDefault
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = MaxAttemptsDefault
	}
	if c.Backoff == nil {
		c.Backoff = DefaultBackoff
	}
	if c.PollInterval == 0 {
		c.PollInterval = PollIntervalDefault
	}
	if c.CancelCheckInterval == 0 {
		c.CancelCheckInterval = CancelCheckIntervalDefault
	}
	if c.FinishTimeout == 0 {
		c.FinishTimeout = FinishTimeoutDefault
	}
	switch {
	case c.FetchAhead == 0:
		c.FetchAhead = FetchAheadFactorDefault * c.Concurrency
	case c.FetchAhead < 0:
		c.FetchAhead = 0
	}
	if c.FetchAheadHold == 0 {
		c.FetchAheadHold = FetchAheadHoldDefault
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.Redis == nil {
		errs = append(errs, errors.New("a Redis client (Config.Redis) is required"))
	}
	if c.Registry == nil {
		errs = append(errs, errors.New("a registry (Config.Registry) is required"))
	}
	if c.Concurrency < 0 || c.CheckpointInterval < 0 || c.MaxAttempts < 0 || c.MaxRuntime < 0 ||
		c.PollInterval < 0 || c.IdleWake < 0 || c.EventsMax < 0 || c.CancelCheckInterval < 0 || c.FetchAheadHold < 0 || c.FinishTimeout < 0 || c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("durations and counts must not be negative"))
	}
	if err := queue.CheckNamespace("Config.Store", c.Store, c.Namespace); err != nil {
		errs = append(errs, err)
	}
	for _, p := range c.Periodic {
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("runner: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// KindOpts are per-kind settings; zero fields fall back to Config.
type KindOpts struct {
	// MaxAttempts caps attempts for jobs of the kind that do not set their
	// own.
	MaxAttempts int
	// MaxRuntime caps one run of an iterable job of the kind.
	MaxRuntime time.Duration
}

// DefaultBackoff is the default wait before a retry:
//
//	min(15s · 2^(attempt−1), 12h) · u,  u uniform in [0.75, 1.25)
//
// so 15s, 30s, 1m, 2m, … doubling up to 12h, each jittered by ±25% so jobs
// that failed together do not retry together. With 25 attempts a job keeps
// retrying for about a week before it dies.
func DefaultBackoff(attempt int) time.Duration {
	const base, maxWait = 15 * time.Second, 12 * time.Hour
	d := maxWait
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 32 {
		if w := base << (attempt - 1); w > 0 && w < maxWait {
			d = w
		}
	}
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}
