package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/jobtype"
)

// This file is the admin API: what a dashboard or an operator's script needs
// to see and steer the queue. Every call is a handful of round trips; none
// blocks Redis for long (listings are paginated).

// Set names one of the sorted sets jobs wait in.
type Set string

// The sets.
const (
	SetScheduled Set = "scheduled"
	SetRetry     Set = "retry"
	SetDead      Set = "dead"
)

func (s Set) valid() bool { return s == SetScheduled || s == SetRetry || s == SetDead }

// ErrInvalidSet is returned for a Set that is not one of the three.
var ErrInvalidSet = errors.New("queue: invalid set")

// QueueInfo describes one queue.
type QueueInfo struct {
	Name string
	// Size is the number of jobs waiting.
	Size int64
	// Latency is how long the job at the head has waited since it was
	// enqueued; zero for an empty queue.
	Latency time.Duration
	Paused  bool
}

// Queues lists every queue used in the namespace, by name. A queue whose
// head job cannot be decoded is listed like any other (its latency read
// from the payload's header when that much is readable, else zero); see
// QueueJobs for the job itself.
func (c *Client) Queues(ctx context.Context) ([]QueueInfo, error) {
	names, err := c.db.QueueNames(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: list queues: %w", err)
	}
	states, err := c.db.QueueStates(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("queue: describe queues: %w", err)
	}
	now := c.now()
	out := make([]QueueInfo, len(states))
	for i, st := range states {
		out[i] = QueueInfo{Name: st.Name, Size: st.Size, Paused: st.Paused}
		if us, ok := rdb.EnvelopeEnqueuedAt(st.Head); ok {
			out[i].Latency = max(now.Sub(time.UnixMicro(us)), 0)
		}
	}
	return out, nil
}

// PauseQueue stops every runner fetching from queue q until ResumeQueue;
// jobs keep being enqueued to it, and running jobs go on.
func (c *Client) PauseQueue(ctx context.Context, q string) error {
	if err := checkName("queue", q); err != nil {
		return err
	}
	if err := c.db.PauseQueue(ctx, q); err != nil {
		return fmt.Errorf("queue: pause %s: %w", q, err)
	}
	return nil
}

// ResumeQueue lets runners fetch from queue q again, waking idle ones.
func (c *Client) ResumeQueue(ctx context.Context, q string) error {
	if err := checkName("queue", q); err != nil {
		return err
	}
	if err := c.db.ResumeQueue(ctx, q); err != nil {
		return fmt.Errorf("queue: resume %s: %w", q, err)
	}
	return nil
}

// QueueJobs lists up to limit jobs of queue q from position offset (0 = the
// next to run). A job whose payload cannot be decoded is listed with its
// RawPayload and the parse error as its LastError; a runner sends it to the
// dead set when it fetches it.
func (c *Client) QueueJobs(ctx context.Context, q string, offset, limit int) ([]*jobtype.Job, error) {
	if offset < 0 || limit <= 0 {
		return nil, errors.New("queue: offset must be ≥ 0 and limit > 0")
	}
	envs, err := c.db.QueueRange(ctx, q, int64(offset), int64(offset+limit-1))
	if err != nil {
		return nil, fmt.Errorf("queue: list queue %s: %w", q, err)
	}
	out := make([]*jobtype.Job, 0, len(envs))
	for _, env := range envs {
		j, err := c.decode(ctx, env)
		if err != nil {
			j = &jobtype.Job{ID: rdb.EnvelopeID(env, 0), Queue: q, RawPayload: env, LastError: jobtype.NewJobError(err, rdb.DecodeTrace(err), 0, time.Time{})}
		}
		j.State = jobtype.StateQueued
		out = append(out, j)
	}
	return out, nil
}

