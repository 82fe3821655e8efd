// Package periodic runs periodic schedules: it parses their timing (cron
// specs and @every intervals, robfig/cron/v3) and enqueues one job per tick
// across any number of processes, coordinating through internal/rdb.
//
// Every runner process runs a Scheduler. They share one record per schedule
// in Redis: the next tick due. When it is due, a process claims it (one
// claim per tick, decided in Redis), enqueues the job under the id
// "periodic:<name>:<tick Unix seconds>" and commits. A process that dies
// between claim and commit leaves the claim for the others to finish after
// PendingTimeout; the job id makes that second enqueue add nothing if the
// first reached Redis.
//
// Missed ticks: when a process finds several ticks past (the fleet was down,
// or every process was busy), only the latest one counts; the earlier ones
// are dropped, never enqueued in a burst. The latest one is enqueued if it
// is at most Grace late, or whatever its lateness with MissedRunOnce.
package periodic

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Missed policies (Def.Missed).
const (
	MissedSkip    = "skip"
	MissedRunOnce = "run_once"
)

// GraceDefault is how late a tick may be enqueued under MissedSkip.
const GraceDefault = time.Minute

// Def is a schedule as stored in Redis.
type Def struct {
	Name        string            `json:"name"`
	Spec        string            `json:"spec"`
	TimeZone    string            `json:"tz,omitempty"`
	Kind        string            `json:"kind"`
	Args        json.RawMessage   `json:"args"`
	Queue       string            `json:"queue,omitempty"`
	MaxAttempts int               `json:"max_attempts,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
	Missed      string            `json:"missed,omitempty"`
	GraceMs     int64             `json:"grace_ms,omitempty"`
}

// Sig is the timing signature of d: a change resets the next tick.
func (d *Def) Sig() string { return d.Spec + "\x00" + d.TimeZone }

// Grace is d's grace, GraceDefault if unset.
func (d *Def) Grace() time.Duration {
	if d.GraceMs <= 0 {
		return GraceDefault
	}
	return time.Duration(d.GraceMs) * time.Millisecond
}

// Schedule is a parsed timing.
type Schedule struct {
	s   cron.Schedule
	loc *time.Location
}

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ErrSpec is matched by every error of Parse.
var ErrSpec = errors.New("invalid schedule")

// Parse parses a spec (five cron fields, or six with seconds first; a
// descriptor such as @hourly; or @every <duration>, at least one second) in
// time zone tz (an IANA name; "" is UTC). A spec that never fires is an
// error.
func Parse(spec, tz string) (Schedule, error) {
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return Schedule{}, fmt.Errorf("%w: %q: set the time zone apart, not in the spec", ErrSpec, spec)
	}
	loc := time.UTC
	if tz != "" {
		var err error
		if loc, err = time.LoadLocation(tz); err != nil {
			return Schedule{}, fmt.Errorf("%w: time zone %q: %v", ErrSpec, tz, err)
		}
	}
	if d, ok := strings.CutPrefix(spec, "@every "); ok {
		if dd, err := time.ParseDuration(strings.TrimSpace(d)); err == nil && dd < time.Second {
			return Schedule{}, fmt.Errorf("%w: %q: @every needs at least one second", ErrSpec, spec)
		}
	}
	s, err := parser.Parse(spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("%w: %q: %v", ErrSpec, spec, err)
	}
	sch := Schedule{s: s, loc: loc}
	if sch.Next(time.Now()).IsZero() {
		return Schedule{}, fmt.Errorf("%w: %q never fires", ErrSpec, spec)
	}
	return sch, nil
}

// Next is the first tick strictly after t (zero if none within five years).
func (s Schedule) Next(t time.Time) time.Time { return s.s.Next(t.In(s.loc)) }

// Latest is the latest tick at or before now, starting from tick first (a
// tick at or before now). It costs a few calls of Next whatever the gap.
func (s Schedule) Latest(first, now time.Time) time.Time {
	if n := s.Next(first); n.IsZero() || n.After(now) {
		return first
	}
	if cd, ok := s.s.(cron.ConstantDelaySchedule); ok {
		return first.Add(now.Sub(first) / cd.Delay * cd.Delay)
	}
	t := first
	// Find a tick in (now-back, now], back doubling: each probe is one
	// Next, and the walk below covers at most twice the smallest window
	// holding a tick.
	for back := time.Minute; now.Sub(first) > back; back *= 2 {
		if c := s.Next(now.Add(-back)); !c.IsZero() && !c.After(now) {
			t = c
			break
		}
	}
	for {
		n := s.Next(t)
		if n.IsZero() || n.After(now) {
			return t
		}
		t = n
	}
}

// JobID is the id of the job of schedule name's tick.
func JobID(name string, tick time.Time) string {
	return fmt.Sprintf("periodic:%s:%d", name, tick.Unix())
}
