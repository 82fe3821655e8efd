package consumer

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/jobtype"
)

// QueueDefault is the queue a consumer serves when Config names none.
const QueueDefault = "default"

// Errors of a consumer's calls.
var (
	// ErrLeaseLost is returned when a run finishes a job whose lease moved on
	// to a newer run (the run was presumed dead and the job handed over).
	ErrLeaseLost = errors.New("consumer: job lease lost to a newer run")
	// ErrReaped is returned by Fetch when this process is not registered:
	// presumed dead and reaped, or Redis lost its data. It must Heartbeat
	// (which registers it again and says which) before fetching.
	ErrReaped = errors.New("consumer: process is not registered")
)

// Defaults for Config.
const (
	// HeartbeatIntervalDefault is how often a process says it is alive (and
	// reaps dead ones, twice per interval). A process that died (its
	// connections closed) is found dead about two intervals after its last
	// beat; see Consumer.
	HeartbeatIntervalDefault = time.Second
	// DeadAfterDefault is how long after its last heartbeat a process that
	// still holds its Redis connections (hung, stopped, partitioned) is
	// presumed dead and its in-flight jobs are handed to live ones.
	DeadAfterDefault = 30 * time.Second
	// MaxRecoveriesDefault is how many times a job may be taken back from a
	// worker that died running it before it is treated as a poison pill and
	// sent to the dead set.
	MaxRecoveriesDefault = 3
	// IdleWakeDefault is the longest an idle consumer waits without a
	// notification before it looks at its queues anyway (a safety net for
	// notifications lost while the pub/sub connection was down).
	IdleWakeDefault = 2 * time.Second
)

// Queue is one queue a consumer takes jobs from.
type Queue struct {
	Name string
	// Weight is how often the queue is looked at first, relative to the
	// others (weighted mode), or its rank (strict mode: higher first).
	// Zero means 1.
	Weight int
}

// Config configures a Consumer.
type Config struct {
	// Namespace must match the clients'. Default NamespaceDefault.
	Namespace string
	// Logger receives logs. Default slog.Default().
	Logger *slog.Logger
	// ProcessID names this process in Redis; it must be unique among live
	// processes. Default host:pid:random.
	ProcessID string
	// Queues to take jobs from. Default [{default 1}].
	Queues []Queue
	// StrictPriority looks at queues in order of weight, highest first, on
	// every fetch. Default off: weighted random order, so a queue of weight
	// 10 is looked at first ten times as often as one of weight 1.
	StrictPriority bool
	// HeartbeatInterval: see HeartbeatIntervalDefault. Zero means the
	// default.
	HeartbeatInterval time.Duration
	// DeadAfter: see DeadAfterDefault. Zero means the default; it must be at
	// least twice HeartbeatInterval. Heartbeats are timed by the Redis
	// server's clock, so worker hosts' clocks need not agree.
	DeadAfter time.Duration
	// MaxRecoveries: see MaxRecoveriesDefault. Zero means the default.
	MaxRecoveries int
	// IdleWake: see IdleWakeDefault. Zero means the default.
	IdleWake time.Duration
	// DeadMaxJobs and DeadMaxAge cap the dead set (see Config).
	DeadMaxJobs int
	DeadMaxAge  time.Duration
	// PublishEvents and OnEvent: see Config.
	PublishEvents bool
	OnEvent       func(context.Context, jobtype.Event)
	// Forget, if set, is told the ids of dead jobs the dead set dropped to
	// stay within its caps, so that data kept per job (iteration state) can
	// go too.
	Forget func(ctx context.Context, ids ...string) error
	// EventsMax is how many events the events stream keeps. Zero means
	// rdb.EventsMaxDefault.
	EventsMax int64
	// Info is extra process information shown by the admin API (for
	// example the concurrency); it is encoded as JSON.
	Info map[string]any
}

func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = rdb.NamespaceDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ProcessID == "" {
		host, _ := os.Hostname()
		c.ProcessID = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), rdb.NewID()[:6])
	}
	if len(c.Queues) == 0 {
		c.Queues = []Queue{{Name: QueueDefault, Weight: 1}}
	}
	c.Queues = slices.Clone(c.Queues)
	for i := range c.Queues {
		if c.Queues[i].Weight == 0 {
			c.Queues[i].Weight = 1
		}
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = HeartbeatIntervalDefault
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = max(DeadAfterDefault, 2*c.HeartbeatInterval)
	}
	if c.MaxRecoveries == 0 {
		c.MaxRecoveries = MaxRecoveriesDefault
	}
	if c.IdleWake == 0 {
		c.IdleWake = IdleWakeDefault
	}
	if c.DeadMaxJobs == 0 {
		c.DeadMaxJobs = rdb.DeadMaxJobsDefault
	}
	if c.DeadMaxAge == 0 {
		c.DeadMaxAge = rdb.DeadMaxAgeDefault
	}
	return c
}

