package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/jobtype"
)

// Defaults for Config.
const (
	// NamespaceDefault prefixes every key: "{iterjob}:...".
	NamespaceDefault = rdb.NamespaceDefault
	// DeadMaxJobsDefault caps the dead set; the oldest deaths go first.
	DeadMaxJobsDefault = rdb.DeadMaxJobsDefault
	// DeadMaxAgeDefault is how long a job stays in the dead set.
	DeadMaxAgeDefault = rdb.DeadMaxAgeDefault
	// EventsMaxDefault is how many events the events stream keeps.
	EventsMaxDefault = rdb.EventsMaxDefault
	// IDRetentionDefault is how long a caller-chosen job id is remembered.
	IDRetentionDefault = 24 * time.Hour
	// enqueueChunk bounds the jobs one script call adds.
	enqueueChunk = 500
)

// maxDue is the latest time a job can be scheduled for: the end of the year
// 9999 UTC. Due times are kept as Unix milliseconds, in a Redis sorted-set
// score (a float64, exact up to 2^53 ms, about the year 287,000) and in
// RFC 3339 event timestamps (four-digit years); beyond that a due time
// would overflow and could run the job at once.
var maxDue = time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)

// Config configures a Client. The zero value is usable.
type Config struct {
	// Namespace prefixes every key. Clients, runners and stores that share
	// jobs must share it. Default NamespaceDefault.
	Namespace string
	// Logger receives the client's logs. Default slog.Default().
	Logger *slog.Logger
	// PublishEvents appends lifecycle events to the namespace's capped
	// events stream (see Subscribe), in the same Lua call that moves the
	// job. Default off.
	PublishEvents bool
	// OnEvent, if set, is called in-process for every event this client
	// causes, whether or not events are published. It must be quick.
	OnEvent func(context.Context, jobtype.Event)
	// Middleware wraps every enqueue, outermost first.
	Middleware []Middleware
	// Kinds, if set, is asked about every enqueue: a kind it does not know
	// is refused with ErrUnknownKind instead of waiting in a queue that no
	// runner serves for it. Pass the runners' *runner.Registry when this
	// process registers every kind, or KnownKinds(...) listing them.
	Kinds Kinds
	// DeadMaxJobs caps the dead set (admin moves to it). Zero means
	// DeadMaxJobsDefault.
	DeadMaxJobs int
	// DeadMaxAge is how long dead jobs are kept. Zero means
	// DeadMaxAgeDefault.
	DeadMaxAge time.Duration
	// JobData, if set, is told when jobs are deleted for good (Delete,
	// DeleteQueued, Cancel of a waiting job, dead jobs dropped to keep the
	// dead set within its caps), so that data kept elsewhere per job can go
	// too. The runner's cursor.Store keeps an iterable job's state and
	// satisfies it: pass the same store the runners use.
	JobData JobData
	// EventsMax is how many events the namespace's events stream keeps
	// (see Subscribe). Zero means EventsMaxDefault.
	EventsMax int64
	// IDRetention is how long a caller-chosen job id (EnqueueOpts.ID) is
	// remembered, so that enqueuing it again adds nothing. Zero means
	// IDRetentionDefault.
	IDRetention time.Duration
}

func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = NamespaceDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.DeadMaxJobs == 0 {
		c.DeadMaxJobs = DeadMaxJobsDefault
	}
	if c.IDRetention == 0 {
		c.IDRetention = IDRetentionDefault
	}
	if c.DeadMaxAge == 0 {
		c.DeadMaxAge = DeadMaxAgeDefault
	}
	return c
}

func (c Config) validate() error {
	if err := checkName("namespace", c.Namespace); err != nil {
		return err
	}
	if c.DeadMaxJobs < 0 || c.DeadMaxAge < 0 || c.IDRetention < 0 || c.EventsMax < 0 {
		return errors.New("queue: DeadMaxJobs, DeadMaxAge, IDRetention and EventsMax must not be negative")
	}
	return CheckNamespace("Config.JobData", c.JobData, c.Namespace)
}

// JobData is data kept per job outside the queue, which the queue asks to
// drop when it deletes jobs for good (see Config.JobData).
type JobData interface {
	Delete(ctx context.Context, jobIDs ...string) error
}

