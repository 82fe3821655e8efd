package rdb

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file is what the admin API reads: a handful of round trips per call,
// pipelined, none blocking Redis for long (listings are paginated).

// QueueState is what Redis holds of one queue's head.
type QueueState struct {
	Name   string
	Size   int64
	Head   string // the envelope at the head ("" for an empty queue)
	Paused bool
}

// QueueStates describes queues.
func (db *DB) QueueStates(ctx context.Context, names []string) ([]QueueState, error) {
	pipe := db.C.Pipeline()
	sizes := make([]*redis.IntCmd, len(names))
	heads := make([]*redis.StringCmd, len(names))
	paused := make([]*redis.IntCmd, len(names))
	for i, n := range names {
		k := db.Keys.Q(n)
		sizes[i] = pipe.LLen(ctx, k.Jobs())
		heads[i] = pipe.LIndex(ctx, k.Jobs(), 0)
		paused[i] = pipe.Exists(ctx, k.Paused())
	}
	if len(names) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
	}
	out := make([]QueueState, len(names))
	for i, n := range names {
		out[i] = QueueState{Name: n, Size: sizes[i].Val(), Head: heads[i].Val(), Paused: paused[i].Val() == 1}
	}
	return out, nil
}

// QueueRange returns the envelopes of queue q from start to stop (LRANGE
// indexes: negative ones count from the tail).
func (db *DB) QueueRange(ctx context.Context, q string, start, stop int64) ([]string, error) {
	return db.C.LRange(ctx, db.Keys.Q(q).Jobs(), start, stop).Result()
}

// Parked is a job waiting in a sorted set, as stored.
type Parked struct {
	ID, Queue string
	Score     float64 // due time or time of death, ms
	Envelope  string  // "" if missing
	Error     string  // the last error's JSON, "" for none
}

// SetRange lists jobs of a queue's sorted set set ("scheduled", "retry",
// "dead") by rank, soonest (or, with rev, latest) first.
func (db *DB) SetRange(ctx context.Context, q, set string, start, stop int64, rev bool) ([]Parked, error) {
	k := db.Keys.Q(q)
	zs, err := db.C.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: k.Set(set), Start: start, Stop: stop, Rev: rev}).Result()
	if err != nil {
		return nil, err
	}
	return db.parked(ctx, q, zs)
}

func (db *DB) parked(ctx context.Context, q string, zs []redis.Z) ([]Parked, error) {
	if len(zs) == 0 {
		return nil, nil
	}
	k := db.Keys.Q(q)
	ids := make([]string, len(zs))
	for i, z := range zs {
		ids[i], _ = z.Member.(string)
	}
	pipe := db.C.Pipeline()
	envs := pipe.HMGet(ctx, k.Parked(), ids...)
	errs := pipe.HMGet(ctx, k.Errors(), ids...)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([]Parked, len(zs))
	for i, z := range zs {
		out[i] = Parked{ID: ids[i], Queue: q, Score: z.Score}
		out[i].Envelope, _ = envs.Val()[i].(string)
		out[i].Error, _ = errs.Val()[i].(string)
	}
	return out, nil
}

// SetSizes returns the size of a sorted set in each queue.
func (db *DB) SetSizes(ctx context.Context, queues []string, set string) ([]int64, error) {
	pipe := db.C.Pipeline()
	cmds := make([]*redis.IntCmd, len(queues))
	for i, q := range queues {
		cmds[i] = pipe.ZCard(ctx, db.Keys.Q(q).Set(set))
	}
	if len(queues) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]int64, len(queues))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// Where says where job jid waits: the queue and set ("scheduled", "retry",
// "dead") holding it, or empty strings.
func (db *DB) Where(ctx context.Context, jid string, queues []string) (q, set string, err error) {
	sets := []string{"scheduled", "retry", "dead"}
	pipe := db.C.Pipeline()
	cmds := make([]*redis.FloatCmd, 0, 3*len(queues))
	for _, q := range queues {
		for _, s := range sets {
			cmds = append(cmds, pipe.ZScore(ctx, db.Keys.Q(q).Set(s), jid))
		}
	}
	if len(cmds) == 0 {
		return "", "", nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return "", "", err
	}
	for i, c := range cmds {
		if c.Err() == nil {
			return queues[i/3], sets[i%3], nil
		}
	}
	return "", "", nil
}