// SetJobs lists up to limit jobs of a set from position offset, with their
// At time and last error: the scheduled and retry sets soonest due first,
// the dead set most recent death first, over all queues. A job whose payload
// cannot be decoded (in the dead set: a payload a runner could not parse) is
// listed with its RawPayload and, as its LastError, the error recorded when
// it died or else the parse error.
//
// Each queue keeps its own sets: over one queue a page costs the same at
// any offset; over several, a page at offset n reads n+limit jobs of each.
// SetJobsIn lists one queue's.
func (c *Client) SetJobs(ctx context.Context, set Set, offset, limit int) ([]*jobtype.Job, error) {
	if !set.valid() {
		return nil, fmt.Errorf("%w %q", ErrInvalidSet, set)
	}
	if offset < 0 || limit <= 0 {
		return nil, errors.New("queue: offset must be ≥ 0 and limit > 0")
	}
	names, err := c.db.QueueNames(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: list queues: %w", err)
	}
	sizes, err := c.db.SetSizes(ctx, names, string(set))
	if err != nil {
		return nil, fmt.Errorf("queue: list %s: %w", set, err)
	}
	var full []string
	for i, n := range names {
		if sizes[i] > 0 {
			full = append(full, n)
		}
	}
	rev := set == SetDead
	if len(full) <= 1 {
		if len(full) == 0 {
			return nil, nil
		}
		return c.setRange(ctx, full[0], set, offset, limit)
	}
	var all []rdb.Parked
	for _, q := range full {
		ps, err := c.db.SetRange(ctx, q, string(set), 0, int64(offset+limit-1), rev)
		if err != nil {
			return nil, fmt.Errorf("queue: list %s of %s: %w", set, q, err)
		}
		all = append(all, ps...)
	}
	slices.SortStableFunc(all, func(a, b rdb.Parked) int {
		if rev {
			return cmp.Compare(b.Score, a.Score)
		}
		return cmp.Compare(a.Score, b.Score)
	})
	if offset >= len(all) {
		return nil, nil
	}
	return c.jobsOf(ctx, set, all[offset:min(offset+limit, len(all))]), nil
}

// SetJobsIn is SetJobs over queue q only.
func (c *Client) SetJobsIn(ctx context.Context, q string, set Set, offset, limit int) ([]*jobtype.Job, error) {
	if !set.valid() {
		return nil, fmt.Errorf("%w %q", ErrInvalidSet, set)
	}
	if offset < 0 || limit <= 0 {
		return nil, errors.New("queue: offset must be ≥ 0 and limit > 0")
	}
	return c.setRange(ctx, q, set, offset, limit)
}

func (c *Client) setRange(ctx context.Context, q string, set Set, offset, limit int) ([]*jobtype.Job, error) {
	ps, err := c.db.SetRange(ctx, q, string(set), int64(offset), int64(offset+limit-1), set == SetDead)
	if err != nil {
		return nil, fmt.Errorf("queue: list %s of %s: %w", set, q, err)
	}
	return c.jobsOf(ctx, set, ps), nil
}

// jobsOf decodes parked jobs.
func (c *Client) jobsOf(ctx context.Context, set Set, ps []rdb.Parked) []*jobtype.Job {
	out := make([]*jobtype.Job, 0, len(ps))
	for _, p := range ps {
		j, err := c.decode(ctx, p.Envelope)
		if err != nil {
			j = &jobtype.Job{ID: p.ID, Queue: p.Queue, RawPayload: p.Envelope, LastError: jobtype.NewJobError(err, rdb.DecodeTrace(err), 0, time.Time{})}
		}
		if p.Error != "" {
			var jerr jobtype.JobError
			if json.Unmarshal([]byte(p.Error), &jerr) == nil {
				j.LastError = &jerr
			}
		}
		j.State = jobtype.State(set)
		j.At = time.UnixMilli(int64(p.Score))
		out = append(out, j)
	}
	return out
}

// decode decodes a stored payload for a listing. A decoder panic (a bug:
// stored data must never crash a caller) is logged with its stack.
func (c *Client) decode(ctx context.Context, env string) (*jobtype.Job, error) {
	j, err := rdb.DecodeJob(env, c.parse)
	if trace := rdb.DecodeTrace(err); trace != nil {
		c.cfg.Logger.ErrorContext(ctx, "queue: payload decoder panicked", slog.String("jid", rdb.EnvelopeID(env, 0)),
			slog.Any("error", err), slog.String("stack", string(trace)))
	}
	return j, err
}