// Middleware wraps an enqueue. It may change the job (add Meta, set a
// queue), return an error to stop the enqueue (the caller gets the error),
// or call next to go on.
type Middleware func(ctx context.Context, job *jobtype.Job, next func(context.Context, *jobtype.Job) error) error

// Client enqueues jobs and manages them. It is safe for concurrent use.
type Client struct {
	db  *rdb.DB
	cfg Config
	ev  rdb.Emitter
	now func() time.Time
	// parse decodes a payload; rdb.DecodeJob guards it (tests swap it for
	// one that panics).
	parse func(string) (*jobtype.Job, error)
}

// NewClient returns a client on rdb, which it never closes.
func NewClient(c redis.UniversalClient, cfg Config) (*Client, error) {
	if c == nil {
		return nil, errors.New("queue: NewClient needs a Redis client")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	db := rdb.New(c, cfg.Namespace)
	if cfg.EventsMax > 0 {
		db.EventsMax = cfg.EventsMax
	}
	return &Client{
		db:    db,
		cfg:   cfg,
		ev:    rdb.Emitter{Publish: cfg.PublishEvents, Handler: cfg.OnEvent, Log: cfg.Logger},
		now:   time.Now,
		parse: rdb.ParseJob,
	}, nil
}

// EnqueueOpts are per-job options. A nil *EnqueueOpts means all defaults.
type EnqueueOpts struct {
	// Queue is the queue to wait in. Default QueueDefault.
	Queue string
	// In delays the job by this long. At wins when both are set.
	In time.Duration
	// At runs the job at this time; a time in the past runs it at once. A
	// time after the year 9999 is refused with ErrInvalidSchedule.
	At time.Time
	// MaxAttempts caps attempts before the job dies. Zero means the
	// runner's default for the kind.
	MaxAttempts int
	// UniqueKey makes the job unique: while a job holding the key exists,
	// enqueuing another with the same key adds nothing and reports the
	// existing one as a duplicate.
	UniqueKey string
	// UniqueFor is how long the key is held. Zero means until the job
	// finishes: it succeeds, dies or is cancelled. Interruptions and retries
	// keep holding it.
	UniqueFor time.Duration
	// Meta annotates the job; it travels with it and with its events.
	Meta map[string]string
	// ID is the job's id, chosen by the caller (1-200 of A-Z a-z 0-9 _ . :
	// -). Default: a random id. A chosen id makes the enqueue idempotent:
	// while the id is remembered (Config.IDRetention after its enqueue),
	// enqueuing it again adds nothing and reports a duplicate, even if the
	// first job has finished meanwhile. Use it when a retried call must not
	// add a job twice (an outbox drained after a crash, a periodic tick).
	ID string
	// StartCursor, for an iterable job, is the cursor its first run starts
	// at instead of the beginning (encoded as JSON, it must decode into the
	// job's cursor type; a run that cannot decode it fails without retry,
	// with the decode error). It is used while the job has no saved cursor;
	// once a run saved one, resuming follows that. It travels in Meta under
	// jobtype.MetaStartCursor. A client whose Config.Kinds is the runners'
	// *runner.Registry refuses a cursor of the wrong type at once
	// (ErrInvalidStartCursor).
	StartCursor any
}

// Result is the outcome of one enqueue.
type Result struct {
	// Job is the job as enqueued (for a duplicate: as it would have been,
	// with ID set to the existing job's id).
	Job *jobtype.
		// Duplicate means nothing was added: a job holding the same UniqueKey
		// exists, or the job's chosen ID was enqueued within Config.IDRetention.
		Job

	Duplicate bool
	// Scheduled means the job waits in the scheduled set until it is due.
	Scheduled bool
}

// Params is one job of EnqueueMany.
type Params struct {
	Kind string
	Args any
	Opts *EnqueueOpts
}

// Enqueue adds one job of kind with args (any value encoding/json accepts; a
// json.RawMessage is used as is).
//
// The kind is checked against Config.Kinds when set. EnqueueArgs takes the
// kind from the arguments' type instead.
func (c *Client) Enqueue(ctx context.Context, kind string, args any, opts *EnqueueOpts) (*Result, error) {
	res, err := c.EnqueueMany(ctx, []Params{{Kind: kind, Args: args, Opts: opts}})
	if err != nil {
		return nil, err
	}
	return &res[0], nil
}

// EnqueueArgs adds a job whose kind is named by its arguments' type (see
// JobArgs), so a misspelt kind cannot compile.
func (c *Client) EnqueueArgs(ctx context.Context, args JobArgs, opts *EnqueueOpts) (*Result, error) {
	return c.Enqueue(ctx, args.Kind(), args, opts)
}

type pending struct {
	job *jobtype.Job
	ev  jobtype.Event
	new rdb.NewJob
}

// EnqueueMany adds jobs in as few round trips as it can (one per 500 jobs).
// Results are in the order of params. If a job fails to build (bad args, a
// middleware error), nothing is added.
func (c *Client) EnqueueMany(ctx context.Context, params []Params) ([]Result, error) {
	now := c.now()
	batch := make([]pending, 0, len(params))
	for i, p := range params {
		pj, err := c.build(ctx, now, p)
		if err != nil {
			if len(params) > 1 {
				return nil, fmt.Errorf("queue: job %d of %d: %w", i+1, len(params), err)
			}
			return nil, err
		}
		batch = append(batch, pj)
	}
	out := make([]Result, 0, len(batch))
	for start := 0; start < len(batch); start += enqueueChunk {
		chunk := batch[start:min(start+enqueueChunk, len(batch))]
		jobs := make([]rdb.NewJob, len(chunk))
		for i := range chunk {
			jobs[i] = chunk[i].new
		}
		replies, err := c.db.Enqueue(ctx, now, jobs)
		if err != nil {
			return nil, fmt.Errorf("queue: enqueue %d jobs: %w", len(jobs), err)
		}
		for i, r := range replies {
			j := chunk[i].job
			switch r.Status {
			case rdb.StatusQueued:
				c.ev.Handle(ctx, chunk[i].ev)
				out = append(out, Result{Job: j})
			case rdb.StatusScheduled:
				c.ev.Handle(ctx, chunk[i].ev)
				out = append(out, Result{Job: j, Scheduled: true})
			case rdb.StatusDuplicate:
				j.ID = r.ID
				out = append(out, Result{Job: j, Duplicate: true})
			default:
				return nil, fmt.Errorf("queue: unexpected enqueue status %d for job %s", r.Status, j.ID)
			}
		}
	}
	return out, nil
}

// build runs the middleware on a new job and encodes it.
func (c *Client) build(ctx context.Context, now time.Time, p Params) (pending, error) {
	if p.Kind == "" {
		if a, ok := p.Args.(JobArgs); ok {
			p.Kind = a.Kind()
		}
	}
	if err := checkName("kind", p.Kind); err != nil {
		return pending{}, err
	}
	if c.cfg.Kinds != nil && !c.cfg.Kinds.Known(p.Kind) {
		return pending{}, fmt.Errorf("%w: %q", ErrUnknownKind, p.Kind)
	}
	var o EnqueueOpts
	if p.Opts != nil {
		o = *p.Opts
	}
	if o.Queue == "" {
		o.Queue = QueueDefault
	}
	if o.MaxAttempts < 0 || o.UniqueFor < 0 {
		return pending{}, errors.New("queue: MaxAttempts and UniqueFor must not be negative")
	}
	id := o.ID
	if id == "" {
		id = NewID()
	} else if err := checkName("job id", id); err != nil {
		return pending{}, err
	}
	args, err := encodeArgs(p.Args)
	if err != nil {
		return pending{}, fmt.Errorf("queue: encode args of %s: %w", p.Kind, err)
	}
	meta := o.Meta
	if o.StartCursor != nil {
		raw, err := json.Marshal(o.StartCursor)
		if err != nil {
			return pending{}, fmt.Errorf("queue: encode start cursor of %s: %w", p.Kind, err)
		}
		if chk, ok := c.cfg.Kinds.(StartCursorChecker); ok {
			if err := chk.CheckStartCursor(p.Kind, raw); err != nil {
				return pending{}, fmt.Errorf("%w of %s: %w", ErrInvalidStartCursor, p.Kind, err)
			}
		}
		meta = maps.Clone(meta)
		if meta == nil {
			meta = map[string]string{}
		}
		meta[jobtype.MetaStartCursor] = string(raw)
	}
	j := &jobtype.Job{
		ID:          id,
		Kind:        p.Kind,
		Queue:       o.Queue,
		Args:        args,
		MaxAttempts: o.MaxAttempts,
		EnqueuedAt:  now.Truncate(time.Microsecond),
		UniqueKey:   o.UniqueKey,
		Meta:        meta,
		Attempt:     1,
	}
	var due time.Time
	switch {
	case !o.At.IsZero():
		due = o.At
	case o.In > 0:
		due = now.Add(o.In) // at most ~292 years ahead: Add saturates
	}
	if due.After(maxDue) {
		return pending{}, fmt.Errorf("%w: job %s due at %s, after %s", ErrInvalidSchedule, p.Kind,
			due.UTC().Format(time.RFC3339), maxDue.Format(time.DateOnly))
	}
	var out pending
	final := func(ctx context.Context, j *jobtype.Job) error {
		if err := checkName("queue", j.Queue); err != nil {
			return err
		}
		var keepID time.Duration
		if o.ID != "" || j.ID != id { // chosen by the caller or a middleware
			if err := checkName("job id", j.ID); err != nil {
				return err
			}
			keepID = c.cfg.IDRetention
		}
		env, err := rdb.EncodeJob(j)
		if err != nil {
			return err
		}
		typ := jobtype.EventEnqueued
		var runAt *time.Time
		dueMs := int64(0)
		if due.After(now) {
			typ = jobtype.EventScheduled
			runAt = &due
			dueMs = due.UnixMilli()
		}
		ev := jobtype.NewEvent(typ, j, now)
		ev.RunAt = runAt
		out = pending{job: j, ev: ev, new: rdb.NewJob{
			ID: j.ID, Queue: j.Queue, Envelope: env, Due: dueMs,
			UniqueHash: rdb.UniqueHash(j.UniqueKey), UniqueTTLMs: o.UniqueFor.Milliseconds(),
			Event: c.ev.Encode(ctx, ev), KeepIDMs: keepID.Milliseconds(),
		}}
		return nil
	}
	if err := chain(c.cfg.Middleware, final)(ctx, j); err != nil {
		return pending{}, err
	}
	if out.job == nil {
		return pending{}, fmt.Errorf("queue: middleware returned without calling next for job %s", j.Kind)
	}
	return out, nil
}

func chain(mw []Middleware, final func(context.Context, *jobtype.Job) error) func(context.Context, *jobtype.Job) error {
	next := final
	for i := len(mw) - 1; i >= 0; i-- {
		m, inner := mw[i], next
		next = func(ctx context.Context, j *jobtype.Job) error { return m(ctx, j, inner) }
	}
	return next
}

func encodeArgs(args any) (json.RawMessage, error) {
	switch a := args.(type) {
	case json.RawMessage:
		if !json.Valid(a) {
			return nil, errors.New("args are not valid JSON")
		}
		return a, nil
	case nil:
		return json.RawMessage("null"), nil
	}
	return json.Marshal(args)
}

// CancelPendingTTL is how long a cancellation stays pending for a job that
// was not found where it could be removed at once (a running job, or one
// moving while Cancel looked for it).
const CancelPendingTTL = 7 * 24 * time.Hour

// Cancel cancels the job with id. A job waiting in a queue, the scheduled,
// retry or dead set is removed at once and its uniqueness key released. A
// running job is stopped by its runner within about a second: an iterable
// job with OnStop(Cancelled), a plain job by cancelling its context; it is
// not retried or re-enqueued. Cancel returns the state the job was in, or
// ErrNotFound.
//
// The cancellation is recorded first, so a job that moves while Cancel looks
// for it (fetched, re-enqueued, retried) is still cancelled: a runner drops
// it when it next fetches it. Finding a queued job scans its queue from the
// tail (as Sidekiq's API does); cancel jobs in very long queues sparingly.
func (c *Client) Cancel(ctx context.Context, id string) (jobtype.State, error) {
	queues, err := c.db.QueueNames(ctx)
	if err != nil {
		return "", fmt.Errorf("queue: cancel %s: list queues: %w", id, err)
	}
	// Twice: a job that moved while the first pass looked for it is found
	// by the second.
	for range 2 {
		st, err := c.cancelOnce(ctx, id, queues)
		if err != nil || st != "" {
			return st, err
		}
	}
	if err := c.db.ForgetCancels(ctx, id, queues); err != nil {
		return "", fmt.Errorf("queue: cancel %s: %w", id, err)
	}
	return "", fmt.Errorf("%w: %s", ErrNotFound, id)
}

// cancelOnce records the cancellation of id in every queue (a job never
// changes queue, but Cancel does not know its queue), and carries it out
// where the job is found: in a sorted set (removed), running (its runner
// stops it) or waiting in a queue (removed). "" means it was not found.
func (c *Client) cancelOnce(ctx context.Context, id string, queues []string) (jobtype.State, error) {
	for _, q := range queues {
		st, err := c.cancelInSets(ctx, q, id)
		if err != nil {
			return "", err
		}
		if st == jobtype.StateRunning {
			return st, nil
		}
		if st != "" {
			c.forget(ctx, id)
			return st, c.db.ForgetCancels(ctx, id, slices.DeleteFunc(slices.Clone(queues), func(s string) bool { return s == q }))
		}
	}
	for _, q := range queues {
		ev, removed, err := c.removeQueued(ctx, q, id, jobtype.EventCancelled)
		if err != nil {
			return "", fmt.Errorf("queue: cancel %s: %w", id, err)
		}
		if removed {
			c.forget(ctx, id)
			c.ev.Handle(ctx, ev)
			return jobtype.StateQueued, c.db.ForgetCancels(ctx, id, queues)
		}
	}
	return "", nil
}

// cancelInSets records the cancellation of id in queue q and removes the job
// if it waits in one of q's sorted sets, or finds it running ("" if
// neither). The cancelled event of
// such a job is built from its envelope, read first (see move).
func (c *Client) cancelInSets(ctx context.Context, q, id string) (jobtype.State, error) {
	check := c.ev.On()
	for range maxRereads {
		var env string
		if check {
			var err error
			if env, err = c.db.ParkedEnvelope(ctx, q, id); err != nil {
				return "", fmt.Errorf("queue: cancel %s: read job: %w", id, err)
			}
		}
		now := c.now()
		ev := eventFrom(jobtype.EventCancelled, id, env, now)
		st, err := c.db.Cancel(ctx, q, now, id, c.ev.Encode(ctx, ev), CancelPendingTTL, check, env)
		if err != nil {
			return "", fmt.Errorf("queue: cancel %s: %w", id, err)
		}
		switch st {
		case rdb.CancelChanged:
			continue
		case "":
			return "", nil
		case string(jobtype.StateRunning):
			return jobtype.StateRunning, nil
		}
		c.ev.Handle(ctx, ev)
		return jobtype.State(st), nil
	}
	return "", fmt.Errorf("queue: cancel %s: the job kept changing while it was cancelled; try again", id)
}

// removeQueued removes job id from queue q, scanning from the tail so that jobs taken from the head meanwhile cannot
// make it skip any, and emits an event of type t built from the envelope it
// removed, which it returns.
func (c *Client) removeQueued(ctx context.Context, q, id string, t jobtype.EventType) (jobtype.Event, bool, error) {
	prefix := "1|" + id + "|"
	const page = 1000
	{
		// Negative indexes count from the tail: taking jobs from the head
		// does not move them, and enqueuing at the tail only moves jobs
		// toward pages not yet read.
		for end := int64(-1); ; end -= page {
			envs, err := c.db.QueueRange(ctx, q, end-page+1, end)
			if err != nil {
				return jobtype.Event{}, false, err
			}
			for i := len(envs) - 1; i >= 0; i-- {
				if !strings.HasPrefix(envs[i], prefix) {
					continue
				}
				// The script removes exactly this envelope, so the event
				// describes the job removed.
				ev := eventFrom(t, id, envs[i], c.now())
				if ev.Queue == "" {
					ev.Queue = q
				}
				ok, err := c.db.RemoveQueued(ctx, q, id, envs[i], c.ev.Encode(ctx, ev))
				if err != nil || ok {
					return ev, ok, err
				}
			}
			if len(envs) < page {
				break
			}
		}
	}
	return jobtype.Event{}, false, nil
}

// Namespace returns the namespace the client works in.
func (c *Client) Namespace() string { return c.cfg.Namespace }
