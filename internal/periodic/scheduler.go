package periodic

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/iterjob/iterjob/internal/rdb"
)

// Enqueuer enqueues the job of schedule d's tick under id and returns the id
// of the job in the queue (id itself, or the existing job's on a duplicate).
type Enqueuer func(ctx context.Context, d *Def, tick time.Time, id string) (string, error)

// Defaults for Config.
const (
	// ReloadDefault is the longest a scheduler goes without reading the
	// schedules, so additions and removals reach it within this time.
	ReloadDefault = time.Second
	// PendingTimeoutDefault is how long a claimed tick may stay pending
	// before another process finishes its enqueue.
	PendingTimeoutDefault = 5 * time.Second
)

// Config configures a Scheduler.
type Config struct {
	DB      *rdb.DB
	Enqueue Enqueuer
	Logger  *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Reload: see ReloadDefault.
	Reload time.Duration
	// PendingTimeout: see PendingTimeoutDefault.
	PendingTimeout time.Duration
}

// Scheduler enqueues the due ticks of every schedule in its namespace.
type Scheduler struct {
	cfg   Config
	mu    sync.Mutex
	cache map[string]parsed // by definition JSON
	bad   map[string]bool   // definitions already logged as unusable
	wake  chan struct{}
}

type parsed struct {
	def   *Def
	sched Schedule
}

