package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

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
	names, err := c.db.C.SMembers(ctx, c.db.Keys.Queues()).Result()
	if err != nil {
		return nil, fmt.Errorf("queue: list queues: %w", err)
	}
	slices.Sort(names)
	pipe := c.db.C.Pipeline()
	sizes := make([]*redis.IntCmd, len(names))
	heads := make([]*redis.StringCmd, len(names))
	paused := make([]*redis.BoolCmd, len(names))
	for i, n := range names {
		sizes[i] = pipe.LLen(ctx, c.db.Keys.Queue(n))
		heads[i] = pipe.LIndex(ctx, c.db.Keys.Queue(n), 0)
		paused[i] = pipe.SIsMember(ctx, c.db.Keys.Paused(), n)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("queue: describe queues: %w", err)
	}
	now := c.now()
	out := make([]QueueInfo, len(names))
	for i, n := range names {
		out[i] = QueueInfo{Name: n, Size: sizes[i].Val(), Paused: paused[i].Val()}
		if us, ok := rdb.EnvelopeEnqueuedAt(heads[i].Val()); ok {
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
	envs, err := c.db.C.LRange(ctx, c.db.Keys.Queue(q), int64(offset), int64(offset+limit-1)).Result()
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
// the dead set most recent death first. A job whose payload cannot be
// decoded (in the dead set: a payload a runner could not parse) is listed
// with its RawPayload and, as its LastError, the error recorded when it
// died or else the parse error.
func (c *Client) SetJobs(ctx context.Context, set Set, offset, limit int) ([]*jobtype.Job, error) {
	if !set.valid() {
		return nil, fmt.Errorf("%w %q", ErrInvalidSet, set)
	}
	if offset < 0 || limit <= 0 {
		return nil, errors.New("queue: offset must be ≥ 0 and limit > 0")
	}
	key := c.db.Keys.Prefix() + string(set)
	rng := redis.ZRangeArgs{Key: key, Start: offset, Stop: offset + limit - 1, Rev: set == SetDead}
	members, err := c.db.C.ZRangeArgsWithScores(ctx, rng).Result()
	if err != nil {
		return nil, fmt.Errorf("queue: list %s: %w", set, err)
	}
	return c.loadWaiting(ctx, set, members)
}

// loadWaiting reads the job hashes of sorted-set members.
func (c *Client) loadWaiting(ctx context.Context, set Set, members []redis.Z) ([]*jobtype.Job, error) {
	pipe := c.db.C.Pipeline()
	cmds := make([]*redis.SliceCmd, len(members))
	for i, m := range members {
		cmds[i] = pipe.HMGet(ctx, c.db.Keys.Job(m.Member.(string)), "env", "err")
	}
	if len(members) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("queue: read %s jobs: %w", set, err)
		}
	}
	out := make([]*jobtype.Job, 0, len(members))
	for i, m := range members {
		id := m.Member.(string)
		vals := cmds[i].Val()
		env, _ := vals[0].(string)
		j, err := c.decode(ctx, env)
		if err != nil {
			j = &jobtype.Job{ID: id, RawPayload: env, LastError: jobtype.NewJobError(err, rdb.DecodeTrace(err), 0, time.Time{})}
		}
		if e, _ := vals[1].(string); e != "" {
			var jerr jobtype.JobError
			if json.Unmarshal([]byte(e), &jerr) == nil {
				j.LastError = &jerr
			}
		}
		j.State = jobtype.State(set)
		j.At = time.UnixMilli(int64(m.Score))
		out = append(out, j)
	}
	return out, nil
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
	return c.db.C.ZCard(ctx, c.db.Keys.Prefix()+string(set)).Result()
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
	for range maxRereads {
		var env string
		if c.ev.On() {
			var err error
			env, err = c.db.C.HGet(ctx, c.db.Keys.Job(id), "env").Result()
			if errors.Is(err, redis.Nil) {
				return fmt.Errorf("%w: %s in the %s set", ErrNotFound, id, set)
			}
			if err != nil {
				return fmt.Errorf("queue: move %s from %s to %s: read job: %w", id, set, target, err)
			}
		}
		now := c.now()
		ev := eventFrom(t, id, env, now)
		ev.Error = errText
		n, err := c.db.Move(ctx, now, id, string(set), target, c.ev.Encode(ctx, ev), c.cfg.DeadMaxJobs, c.cfg.DeadMaxAge, env)
		if err != nil {
			return fmt.Errorf("queue: move %s from %s to %s: %w", id, set, target, err)
		}
		switch n {
		case rdb.MoveNotFound:
			return fmt.Errorf("%w: %s in the %s set", ErrNotFound, id, set)
		case rdb.MoveDone:
			c.ev.Handle(ctx, ev)
			return nil
		}
	}
	return fmt.Errorf("queue: move %s from %s to %s: the job kept changing while it was moved; try again", id, set, target)
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
	c.db.C.Del(ctx, c.db.Keys.Iter(id))
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
	ids, err := c.db.C.ZRangeWithScores(ctx, c.db.Keys.Procs(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("queue: list processes: %w", err)
	}
	pipe := c.db.C.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, z := range ids {
		cmds[i] = pipe.HMGet(ctx, c.db.Keys.Proc(z.Member.(string)), "info", "busy")
	}
	if len(ids) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("queue: read processes: %w", err)
		}
	}
	out := make([]Process, 0, len(ids))
	for i, z := range ids {
		p := Process{ID: z.Member.(string), LastBeat: time.UnixMilli(int64(z.Score))}
		vals := cmds[i].Val()
		if s, _ := vals[0].(string); s != "" {
			var info rdb.ProcessInfo
			if json.Unmarshal([]byte(s), &info) == nil {
				p.Hostname, p.PID, p.StartedAt, p.Extra = info.Hostname, info.PID, info.StartedAt, info.Extra
				for _, q := range info.Queues {
					p.Queues = append(p.Queues, QueueWeight(q))
				}
			}
		}
		if s, _ := vals[1].(string); s != "" {
			_ = json.Unmarshal([]byte(s), &p.Busy)
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
	keys := []string{c.db.Keys.Stat("processed"), c.db.Keys.Stat("failed")}
	out := make([]DayStats, days)
	for i := range days {
		d := rdb.Day(now.AddDate(0, 0, -i))
		out[i].Day = d
		keys = append(keys, c.db.Keys.StatDay("processed", d), c.db.Keys.StatDay("failed", d))
	}
	vals, err := c.db.C.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, DayStats{}, fmt.Errorf("queue: read stats: %w", err)
	}
	num := func(v any) int64 {
		s, _ := v.(string)
		var n int64
		_, _ = fmt.Sscan(s, &n)
		return n
	}
	total := DayStats{Day: "total", Processed: num(vals[0]), Failed: num(vals[1])}
	for i := range out {
		out[i].Processed, out[i].Failed = num(vals[2+2*i]), num(vals[3+2*i])
	}
	return out, total, nil
}