func (c Config) validate() error {
	if err := rdb.CheckName("namespace", c.Namespace); err != nil {
		return err
	}
	if strings.ContainsAny(c.ProcessID, "{}") {
		return fmt.Errorf("%w: process id %q", rdb.ErrInvalidName, c.ProcessID)
	}
	seen := map[string]bool{}
	for _, q := range c.Queues {
		if err := rdb.CheckName("queue", q.Name); err != nil {
			return err
		}
		if q.Weight < 0 {
			return fmt.Errorf("consumer: weight of %s must be positive", q.Name)
		}
		if seen[q.Name] {
			return fmt.Errorf("consumer: queue %s listed twice", q.Name)
		}
		seen[q.Name] = true
	}
	if c.HeartbeatInterval < 0 || c.DeadAfter < 2*c.HeartbeatInterval {
		return fmt.Errorf("consumer: DeadAfter (%s) must be at least twice HeartbeatInterval (%s)", c.DeadAfter, c.HeartbeatInterval)
	}
	if c.MaxRecoveries < 0 || c.IdleWake < 0 || c.DeadMaxJobs < 0 || c.DeadMaxAge < 0 {
		return errors.New("consumer: MaxRecoveries, IdleWake, DeadMaxJobs and DeadMaxAge must not be negative")
	}
	return nil
}

// Consumer is the worker side of the queue: it fetches jobs crash-safely
// and finishes them. A job runner (package runner) owns one per process;
// most applications never use it directly.
//
// Fetching moves jobs atomically from a queue into this process's in-flight
// set and gives each a new lease. The process heartbeats; any live consumer
// returns the in-flight jobs of a dead process to the head of their queues
// (Reap). A process is dead when it stops heartbeating for DeadAfter, or,
// much sooner, when it stops heartbeating and its liveness connection is
// gone: a started consumer stays subscribed to a channel of its own on its
// notification connection, and when its process dies the kernel closes the
// connection, so Redis drops the subscription at once. With the default
// settings a killed process's jobs are running elsewhere about two seconds
// after its death, while a hung or partitioned process, whose connection
// stays open, keeps its jobs for DeadAfter. Every way a job leaves the
// in-flight set (Ack, Requeue, Schedule, Retry, Kill, Cancelled) is accepted
// only from the run holding the job's current lease, so a process reaped
// while alive can finish nothing.
type Consumer struct {
	db   *rdb.DB
	cfg  Config
	ev   rdb.Emitter
	log  *slog.Logger
	now  func() time.Time
	mine map[string]bool
	// parse decodes a payload; rdb.DecodeJob guards it (tests swap it for
	// one that panics).
	parse func(string) (*jobtype.Job, error)

	started time.Time

	mu      sync.Mutex
	ps      *redis.PubSub
	alive   string // the liveness channel while subscribed
	wake    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
	beaten  bool
	recheck time.Duration // asked for by the last Reap

	epoch string // the namespace's epoch, learnt at the first beat
	// refused is set when a fetch found the process not registered in one
	// of its queues; the next heartbeat registers it in them again.
	refused atomic.Bool
	// troubled is when a heartbeat or reap last failed (UnixNano; 0:
	// never): for two intervals after, Reap takes no quick path.
	troubled atomic.Int64

	pendMu  sync.Mutex
	pend    []byte        // encoded events no queue change carried yet, joined by commas
	npend   int           // how many
	pendNew chan struct{} // signalled when pend becomes non-empty
	// carryMu orders the calls that write events: one carrying buffered
	// events holds it until Redis has answered, so a later call (say, the
	// ack of the job whose "started" it carries) cannot overtake it.
	carryMu sync.Mutex
}