// SetSize returns the number of jobs in a set.
func (c *Client) SetSize(ctx context.Context, set Set) (int64, error) {
	if !set.valid() {
		return 0, fmt.Errorf("%w %q", ErrInvalidSet, set)
	}
	names, err := c.db.QueueNames(ctx)
	if err != nil {
		return 0, fmt.Errorf("queue: list queues: %w", err)
	}
	sizes, err := c.db.SetSizes(ctx, names, string(set))
	if err != nil {
		return 0, fmt.Errorf("queue: size of %s: %w", set, err)
	}
	var n int64
	for _, s := range sizes {
		n += s
	}
	return n, nil
}

// maxRereads bounds how often an admin call reads a job again because it
// moved between the read and the change (each time it came back, it changed).
const maxRereads = 10

// move moves job id out of set to target, emitting an event of type t built
// from the job (with error text errText, for a dead event).
//
// The event is built in Go from the job's envelope, read first, and the
// script moves the job only if its envelope is still that one, so the event
// published with the move describes the job as it was moved. If it is not
// (the job ran meanwhile and came back), move reads it again.
func (c *Client) move(ctx context.Context, set Set, id, target string, t jobtype.EventType, errText string) error {
	if !set.valid() {
		return fmt.Errorf("%w %q", ErrInvalidSet, set)
	}
	names, err := c.db.QueueNames(ctx)
	if err != nil {
		return fmt.Errorf("queue: list queues: %w", err)
	}
	for range maxRereads {
		q, in, err := c.db.Where(ctx, id, names)
		if err != nil {
			return fmt.Errorf("queue: find %s: %w", id, err)
		}
		if in != string(set) {
			return fmt.Errorf("%w: %s in the %s set", ErrNotFound, id, set)
		}
		var env string
		if c.ev.On() {
			if env, err = c.db.ParkedEnvelope(ctx, q, id); err != nil {
				return fmt.Errorf("queue: move %s from %s to %s: read job: %w", id, set, target, err)
			}
		}
		now := c.now()
		ev := eventFrom(t, id, env, now)
		ev.Error = errText
		n, trimmed, err := c.db.Move(ctx, now, q, id, string(set), target, c.ev.Encode(ctx, ev), c.cfg.DeadMaxJobs, c.cfg.DeadMaxAge, env)
		if err != nil {
			return fmt.Errorf("queue: move %s from %s to %s: %w", id, set, target, err)
		}
		switch n {
		case rdb.MoveNotFound:
			continue // it moved: look for it again
		case rdb.MoveDone:
			if target == "delete" {
				trimmed = append(trimmed, id)
			}
			c.forget(ctx, trimmed...)
			c.ev.Handle(ctx, ev)
			return nil
		}
	}
	return fmt.Errorf("queue: move %s from %s to %s: the job kept changing while it was moved; try again", id, set, target)
}

// forget tells Config.JobData that jobs are gone for good.
func (c *Client) forget(ctx context.Context, ids ...string) {
	if len(ids) == 0 || c.cfg.JobData == nil {
		return
	}
	if err := c.cfg.JobData.Delete(ctx, ids...); err != nil {
		c.cfg.Logger.WarnContext(ctx, "queue: could not delete the data kept for jobs deleted for good", slog.Int("jobs", len(ids)), slog.Any("error", err))
	}
}

// eventFrom returns an event of type t for job id, with what its envelope env
// says of it (kind, queue, attempt, meta); only the id if it has none or
// cannot be read.
func eventFrom(t jobtype.EventType, id, env string, at time.Time) jobtype.Event {
	if env != "" {
		if j, err := rdb.DecodeJob(env, rdb.ParseJob); err == nil {
			return jobtype.NewEvent(t, j, at)
		}
	}
	return jobtype.Event{Type: t, JobID: id, At: at}
}

// RunNow moves a job from a set (scheduled, retry or dead) to the tail of its
// queue. From the dead set this is "retry": the job keeps its attempt count;
// raise MaxAttempts by enqueuing anew if it has none left. It emits an
// enqueued event.
func (c *Client) RunNow(ctx context.Context, set Set, id string) error {
	return c.move(ctx, set, id, "queue", jobtype.EventEnqueued, "")
}

// Kill moves a job from the scheduled or retry set to the dead set and emits
// a dead event.
func (c *Client) Kill(ctx context.Context, set Set, id string) error {
	if set == SetDead {
		return fmt.Errorf("%w: %s is already dead", ErrInvalidSet, id)
	}
	return c.move(ctx, set, id, "dead", jobtype.EventDead, "killed through the admin API")
}

