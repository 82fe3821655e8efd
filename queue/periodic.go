package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/iterjob/iterjob/internal/periodic"
)

// ErrInvalidPeriodic is matched by the error of AddPeriodic (and of
// runner.New for Config.Periodic) for a schedule that cannot run: a bad
// name, spec, time zone or kind.
var ErrInvalidPeriodic = errors.New("queue: invalid periodic job")

// MissedPolicy says what a schedule does with ticks that passed while no
// runner could enqueue them (the whole fleet was down, Redis was
// unreachable).
type MissedPolicy int

const (
	// MissedSkip drops missed ticks. When runners find ticks past, the
	// latest one is still enqueued if it is at most PeriodicJob.Grace late
	// (so a deploy that overlaps a tick costs nothing); every earlier one
	// is dropped. The default.
	MissedSkip MissedPolicy = iota
	// MissedRunOnce enqueues one job for all the missed ticks together,
	// under the latest tick, however late: never a burst.
	MissedRunOnce
)

// PeriodicGraceDefault is the default PeriodicJob.Grace.
const PeriodicGraceDefault = periodic.GraceDefault

// PeriodicJob is a schedule: a job enqueued at every tick of Spec, exactly
// once per tick across all the runners of the namespace.
type PeriodicJob struct {
	// Name identifies the schedule (1-100 of A-Z a-z 0-9 _ . -). Adding a
	// schedule under an existing name replaces it. Required.
	Name string
	// Spec is when it ticks: five cron fields ("*/15 * * * *": minute,
	// hour, day of month, month, day of week), or six with seconds first
	// ("*/10 * * * * *"); a descriptor (@yearly, @monthly, @weekly, @daily,
	// @hourly); or "@every <duration>" ("@every 90s", at least 1s, ticks
	// counted from when a runner first saw the schedule). Required.
	Spec string
	// TimeZone is the IANA time zone cron fields are read in
	// ("Europe/Paris"). Default UTC, whatever the hosts' zones.
	TimeZone string
	// Kind and Args are the job's, as for Enqueue. Kind is required.
	Kind string
	Args any
	// Queue, MaxAttempts and Meta are as in EnqueueOpts. The job's Meta
	// also gets "periodic" (the schedule's name) and "periodic_tick" (the
	// tick, RFC 3339).
	Queue       string
	MaxAttempts int
	Meta        map[string]string
	// Missed: see MissedPolicy. Default MissedSkip.
	Missed MissedPolicy
	// Grace is how late a tick may still be enqueued under MissedSkip.
	// Zero means PeriodicGraceDefault.
	Grace time.Duration
}

// PeriodicInfo is a schedule as the admin API lists it.
type PeriodicInfo struct {
	// PeriodicJob is the schedule, its Args as JSON (json.RawMessage).
	PeriodicJob
	// NextRun is the next tick to be enqueued. It may be in the past while
	// no runner is up (the tick then counts as missed).
	NextRun time.Time
	// LastTick is the last tick enqueued, LastEnqueuedAt when, and
	// LastJobID its job (see Job). Zero until the first tick.
	LastTick       time.Time
	LastEnqueuedAt time.Time
	LastJobID      string
}