// New returns a consumer on c, which it never closes.
func New(c redis.UniversalClient, cfg Config) (*Consumer, error) {
	if c == nil {
		return nil, errors.New("consumer: New needs a Redis client")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	mine := make(map[string]bool, len(cfg.Queues))
	for _, q := range cfg.Queues {
		mine[q.Name] = true
	}
	db := rdb.New(c, cfg.Namespace)
	if cfg.EventsMax > 0 {
		db.EventsMax = cfg.EventsMax
	}
	return &Consumer{
		db:      db,
		pendNew: make(chan struct{}, 1),
		cfg:     cfg,
		ev:      rdb.Emitter{Publish: cfg.PublishEvents, Handler: cfg.OnEvent, Log: cfg.Logger},
		log:     cfg.Logger,
		now:     time.Now,
		mine:    mine,
		parse:   rdb.ParseJob,
		wake:    make(chan struct{}, 1),
		started: time.Now(),
	}, nil
}

// ProcessID returns the id this consumer registers under.
func (c *Consumer) ProcessID() string { return c.cfg.ProcessID }

// Config returns the consumer's configuration with defaults applied.
func (c *Consumer) Config() Config { return c.cfg }

// Start subscribes to work notifications and to the process's liveness
// channel, and registers the process. Jobs fetched after Start returns are
// covered by notifications.
func (c *Consumer) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ps != nil {
		return errors.New("consumer: consumer already started")
	}
	alive := c.db.Keys.Alive(c.cfg.ProcessID)
	// Redis runs one SUBSCRIBE for both channels: once the first is
	// confirmed, both are in place.
	ps := c.db.C.Subscribe(ctx, c.db.Keys.Notify(), alive)
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return fmt.Errorf("consumer: subscribe to notifications: %w", err)
	}
	c.alive = alive
	if err := c.db.RegisterQueues(ctx, c.queueNames()...); err != nil {
		_ = ps.Close()
		return fmt.Errorf("consumer: register queues: %w", err)
	}
	if _, err := c.heartbeat(ctx, nil, true); err != nil {
		c.alive = ""
		_ = ps.Close()
		return err
	}
	if err := c.db.RegisterIn(ctx, c.cfg.ProcessID, c.queueNames(), true, c.now()); err != nil {
		_ = ps.Close()
		return fmt.Errorf("consumer: register in queues: %w", err)
	}
	c.ps = ps
	c.done = make(chan struct{})
	c.wg.Add(2)
	go c.listen(ps.Channel(redis.WithChannelSize(64)))
	go c.flushLoop()
	return nil
}

func (c *Consumer) queueNames() []string {
	out := make([]string, len(c.cfg.Queues))
	for i, q := range c.cfg.Queues {
		out[i] = q.Name
	}
	return out
}

func (c *Consumer) listen(msgs <-chan *redis.Message) {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			if c.mine[m.Payload] {
				c.Wake()
			}
		}
	}
}

// Wake makes a pending or the next Wait return at once.
func (c *Consumer) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Wait blocks until work may be waiting in one of the consumer's queues (a
// notification, or IdleWake passed) or ctx ends. Call it after a Fetch that
// found nothing.
func (c *Consumer) Wait(ctx context.Context) {
	t := time.NewTimer(c.cfg.IdleWake)
	defer t.Stop()
	select {
	case <-c.wake:
	case <-t.C:
	case <-ctx.Done():
	}
}

// Stop ends the notification subscription and, if no job is left in flight,
// removes the process from the registry. A process stopped with jobs in
// flight stays registered until reaped, so those jobs are recovered.
func (c *Consumer) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ps == nil {
		return nil
	}
	close(c.done)
	err := c.ps.Close()
	c.wg.Wait()
	c.ps, c.alive = nil, ""
	ferr := c.flushPending(ctx)
	held, ierr := c.db.InFlight(ctx, c.cfg.ProcessID, c.queueNames())
	n := 0
	for _, ids := range held {
		n += len(ids)
	}
	if ierr == nil && n == 0 {
		ierr = errors.Join(c.db.RegisterIn(ctx, c.cfg.ProcessID, c.queueNames(), false, c.now()),
			c.db.Deregister(ctx, c.cfg.ProcessID))
	} else if ierr == nil {
		c.log.WarnContext(ctx, "consumer: stopping with jobs in flight; they return to their queues when this process is reaped",
			slog.String("process", c.cfg.ProcessID), slog.Int("in_flight", n))
	}
	return errors.Join(err, ferr, ierr)
}

// order returns the queues in the order this fetch looks at them.
func (c *Consumer) order() []string {
	qs := c.cfg.Queues
	out := make([]string, 0, len(qs))
	if c.cfg.StrictPriority || len(qs) == 1 {
		sorted := slices.Clone(qs)
		slices.SortStableFunc(sorted, func(a, b Queue) int { return cmp.Compare(b.Weight, a.Weight) })
		for _, q := range sorted {
			out = append(out, q.Name)
		}
		return out
	}
	// Weighted random order without replacement.
	left := slices.Clone(qs)
	total := 0
	for _, q := range left {
		total += q.Weight
	}
	for len(left) > 0 {
		r := rand.IntN(total)
		i := 0
		for ; r >= left[i].Weight; i++ {
			r -= left[i].Weight
		}
		out = append(out, left[i].Name)
		total -= left[i].Weight
		left = slices.Delete(left, i, i+1)
	}
	return out
}