// ParkedEnvelope returns the envelope of job jid parked in queue q ("" if
// none).
func (db *DB) ParkedEnvelope(ctx context.Context, q, jid string) (string, error) {
	env, err := db.C.HGet(ctx, db.Keys.Q(q).Parked(), jid).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return env, err
}

// Proc is a process's record.
type Proc struct {
	ID         string
	Beat       float64 // ms
	Info, Busy string
}

// Procs lists the registered processes.
func (db *DB) Procs(ctx context.Context) ([]Proc, error) {
	zs, err := db.C.ZRangeWithScores(ctx, db.Keys.Procs(), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	pipe := db.C.Pipeline()
	cmds := make([]*redis.SliceCmd, len(zs))
	for i, z := range zs {
		cmds[i] = pipe.HMGet(ctx, db.Keys.Proc(z.Member.(string)), "info", "busy")
	}
	if len(zs) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]Proc, len(zs))
	for i, z := range zs {
		out[i] = Proc{ID: z.Member.(string), Beat: z.Score}
		vals := cmds[i].Val()
		out[i].Info, _ = vals[0].(string)
		out[i].Busy, _ = vals[1].(string)
	}
	return out, nil
}

// Stats returns counter fields (e.g. "processed", "failed:2026-11-28")
// summed over queues.
func (db *DB) Stats(ctx context.Context, queues []string, fields []string) ([]int64, error) {
	pipe := db.C.Pipeline()
	cmds := make([]*redis.SliceCmd, len(queues))
	for i, q := range queues {
		cmds[i] = pipe.HMGet(ctx, db.Keys.Q(q).Stats(), fields...)
	}
	if len(queues) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]int64, len(fields))
	for _, c := range cmds {
		for i, v := range c.Val() {
			out[i] += toInt(v)
		}
	}
	return out, nil
}

// RedisInfo returns the server's version and memory in use.
func (db *DB) RedisInfo(ctx context.Context) (version string, usedMemory int64, err error) {
	info, err := db.C.Info(ctx, "server", "memory").Result()
	if err != nil {
		return "", 0, err
	}
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
			version = v
		}
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			usedMemory = toInt(v)
		}
	}
	return version, usedMemory, nil
}

// ProcessInfo is what a process says of itself in its heartbeats.
type ProcessInfo struct {
	ID        string         `json:"id"`
	Hostname  string         `json:"hostname"`
	PID       int            `json:"pid"`
	Queues    []ProcQueue    `json:"queues"`
	Strict    bool           `json:"strict,omitempty"`
	StartedAt time.Time      `json:"started_at"`
	Extra     map[string]any `json:"extra,omitempty"`
}

// ProcQueue is a queue a process serves, with its weight.
type ProcQueue struct {
	Name   string
	Weight int
}

// HeldBy says where a process holds job jid: the queue, the process and its
// in-flight entry ("<lease>|<envelope>"), or empty strings.
func (db *DB) HeldBy(ctx context.Context, jid string, queues []string) (q, proc, entry string, err error) {
	procs, err := db.C.ZRange(ctx, db.Keys.Procs(), 0, -1).Result()
	if err != nil || len(procs) == 0 || len(queues) == 0 {
		return "", "", "", err
	}
	pipe := db.C.Pipeline()
	cmds := make([]*redis.StringCmd, 0, len(queues)*len(procs))
	for _, q := range queues {
		for _, p := range procs {
			cmds = append(cmds, pipe.HGet(ctx, db.Keys.Q(q).Inflight(p), jid))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return "", "", "", err
	}
	for i, c := range cmds {
		if v := c.Val(); v != "" {
			return queues[i/len(procs)], procs[i%len(procs)], v, nil
		}
	}
	return "", "", "", nil
}

// ParkedError returns the last error (JSON) of job jid parked in queue q
// ("" if none).
func (db *DB) ParkedError(ctx context.Context, q, jid string) (string, error) {
	v, err := db.C.HGet(ctx, db.Keys.Q(q).Errors(), jid).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}