// New returns a scheduler; Tick runs one pass, Run loops.
func New(cfg Config) *Scheduler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Reload <= 0 {
		cfg.Reload = ReloadDefault
	}
	if cfg.PendingTimeout <= 0 {
		cfg.PendingTimeout = PendingTimeoutDefault
	}
	return &Scheduler{cfg: cfg, cache: map[string]parsed{}, bad: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// Wake makes a running loop read the schedules at once.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run calls Tick until ctx ends, sleeping until the earliest next tick (at
// most Reload) in between.
func (s *Scheduler) Run(ctx context.Context) {
	for ctx.Err() == nil {
		wake, err := s.Tick(ctx)
		d := s.cfg.Reload
		if err != nil {
			if ctx.Err() == nil {
				s.cfg.Logger.ErrorContext(ctx, "periodic: reading schedules failed", slog.Any("error", err))
			}
		} else if w := wake.Sub(s.cfg.Now()); w < d {
			d = max(w, 10*time.Millisecond)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-s.wake:
		}
		t.Stop()
	}
}

// Tick reads every schedule and enqueues, claims or skips the ticks due at
// the clock's now. It returns when the next tick is due (now+Reload at
// most). Errors of single schedules are logged; the error returned is one of
// reading the schedules.
func (s *Scheduler) Tick(ctx context.Context) (time.Time, error) {
	recs, err := s.cfg.DB.PeriodicAll(ctx)
	if err != nil {
		return time.Time{}, err
	}
	now := s.cfg.Now()
	wake := now.Add(s.cfg.Reload)
	s.mu.Lock()
	defer s.mu.Unlock()
	live := make(map[string]bool, len(recs))
	for _, r := range recs {
		live[r.Def] = true
		p, ok := s.parse(ctx, r)
		if !ok {
			continue
		}
		if w := s.one(ctx, r, p, now); !w.IsZero() && w.Before(wake) {
			wake = w
		}
	}
	for k := range s.cache {
		if !live[k] {
			delete(s.cache, k)
		}
	}
	return wake, nil
}

func (s *Scheduler) parse(ctx context.Context, r *rdb.PeriodicRecord) (parsed, bool) {
	if p, ok := s.cache[r.Def]; ok {
		return p, true
	}
	if s.bad[r.Def] {
		return parsed{}, false
	}
	var d Def
	err := json.Unmarshal([]byte(r.Def), &d)
	var sch Schedule
	if err == nil {
		sch, err = Parse(d.Spec, d.TimeZone)
	}
	if err != nil {
		s.bad[r.Def] = true
		s.cfg.Logger.ErrorContext(ctx, "periodic: unusable schedule; remove it or add it again",
			slog.String("schedule", r.Name), slog.Any("error", err))
		return parsed{}, false
	}
	p := parsed{def: &d, sched: sch}
	s.cache[r.Def] = p
	return p, true
}

// one handles one schedule at now and returns when to look at it again (zero:
// at the next reload).
func (s *Scheduler) one(ctx context.Context, r *rdb.PeriodicRecord, p parsed, now time.Time) time.Time {
	log := s.cfg.Logger.With(slog.String("schedule", r.Name))
	if r.Pending != "" {
		_, _, at, ok := PendingClaimTimes(r.Pending)
		if !ok {
			log.ErrorContext(ctx, "periodic: malformed claim", slog.String("claim", r.Pending))
			return time.Time{}
		}
		if due := at.Add(s.cfg.PendingTimeout); now.Before(due) {
			return due
		}
		// Its claimer died or failed to enqueue: finish the claim.
		s.finish(ctx, log, r.Name, p.def, r.Pending)
		return now
	}
	if r.Next == 0 {
		next := p.sched.Next(now)
		if next.IsZero() {
			return time.Time{}
		}
		if err := s.cfg.DB.PeriodicInit(ctx, r.Name, r.Version, next.UnixMilli()); err != nil {
			log.ErrorContext(ctx, "periodic: setting the first tick failed", slog.Any("error", err))
		}
		return next
	}
	next := time.UnixMilli(r.Next)
	if now.Before(next) {
		return next
	}
	tick := p.sched.Latest(next, now)
	after := p.sched.Next(tick)
	late := now.Sub(tick)
	enqueue := p.def.Missed == MissedRunOnce || late <= p.def.Grace()
	res, pending, err := s.cfg.DB.PeriodicClaim(ctx, r.Name, r.Version, r.Next, tick.UnixMilli(), after.UnixMilli(), enqueue, now.UnixMilli())
	if err != nil {
		log.ErrorContext(ctx, "periodic: claiming a tick failed", slog.Any("error", err))
		return time.Time{}
	}
	switch res {
	case rdb.ClaimClaimed:
		if tick.After(next) {
			log.WarnContext(ctx, "periodic: ticks missed; enqueuing the latest only",
				slog.Time("first_missed", next), slog.Time("tick", tick))
		}
		s.finish(ctx, log, r.Name, p.def, pending)
		return after
	case rdb.ClaimSkipped:
		log.WarnContext(ctx, "periodic: ticks missed; skipped (more than the grace late)",
			slog.Time("first_missed", next), slog.Time("last_missed", tick), slog.Duration("late", late))
		return after
	}
	return now // another process moved it: read it again
}

// finish enqueues a claimed tick and commits it.
func (s *Scheduler) finish(ctx context.Context, log *slog.Logger, name string, d *Def, pending string) {
	tick, _, _, ok := PendingClaimTimes(pending)
	if !ok {
		return
	}
	jid, err := s.cfg.Enqueue(ctx, d, tick, JobID(name, tick))
	if err != nil {
		log.ErrorContext(ctx, "periodic: enqueue failed; another try after the claim times out",
			slog.Time("tick", tick), slog.Any("error", err))
		return
	}
	if _, err := s.cfg.DB.PeriodicCommit(ctx, name, pending, jid, s.cfg.Now().UnixMilli()); err != nil {
		log.ErrorContext(ctx, "periodic: recording an enqueued tick failed", slog.Any("error", err))
	}
}

// PendingClaimTimes is rdb.PendingClaim with times.
func PendingClaimTimes(p string) (tick, nextAfter, claimedAt time.Time, ok bool) {
	t, n, c, ok := rdb.PendingClaim(p)
	return time.UnixMilli(t), time.UnixMilli(n), time.UnixMilli(c), ok
}