// Fetch takes up to n jobs in one round trip. A job whose payload cannot be
// decoded goes to the dead set, its payload kept as it was and the parse
// error (matching ErrInvalidPayload) as its error; a job recovered from dead
// workers more than MaxRecoveries times goes there as a poison pill. Neither
// is returned, and neither stops the fetch.
func (c *Consumer) Fetch(ctx context.Context, n int) ([]*jobtype.Job, error) {
	if n <= 0 {
		return nil, nil
	}
	got, err := c.db.Fetch(ctx, c.cfg.ProcessID, n, c.order(), c.now(), c.ev.Publish)
	if errors.Is(err, rdb.ErrReaped) {
		c.refused.Store(true)
		return nil, fmt.Errorf("%w: %s (heartbeat to register again)", ErrReaped, c.cfg.ProcessID)
	}
	if err != nil {
		return nil, fmt.Errorf("consumer: fetch: %w", err)
	}
	jobs := make([]*jobtype.Job, 0, len(got))
	for _, f := range got {
		j, err := rdb.DecodeJob(f.Envelope, c.parse)
		if err != nil {
			id := rdb.EnvelopeID(f.Envelope, f.Lease)
			c.log.ErrorContext(ctx, "consumer: undecodable job sent to the dead set", slog.String("jid", id), slog.Any("error", err))
			bad := &jobtype.Job{ID: id, Queue: f.Queue, Lease: f.Lease, Attempt: 1}
			// A nil envelope keeps the payload as stored, for inspection.
			if kerr := c.kill(ctx, bad, nil, jobtype.NewJobError(err, rdb.DecodeTrace(err), 1, c.now()), nil); kerr != nil {
				c.log.ErrorContext(ctx, "consumer: kill undecodable job", slog.String("jid", id), slog.Any("error", kerr))
			}
			continue
		}
		j.Lease, j.Queue = f.Lease, f.Queue
		j.State = jobtype.StateRunning
		if j.Recovered > c.cfg.MaxRecoveries {
			perr := fmt.Errorf("consumer: poison pill: the worker running this job died %d times (max %d)", j.Recovered, c.cfg.MaxRecoveries)
			c.log.ErrorContext(ctx, "consumer: poison pill sent to the dead set", slog.String("jid", j.ID), slog.String("kind", j.Kind), slog.Int("recovered", j.Recovered))
			ev := jobtype.NewEvent(jobtype.EventDead, j, c.now())
			ev.Error = perr.Error()
			if kerr := c.Kill(ctx, j, jobtype.NewJobError(perr, nil, j.Attempt, c.now()), &ev); kerr != nil {
				c.log.ErrorContext(ctx, "consumer: kill poison pill", slog.String("jid", j.ID), slog.Any("error", kerr))
			}
			continue
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// Done is a succeeded job to acknowledge, with its event (nil for the
// default succeeded event).
type Done struct {
	Job   *jobtype.Job
	Event *jobtype.Event
}

// Ack completes succeeded jobs in one round trip: each is deleted, its
// uniqueness key released and the processed counters bumped. It returns the
// ids of jobs whose lease had moved on (left alone).
func (c *Consumer) Ack(ctx context.Context, done []Done) ([]string, error) {
	if len(done) == 0 {
		return nil, nil
	}
	now := c.now()
	owned := make([]rdb.Owned, len(done))
	var events []byte
	for i, d := range done {
		owned[i] = rdb.Owned{ID: d.Job.ID, Queue: d.Job.Queue, Lease: d.Job.Lease}
		if c.ev.Publish {
			ev := c.succeeded(d, now)
			n := len(events)
			if n > 0 {
				events = append(events, ',')
				n++
			}
			var err error
			if events, err = ev.AppendJSON(events); err != nil {
				c.log.ErrorContext(ctx, "consumer: encode event", slog.String("jid", d.Job.ID), slog.Any("error", err))
				events = events[:max(n-1, 0)]
				continue
			}
			owned[i].EventLen = len(events) - n
		}
	}
	pre, locked := c.carry()
	stale, err := c.db.Ack(ctx, c.cfg.ProcessID, now, owned, events, pre)
	if err != nil {
		c.putBack(pre) // before another carrier can write later events
	}
	if locked {
		c.carryMu.Unlock()
	}
	if err != nil {
		return nil, fmt.Errorf("consumer: ack %d jobs: %w", len(done), err)
	}
	if c.ev.Handler != nil {
		for _, d := range done {
			if !slices.Contains(stale, d.Job.ID) {
				ev := c.succeeded(d, now)
				c.ev.Handle(ctx, *ev)
			}
		}
	}
	return stale, nil
}

// succeeded is the event of an acknowledged job.
func (c *Consumer) succeeded(d Done, now time.Time) *jobtype.Event {
	if d.Event != nil {
		return d.Event
	}
	ev := jobtype.NewEvent(jobtype.EventSucceeded, d.Job, now)
	return &ev
}

// Release hands fetched jobs that never started back to the head of their
// queues, as if never fetched (a process shutting down).
func (c *Consumer) Release(ctx context.Context, jobs []*jobtype.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	owned := make([]rdb.Owned, len(jobs))
	for i, j := range jobs {
		owned[i] = rdb.Owned{ID: j.ID, Queue: j.Queue, Lease: j.Lease}
	}
	if _, err := c.db.Release(ctx, c.cfg.ProcessID, owned); err != nil {
		return fmt.Errorf("consumer: release %d jobs: %w", len(jobs), err)
	}
	return nil
}

func (c *Consumer) finish(ctx context.Context, j *jobtype.Job, f rdb.Finish, ev *jobtype.Event) error {
	now := c.now()
	f.ProcID, f.ID, f.Queue, f.Lease = c.cfg.ProcessID, j.ID, j.Queue, j.Lease
	f.DeadMax, f.DeadMaxAge = c.cfg.DeadMaxJobs, c.cfg.DeadMaxAge
	if ev != nil {
		f.Event = c.ev.Encode(ctx, *ev)
	}
	var locked bool
	f.Pre, locked = c.carry()
	ok, trimmed, err := c.db.Finish(ctx, now, f)
	if err != nil {
		c.putBack(f.Pre) // before another carrier can write later events
	}
	if locked {
		c.carryMu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("consumer: %s %s: %w", f.Action, j.ID, err)
	}
	if len(trimmed) > 0 && c.cfg.Forget != nil {
		if err := c.cfg.Forget(ctx, trimmed...); err != nil {
			c.log.WarnContext(ctx, "consumer: could not forget the data of dead jobs dropped from the dead set", slog.Int("jobs", len(trimmed)), slog.Any("error", err))
		}
	}
	if !ok {
		return fmt.Errorf("%w: %s %s (lease %d)", ErrLeaseLost, f.Action, j.ID, j.Lease)
	}
	if ev != nil {
		c.ev.Handle(ctx, *ev)
	}
	return nil
}

// Requeue puts a running job back at the head of its queue: an interruption,
// not a failure. Its id, queue, arguments and attempt are kept; changes a
// server middleware made to j.Meta are kept too, as by every way a job goes
// back (Schedule, Retry, Kill).
func (c *Consumer) Requeue(ctx context.Context, j *jobtype.Job, ev *jobtype.Event) error {
	env, err := rdb.EncodeJob(j)
	if err != nil {
		return err
	}
	return c.finish(ctx, j, rdb.Finish{Action: rdb.ActionRequeue, NewEnvelope: env}, ev)
}

// Schedule puts a running job in the scheduled set to run at at, without
// counting an attempt (snooze, throttle).
func (c *Consumer) Schedule(ctx context.Context, j *jobtype.Job, at time.Time, ev *jobtype.Event) error {
	env, err := rdb.EncodeJob(j)
	if err != nil {
		return err
	}
	return c.finish(ctx, j, rdb.Finish{Action: rdb.ActionSchedule, Due: at.UnixMilli(), NewEnvelope: env}, ev)
}

// Retry records a failed attempt and puts the job in the retry set, due at
// at, with its attempt number raised by one.
func (c *Consumer) Retry(ctx context.Context, j *jobtype.Job, at time.Time, jerr *jobtype.JobError, ev *jobtype.Event) error {
	next := *j
	next.Attempt = j.Attempt + 1
	env, err := rdb.EncodeJob(&next)
	if err != nil {
		return err
	}
	b, err := json.Marshal(jerr)
	if err != nil {
		return fmt.Errorf("consumer: encode job error: %w", err)
	}
	return c.finish(ctx, j, rdb.Finish{Action: rdb.ActionRetry, Due: at.UnixMilli(), NewEnvelope: env, Error: b}, ev)
}

// Kill records a failure and moves the job to the dead set, releasing its
// uniqueness key. The dead set is trimmed to its caps.
func (c *Consumer) Kill(ctx context.Context, j *jobtype.Job, jerr *jobtype.JobError, ev *jobtype.Event) error {
	env, err := rdb.EncodeJob(j)
	if err != nil {
		return err
	}
	return c.kill(ctx, j, env, jerr, ev)
}

func (c *Consumer) kill(ctx context.Context, j *jobtype.Job, env []byte, jerr *jobtype.JobError, ev *jobtype.Event) error {
	b, err := json.Marshal(jerr)
	if err != nil {
		return fmt.Errorf("consumer: encode job error: %w", err)
	}
	return c.finish(ctx, j, rdb.Finish{Action: rdb.ActionDead, NewEnvelope: env, Error: b}, ev)
}

// Cancelled forgets a running job that stopped because it was cancelled.
func (c *Consumer) Cancelled(ctx context.Context, j *jobtype.Job, ev *jobtype.Event) error {
	return c.finish(ctx, j, rdb.Finish{Action: rdb.ActionCancel}, ev)
}

// CancelRequested reports, in one round trip, which of the running jobs
// have a pending cancellation.
func (c *Consumer) CancelRequested(ctx context.Context, jobs []*jobtype.Job) ([]bool, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	ids, queues := make([]string, len(jobs)), make([]string, len(jobs))
	for i, j := range jobs {
		ids[i], queues[i] = j.ID, j.Queue
	}
	out, err := c.db.Cancelled(ctx, ids, queues)
	if err != nil {
		return nil, fmt.Errorf("consumer: read pending cancellations: %w", err)
	}
	return out, nil
}

// Publish sends an event that no queue change carries (started, resumed,
// checkpointed, failed) to the in-process handler and, if enabled, to the
// events stream: it goes out with the next ack or finish this consumer
// writes (so it precedes the events of that change), or within
// pendingFlush.
func (c *Consumer) Publish(ctx context.Context, ev jobtype.Event) {
	c.ev.Handle(ctx, ev)
	if !c.ev.Publish {
		return
	}
	c.pendMu.Lock()
	n := len(c.pend)
	if n > 0 {
		c.pend = append(c.pend, ',')
	}
	b, err := ev.AppendJSON(c.pend)
	if err != nil {
		c.pend = c.pend[:n]
		c.pendMu.Unlock()
		c.log.ErrorContext(ctx, "consumer: encode event", slog.String("type", string(ev.Type)), slog.String("jid", ev.JobID), slog.Any("error", err))
		return
	}
	c.pend = b
	c.npend++
	first := c.npend == 1
	c.pendMu.Unlock()
	if first {
		select {
		case c.pendNew <- struct{}{}:
		default:
		}
	}
}

// pendingFlush is the longest an event Publish buffered waits for a queue
// change to carry it.
const pendingFlush = 20 * time.Millisecond

// carry takes the buffered events for a call that writes events, after any
// call still carrying earlier ones has returned. When it reports locked, the
// caller unlocks carryMu once its call has returned.
func (c *Consumer) carry() (p rdb.Pending, locked bool) {
	if !c.ev.Publish {
		return rdb.Pending{}, false
	}
	c.carryMu.Lock()
	if p = c.takePending(); p.N == 0 {
		c.carryMu.Unlock()
		return p, false
	}
	return p, true
}

// takePending takes the buffered events, for a call that carries them.
func (c *Consumer) takePending() rdb.Pending {
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	if c.npend == 0 {
		return rdb.Pending{}
	}
	p := rdb.Pending{Events: c.pend, N: c.npend}
	c.pend, c.npend = make([]byte, 0, cap(c.pend)), 0
	return p
}

// putBack returns events taken by a call that failed, ahead of any buffered
// since.
func (c *Consumer) putBack(p rdb.Pending) {
	if p.N == 0 {
		return
	}
	c.pendMu.Lock()
	if c.npend > 0 {
		p.Events = append(append(p.Events, ','), c.pend...)
	}
	c.pend, c.npend = p.Events, c.npend+p.N
	c.pendMu.Unlock()
}

// flushPending appends the buffered events to the stream.
func (c *Consumer) flushPending(ctx context.Context) error {
	p, locked := c.carry()
	if !locked {
		return nil
	}
	err := c.db.AppendEvents(ctx, "["+string(p.Events)+"]")
	if err != nil {
		c.putBack(p) // before another carrier can write later events
	}
	c.carryMu.Unlock()
	if err != nil {
		return fmt.Errorf("consumer: append events: %w", err)
	}
	return nil
}

// flushLoop appends buffered events that no queue change carried within
// pendingFlush.
func (c *Consumer) flushLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.pendNew:
		}
		t := time.NewTimer(pendingFlush)
		select {
		case <-c.done:
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.flushPending(ctx); err != nil {
			c.log.WarnContext(ctx, "consumer: events not written yet; trying again", slog.Any("error", err))
			select {
			case c.pendNew <- struct{}{}:
			default:
			}
		}
		cancel()
	}
}

// BeatStatus is what a heartbeat found.
type BeatStatus int

const (
	// BeatAlive: the process was registered, as it should be.
	BeatAlive BeatStatus = iota
	// BeatReaped: the process had been presumed dead and reaped since its
	// last beat (it stalled or was cut off longer than DeadAfter, or lost
	// its liveness connection and missed its beats). Its in-flight jobs were
	// handed to other processes, so every run it still has is stale.
	BeatReaped
	// BeatDataLost: Redis lost the process's registration with the
	// namespace's data (a restart without persistence, a failover to a
	// replica without the data, a flush). Nobody took its jobs: it should
	// put them back with Restore and carry on. Jobs that were only in Redis
	// (queued, scheduled) are gone.
	BeatDataLost
)

func (s BeatStatus) String() string {
	switch s {
	case BeatAlive:
		return "alive"
	case BeatReaped:
		return "reaped"
	case BeatDataLost:
		return "data lost"
	}
	return fmt.Sprintf("BeatStatus(%d)", int(s))
}

// Heartbeat records the process as alive with the jobs it runs, and
// registers it again if it was not registered; the status says why it was
// not. Heartbeats are timed by the Redis server's clock.
func (c *Consumer) Heartbeat(ctx context.Context, busy []jobtype.BusyJob) (BeatStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.heartbeat(ctx, busy, !c.beaten)
}

func (c *Consumer) heartbeat(ctx context.Context, busy []jobtype.BusyJob, first bool) (BeatStatus, error) {
	host, _ := os.Hostname()
	qs := make([]rdb.ProcQueue, len(c.cfg.Queues))
	for i, q := range c.cfg.Queues {
		qs[i] = rdb.ProcQueue(q)
	}
	info, err := json.Marshal(rdb.ProcessInfo{
		ID: c.cfg.ProcessID, Hostname: host, PID: os.Getpid(), Queues: qs,
		Strict: c.cfg.StrictPriority, StartedAt: c.started, Extra: c.cfg.Info,
	})
	if err != nil {
		return 0, fmt.Errorf("consumer: encode process info: %w", err)
	}
	if busy == nil {
		busy = []jobtype.BusyJob{}
	}
	b, err := json.Marshal(busy)
	if err != nil {
		return 0, fmt.Errorf("consumer: encode busy jobs: %w", err)
	}
	reply, err := c.db.Heartbeat(ctx, rdb.Beat{
		ProcID: c.cfg.ProcessID, Info: info, Busy: b, TTL: c.procTTL(), First: first,
		Alive: c.alive, Interval: c.cfg.HeartbeatInterval,
		Epoch: c.epoch, NewEpoch: rdb.NewID(),
	})
	if err != nil {
		c.troubled.Store(time.Now().UnixNano())
		return 0, fmt.Errorf("consumer: heartbeat: %w", err)
	}
	c.beaten = true
	c.epoch = reply.Epoch
	// A fetch refused while the registry still holds the process: a
	// queue's registration alone was lost (on a cluster, the queue's shard
	// failed over to a replica that lagged, while the registry's shard kept
	// its writes), or a reaper unregistered it from a queue after it had
	// registered again. Registering in the queues again is all it takes.
	refused := c.refused.Swap(false)
	if reply.Status == rdb.BeatAlive && !refused {
		return BeatAlive, nil
	}
	// Registered again: the process may fetch again from its queues.
	if err := c.db.RegisterIn(ctx, c.cfg.ProcessID, c.queueNames(), true, c.now()); err != nil {
		if refused {
			c.refused.Store(true)
		}
		return 0, fmt.Errorf("consumer: register in queues: %w", err)
	}
	switch reply.Status {
	case rdb.BeatAlive:
		c.log.WarnContext(ctx, "consumer: registered again in its queues, which had lost its registration (a failover to a replica that lagged?)",
			slog.String("process", c.cfg.ProcessID))
		return BeatAlive, nil
	case rdb.BeatReaped:
		return BeatReaped, nil
	}
	return BeatDataLost, nil
}

// HeldJob is a job this process holds, for Restore.
type HeldJob struct {
	Job *jobtype.Job
	// Started says its run has started (and, for a recovered job, was
	// marked so: see MarkStarted).
	Started bool
}

// Restore puts back this process's in-flight entries for the jobs it holds,
// with their leases, after a heartbeat returned BeatDataLost: until then no
// ack or finish of those jobs is accepted. Entries present are left alone.
// It returns how many it put back.
func (c *Consumer) Restore(ctx context.Context, jobs []HeldJob) (int, error) {
	held := make([]rdb.Held, 0, len(jobs))
	for _, h := range jobs {
		env, err := rdb.EncodeJob(h.Job)
		if err != nil {
			return 0, err
		}
		held = append(held, rdb.Held{ID: h.Job.ID, Queue: h.Job.Queue, Lease: h.Job.Lease, Envelope: env, Started: h.Started && h.Job.Recovered > 0})
	}
	n, err := c.db.Restore(ctx, c.cfg.ProcessID, held)
	if err != nil {
		return 0, fmt.Errorf("consumer: restore %d in-flight jobs: %w", len(jobs), err)
	}
	return n, nil
}

// procTTL is how long the process hash outlives the last heartbeat.
func (c *Consumer) procTTL() time.Duration { return c.cfg.DeadAfter * 2 }

// Reap returns the in-flight jobs of dead processes to the head of their
// queues: processes that missed their heartbeats for DeadAfter, and those
// that missed them for one and a half of their intervals and whose liveness
// connection two reaps half an interval apart found gone (see Consumer). It
// returns how many jobs it recovered. Call it twice per heartbeat interval,
// and again after NextReap.
func (c *Consumer) Reap(ctx context.Context) (int, error) {
	// The quick path judges others by their liveness connections: not
	// while this process's own calls were failing lately (a failover or
	// restart drops every connection, and the others need up to an
	// interval to beat and reconnect after it).
	c.mu.Lock()
	alive := c.alive
	c.mu.Unlock()
	if t := c.troubled.Load(); t != 0 && time.Since(time.Unix(0, t)) < 2*c.cfg.HeartbeatInterval {
		alive = ""
	}
	res, err := c.db.Reap(ctx, c.cfg.DeadAfter, c.cfg.HeartbeatInterval*3/2, c.cfg.ProcessID, alive)
	if err != nil {
		c.troubled.Store(time.Now().UnixNano())
		return 0, fmt.Errorf("consumer: reap: %w", err)
	}
	c.mu.Lock()
	c.recheck = res.Recheck
	c.mu.Unlock()
	for _, p := range res.Procs {
		c.log.WarnContext(ctx, "consumer: reaped a dead process", slog.String("process", p))
	}
	if res.Jobs > 0 {
		c.log.WarnContext(ctx, "consumer: recovered jobs from dead processes", slog.Int("jobs", res.Jobs))
	}
	return res.Jobs, nil
}

// NextReap returns how soon the last Reap asked to be run again (zero: no
// sooner than usual): it found a process without its liveness connection,
// to be confirmed dead by a later reap.
func (c *Consumer) NextReap() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recheck
}