// Delete removes a job from a set for good and emits a deleted event.
func (c *Client) Delete(ctx context.Context, set Set, id string) error {
	return c.move(ctx, set, id, "delete", jobtype.EventDeleted, "")
}

// DeleteQueued removes a waiting job from queue q (a scan of the queue, see
// Cancel) and emits a deleted event.
func (c *Client) DeleteQueued(ctx context.Context, q, id string) error {
	ev, ok, err := c.removeQueued(ctx, q, id, jobtype.EventDeleted)
	if err != nil {
		return fmt.Errorf("queue: delete %s from %s: %w", id, q, err)
	}
	if !ok {
		return fmt.Errorf("%w: %s in queue %s", ErrNotFound, id, q)
	}
	c.forget(ctx, id)
	c.ev.Handle(ctx, ev)
	return nil
}

// Process is a live worker process as seen in its last heartbeat.
type Process struct {
	ID        string
	Hostname  string
	PID       int
	Queues    []QueueWeight
	StartedAt time.Time
	// LastBeat is the time of the last heartbeat.
	LastBeat time.Time
	// Extra is what the process reported of itself (for a runner:
	// concurrency and kinds).
	Extra map[string]any
	// Busy lists the jobs it runs, with iterable jobs' progress as of their
	// last checkpoint.
	Busy []jobtype.BusyJob
}

// Processes lists the processes that heartbeat in the namespace.
func (c *Client) Processes(ctx context.Context) ([]Process, error) {
	procs, err := c.db.Procs(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: list processes: %w", err)
	}
	out := make([]Process, 0, len(procs))
	for _, pr := range procs {
		p := Process{ID: pr.ID, LastBeat: time.UnixMilli(int64(pr.Beat))}
		if pr.Info != "" {
			var info rdb.ProcessInfo
			if json.Unmarshal([]byte(pr.Info), &info) == nil {
				p.Hostname, p.PID, p.StartedAt, p.Extra = info.Hostname, info.PID, info.StartedAt, info.Extra
				for _, q := range info.Queues {
					p.Queues = append(p.Queues, QueueWeight(q))
				}
			}
		}
		if pr.Busy != "" {
			_ = json.Unmarshal([]byte(pr.Busy), &p.Busy)
		}
		out = append(out, p)
	}
	return out, nil
}

// DayStats are the counters of one UTC day.
type DayStats struct {
	Day       string // yyyy-mm-dd
	Processed int64  // jobs that succeeded
	Failed    int64  // failed attempts (each retry and each death)
}

// Stats returns the processed and failed counters of the last days UTC
// days, today first, and the all-time totals.
func (c *Client) Stats(ctx context.Context, days int) ([]DayStats, DayStats, error) {
	if days < 0 {
		return nil, DayStats{}, errors.New("queue: days must not be negative")
	}
	now := c.now()
	fields := []string{"processed", "failed"}
	out := make([]DayStats, days)
	for i := range days {
		d := rdb.Day(now.AddDate(0, 0, -i))
		out[i].Day = d
		fields = append(fields, "processed:"+d, "failed:"+d)
	}
	names, err := c.db.QueueNames(ctx)
	if err != nil {
		return nil, DayStats{}, fmt.Errorf("queue: list queues: %w", err)
	}
	vals, err := c.db.Stats(ctx, names, fields)
	if err != nil {
		return nil, DayStats{}, fmt.Errorf("queue: read stats: %w", err)
	}
	total := DayStats{Day: "total", Processed: vals[0], Failed: vals[1]}
	for i := range out {
		out[i].Processed, out[i].Failed = vals[2+2*i], vals[3+2*i]
	}
	return out, total, nil
}

// ServerInfo describes the Redis server a client talks to.
type ServerInfo struct {
	Version    string
	UsedMemory int64 // bytes
}

// Server returns the Redis server's version and the memory it uses, for
// dashboards.
func (c *Client) Server(ctx context.Context) (ServerInfo, error) {
	v, mem, err := c.db.RedisInfo(ctx)
	if err != nil {
		return ServerInfo{}, fmt.Errorf("queue: redis info: %w", err)
	}
	return ServerInfo{Version: v, UsedMemory: mem}, nil
}