// def checks p and returns it as stored in Redis.
func (p PeriodicJob) def() (*periodic.Def, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidPeriodic, p.Name, fmt.Sprintf(format, a...))
	}
	if p.Name == "" || len(p.Name) > 100 || strings.Contains(p.Name, ":") || checkName("name", p.Name) != nil {
		return nil, bad("the name must be 1-100 of A-Z a-z 0-9 _ . -")
	}
	if _, err := periodic.Parse(p.Spec, p.TimeZone); err != nil {
		return nil, bad("%v", err)
	}
	if err := checkName("kind", p.Kind); err != nil {
		return nil, bad("%v", err)
	}
	q := p.Queue
	if q == "" {
		q = QueueDefault
	}
	if err := checkName("queue", q); err != nil {
		return nil, bad("%v", err)
	}
	if p.MaxAttempts < 0 || p.Grace < 0 {
		return nil, bad("MaxAttempts and Grace must not be negative")
	}
	args, err := encodeArgs(p.Args)
	if err != nil {
		return nil, bad("encode args: %v", err)
	}
	d := &periodic.Def{
		Name: p.Name, Spec: p.Spec, TimeZone: p.TimeZone, Kind: p.Kind, Args: args, Queue: q,
		MaxAttempts: p.MaxAttempts, Meta: p.Meta, GraceMs: p.Grace.Milliseconds(), Missed: periodic.MissedSkip,
	}
	switch p.Missed {
	case MissedSkip:
	case MissedRunOnce:
		d.Missed = periodic.MissedRunOnce
	default:
		return nil, bad("unknown MissedPolicy %d", p.Missed)
	}
	return d, nil
}

// Validate reports whether p can be added (an error matching
// ErrInvalidPeriodic if not).
func (p PeriodicJob) Validate() error {
	_, err := p.def()
	return err
}

// AddPeriodic adds schedule p, or replaces the one of the same name. Every
// runner of the namespace picks it up within a second. A replacement that
// changes Spec or TimeZone starts afresh from its next tick; one that changes
// only the job (args, queue...) keeps its next tick.
func (c *Client) AddPeriodic(ctx context.Context, p PeriodicJob) error {
	d, err := p.def()
	if err != nil {
		return err
	}
	raw, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("queue: periodic job %s: %w", p.Name, err)
	}
	if _, err := c.db.PeriodicPut(ctx, d.Name, string(raw), d.Sig()); err != nil {
		return fmt.Errorf("queue: add periodic job %s: %w", p.Name, err)
	}
	return nil
}

// RemovePeriodic removes schedule name; ErrNotFound if there is none. Jobs
// it enqueued already are left as they are.
func (c *Client) RemovePeriodic(ctx context.Context, name string) error {
	ok, err := c.db.PeriodicRemove(ctx, name)
	if err != nil {
		return fmt.Errorf("queue: remove periodic job %s: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("%w: periodic job %s", ErrNotFound, name)
	}
	return nil
}

// PeriodicJobs lists the schedules, by name, with their next run and last
// enqueued tick.
func (c *Client) PeriodicJobs(ctx context.Context) ([]PeriodicInfo, error) {
	recs, err := c.db.PeriodicAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: list periodic jobs: %w", err)
	}
	now := c.now()
	out := make([]PeriodicInfo, 0, len(recs))
	for _, r := range recs {
		var d periodic.Def
		if err := json.Unmarshal([]byte(r.Def), &d); err != nil {
			return nil, fmt.Errorf("queue: periodic job %s: stored definition: %w", r.Name, err)
		}
		info := PeriodicInfo{PeriodicJob: PeriodicJob{
			Name: r.Name, Spec: d.Spec, TimeZone: d.TimeZone, Kind: d.Kind, Args: d.Args, Queue: d.Queue,
			MaxAttempts: d.MaxAttempts, Meta: d.Meta, Grace: time.Duration(d.GraceMs) * time.Millisecond,
		}, LastJobID: r.LastJobID}
		if d.Missed == periodic.MissedRunOnce {
			info.Missed = MissedRunOnce
		}
		switch {
		case r.Pending != "":
			tick, _, _, _ := periodic.PendingClaimTimes(r.Pending)
			info.NextRun = tick
		case r.Next != 0:
			info.NextRun = time.UnixMilli(r.Next)
		default:
			if s, err := periodic.Parse(d.Spec, d.TimeZone); err == nil {
				info.NextRun = s.Next(now)
			}
		}
		if r.LastTick != 0 {
			info.LastTick = time.UnixMilli(r.LastTick)
			info.LastEnqueuedAt = time.UnixMilli(r.LastAt)
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b PeriodicInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