// Promote moves due jobs from the scheduled and retry sets of the
// consumer's queues to their queues (up to limit from each). It returns how many it moved and when the next
// one is due (zero time: none waiting).
func (c *Consumer) Promote(ctx context.Context, limit int) (int, time.Time, error) {
	n, next, err := c.db.Promote(ctx, c.now(), limit, c.queueNames())
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("consumer: promote due jobs: %w", err)
	}
	var at time.Time
	if next >= 0 {
		at = time.UnixMilli(next)
	}
	return n, at, nil
}

// RecoverOrphans returns to their queues the jobs in this process's in-flight
// set that are not in known (the jobs the process holds): jobs whose fetch
// reply was lost to a dropped connection. Call it only while no Fetch of this
// consumer is in progress.
func (c *Consumer) RecoverOrphans(ctx context.Context, known map[string]bool) (int, error) {
	held, err := c.db.InFlight(ctx, c.cfg.ProcessID, c.queueNames())
	if err != nil {
		return 0, fmt.Errorf("consumer: read in-flight jobs: %w", err)
	}
	var orphans []rdb.Owned
	for q, ids := range held {
		for _, id := range ids {
			if !known[id] {
				orphans = append(orphans, rdb.Owned{ID: id, Queue: q})
			}
		}
	}
	if len(orphans) == 0 {
		return 0, nil
	}
	n, err := c.db.Release(ctx, c.cfg.ProcessID, orphans)
	if err != nil {
		return 0, fmt.Errorf("consumer: return orphaned jobs: %w", err)
	}
	return n, nil
}

// MarkStarted records, before a recovered job's code runs, that this process
// is starting it. Only a job marked started is counted as recovered again if
// the process dies, so a job that was merely fetched ahead by processes that
// died of something else never becomes a poison pill. A job never recovered
// before needs no mark (its first recovery always counts), and the runner
// calls this only for jobs with Recovered > 0: one round trip per recovered
// job, none on the common path.
func (c *Consumer) MarkStarted(ctx context.Context, j *jobtype.Job) error {
	if err := c.db.MarkStarted(ctx, c.cfg.ProcessID, j.Queue, j.ID, j.Lease); err != nil {
		return fmt.Errorf("consumer: mark %s started: %w", j.ID, err)
	}
	return nil
}

// Forgive zeroes the count of recoveries of a running job, once it has made
// progress: crashes that happened while it kept progressing do not make it a
// poison pill (a long iterable job may be recovered from many deploys gone
// wrong). It returns ErrLeaseLost if the run no longer holds the job.
func (c *Consumer) Forgive(ctx context.Context, j *jobtype.Job) error {
	ok, err := c.db.Forgive(ctx, c.cfg.ProcessID, j.Queue, j.ID, j.Lease)
	if err != nil {
		return fmt.Errorf("consumer: forgive %s: %w", j.ID, err)
	}
	if !ok {
		return fmt.Errorf("%w: forgive %s (lease %d)", ErrLeaseLost, j.ID, j.Lease)
	}
	j.Recovered = 0
	return nil
}
