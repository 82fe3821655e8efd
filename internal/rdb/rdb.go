package rdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DB runs iterjob's scripts on one namespace.
type DB struct {
	C    redis.UniversalClient
	Keys Keys
}

// New returns a DB on namespace ns.
func New(c redis.UniversalClient, ns string) *DB {
	return &DB{C: c, Keys: NewKeys(ns)}
}

// Ms is t in Unix milliseconds.
func Ms(t time.Time) int64 { return t.UnixMilli() }

// Day is t's UTC date as yyyy-mm-dd, the suffix of daily counters.
func Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// NewJob is one job to add.
type NewJob struct {
	ID, Queue   string
	Envelope    []byte
	Due         int64 // ms; 0 or past = now
	UniqueHash  string
	UniqueTTLMs int64
	Event       []byte
	// KeepIDMs, when positive, makes ID idempotent: the id is remembered for
	// this long, and enqueuing it again meanwhile adds nothing (a duplicate).
	KeepIDMs int64
}

// Dead set caps used when none is configured.
const (
	// DeadMaxJobsDefault caps the dead set; the oldest deaths go first.
	DeadMaxJobsDefault = 10_000
	// DeadMaxAgeDefault is how long a job stays in the dead set.
	DeadMaxAgeDefault = 180 * 24 * time.Hour
)

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

// Enqueue status codes.
const (
	StatusDuplicate = 0
	StatusQueued    = 1
	StatusScheduled = 2
)

// EnqueueReply is the outcome for one NewJob.
type EnqueueReply struct {
	Status int
	ID     string // the new job, or the job holding the uniqueness key
}

// Enqueue adds jobs in one round trip.
func (db *DB) Enqueue(ctx context.Context, now time.Time, jobs []NewJob) ([]EnqueueReply, error) {
	args := make([]any, 0, 3+8*len(jobs))
	args = append(args, db.Keys.Prefix(), Ms(now), Token())
	for _, j := range jobs {
		args = append(args, j.ID, j.Queue, j.Envelope, j.Due, j.UniqueHash, j.UniqueTTLMs, j.Event, j.KeepIDMs)
	}
	res, err := enqueueScript.Run(ctx, db.C, []string{db.Keys.Queues(), db.Keys.IDs()}, args...).Slice()
	if err != nil {
		return nil, err
	}
	out := make([]EnqueueReply, 0, len(jobs))
	for i := 0; i+1 < len(res); i += 2 {
		out = append(out, EnqueueReply{Status: int(toInt(res[i])), ID: toString(res[i+1])})
	}
	if len(out) != len(jobs) {
		return nil, fmt.Errorf("rdb: enqueue returned %d replies for %d jobs", len(out), len(jobs))
	}
	return out, nil
}

// Fetched is one job taken by Fetch.
type Fetched struct {
	Lease    int64
	Envelope string
}

// ErrReaped is returned by Fetch for a process that is not registered: it
// was presumed dead and reaped, and must heartbeat before fetching again.
var ErrReaped = errors.New("rdb: process presumed dead and reaped")

// Fetch takes up to n jobs from queues, in order, into procID's in-flight
// hash. Jobs whose cancellation is pending are dropped (with a cancelled
// event at now, if events is set).
func (db *DB) Fetch(ctx context.Context, procID string, n int, queues []string, now time.Time, events bool) ([]Fetched, error) {
	args := make([]any, 0, 5+len(queues))
	ev := "0"
	if events {
		ev = "1"
	}
	args = append(args, db.Keys.Prefix(), n, procID, now.UTC().Format(time.RFC3339Nano), ev)
	for _, q := range queues {
		args = append(args, q)
	}
	res, err := fetchScript.Run(ctx, db.C, []string{db.Keys.Inflight(procID), db.Keys.Paused(), db.Keys.Leases(), db.Keys.Procs()}, args...).Slice()
	if err != nil {
		if strings.HasPrefix(err.Error(), "ITERJOB_REAPED") {
			return nil, fmt.Errorf("%w: %v", ErrReaped, err)
		}
		return nil, err
	}
	out := make([]Fetched, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		out = append(out, Fetched{Lease: toInt(res[i]), Envelope: toString(res[i+1])})
	}
	return out, nil
}

// Owned names one run of a job: its id and the lease it was fetched with.
type Owned struct {
	ID    string
	Lease int64
	Event []byte // published on success; nil for none
}

// Ack completes succeeded jobs; it returns the ids whose lease had moved on.
func (db *DB) Ack(ctx context.Context, procID string, now time.Time, jobs []Owned) ([]string, error) {
	args := make([]any, 0, 2+3*len(jobs))
	args = append(args, db.Keys.Prefix(), Day(now))
	for _, j := range jobs {
		args = append(args, j.ID, j.Lease, j.Event)
	}
	res, err := ackScript.Run(ctx, db.C, []string{db.Keys.Inflight(procID), db.Keys.Started(procID)}, args...).StringSlice()
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Release hands fetched, unstarted jobs back to the head of their queues.
func (db *DB) Release(ctx context.Context, procID string, jobs []Owned) (int, error) {
	args := make([]any, 0, 1+2*len(jobs))
	args = append(args, db.Keys.Prefix())
	for _, j := range jobs {
		lease := ""
		if j.Lease > 0 {
			lease = strconv.FormatInt(j.Lease, 10)
		}
		args = append(args, j.ID, lease)
	}
	n, err := releaseScript.Run(ctx, db.C, []string{db.Keys.Inflight(procID)}, args...).Int()
	return n, err
}

// Finish actions.
const (
	ActionRequeue  = "requeue"
	ActionSchedule = "schedule"
	ActionRetry    = "retry"
	ActionDead     = "dead"
	ActionCancel   = "cancel"
)

// Finish is one run ending without success.
type Finish struct {
	ProcID      string
	ID          string
	Lease       int64
	Action      string
	Due         int64  // ms, for schedule and retry
	NewEnvelope []byte // nil = unchanged
	Error       []byte // JSON, for retry and dead
	Event       []byte
	DeadMax     int
	DeadMaxAge  time.Duration
}

// Finish applies f; false means the run no longer owns the job.
func (db *DB) Finish(ctx context.Context, now time.Time, f Finish) (bool, error) {
	n, err := finishScript.Run(ctx, db.C, []string{db.Keys.Inflight(f.ProcID), db.Keys.Started(f.ProcID)},
		db.Keys.Prefix(), f.ID, f.Lease, f.Action, f.Due, f.NewEnvelope, f.Error, f.Event,
		Ms(now), Day(now), f.DeadMax, f.DeadMaxAge.Milliseconds()).Int()
	return n == 1, err
}

// Promote moves due scheduled and retry jobs to their queues. next is the
// due time (ms) of the earliest job left, or -1.
func (db *DB) Promote(ctx context.Context, now time.Time, limit int) (moved int, next int64, err error) {
	res, err := promoteScript.Run(ctx, db.C, []string{db.Keys.Scheduled(), db.Keys.Retry()},
		db.Keys.Prefix(), Ms(now), limit).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("rdb: promote returned %d values", len(res))
	}
	return int(res[0]), res[1], nil
}

// Beat is one heartbeat of a process.
type Beat struct {
	ProcID     string
	Info, Busy []byte
	TTL        time.Duration // of the process hash
	First      bool          // the process's first beat
	// Alive is the pub/sub channel the process stays subscribed to while it
	// lives ("" for none: only DeadAfter tells it is dead).
	Alive    string
	Interval time.Duration // the process's heartbeat interval
	// Epoch is the namespace's epoch as the process knows it ("" before its
	// first beat); NewEpoch is set as the epoch if there is none.
	Epoch, NewEpoch string
}

// Heartbeat statuses.
const (
	BeatReaped   = 0 // presumed dead and reaped: its jobs went to others
	BeatAlive    = 1 // registered, as it was
	BeatDataLost = 2 // Redis lost its registration with the namespace's data
)

// BeatReply is what a heartbeat found.
type BeatReply struct {
	Status int
	Now    time.Time // the server's time
	Epoch  string    // the namespace's epoch
}

// Heartbeat records b's process as alive (see heartbeatScript).
func (db *DB) Heartbeat(ctx context.Context, b Beat) (BeatReply, error) {
	f := "0"
	if b.First {
		f = "1"
	}
	res, err := heartbeatScript.Run(ctx, db.C,
		[]string{db.Keys.Procs(), db.Keys.Proc(b.ProcID), db.Keys.Started(b.ProcID), db.Keys.Epoch()},
		b.ProcID, b.Info, b.Busy, int64(b.TTL.Seconds())+1, f, int64(StartedTTL(b.TTL).Seconds()),
		b.Alive, b.Interval.Milliseconds(), b.Epoch, b.NewEpoch).Slice()
	if err != nil {
		return BeatReply{}, err
	}
	if len(res) != 3 {
		return BeatReply{}, fmt.Errorf("rdb: heartbeat returned %d values", len(res))
	}
	return BeatReply{Status: int(toInt(res[0])), Now: time.UnixMilli(toInt(res[1])), Epoch: toString(res[2])}, nil
}

// Held is a job a process holds, to put back in its in-flight hash.
type Held struct {
	ID       string
	Lease    int64
	Envelope []byte
	Started  bool // mark it started (a recovered job whose run started)
}

// Restore puts back procID's in-flight entries for the jobs it holds after
// Redis lost them (see restoreScript). It returns how many it put back.
func (db *DB) Restore(ctx context.Context, procID string, procTTL time.Duration, jobs []Held) (int, error) {
	if len(jobs) == 0 {
		return 0, nil
	}
	args := make([]any, 0, 1+4*len(jobs))
	args = append(args, int64(StartedTTL(procTTL).Seconds()))
	for _, j := range jobs {
		st := "0"
		if j.Started {
			st = "1"
		}
		args = append(args, j.ID, j.Lease, j.Envelope, st)
	}
	return restoreScript.Run(ctx, db.C, []string{db.Keys.Inflight(procID), db.Keys.Started(procID), db.Keys.Leases()}, args...).Int()
}

// Reaped is what one Reap did.
type Reaped struct {
	Jobs  int      // jobs recovered
	Procs []string // processes reaped
	// Recheck, if positive, is when a process seen without its liveness
	// connection may be confirmed dead by another reap.
	Recheck time.Duration
}

// Reap recovers the in-flight jobs of dead processes (see reapScript):
// silent for deadAfter, or for look and without their liveness connection.
func (db *DB) Reap(ctx context.Context, deadAfter, look time.Duration, self string) (Reaped, error) {
	res, err := reapScript.Run(ctx, db.C, []string{db.Keys.Procs()}, db.Keys.Prefix(),
		deadAfter.Milliseconds(), self, look.Milliseconds()).Slice()
	if err != nil {
		return Reaped{}, err
	}
	if len(res) < 2 {
		return Reaped{}, fmt.Errorf("rdb: reap returned %d values", len(res))
	}
	out := Reaped{Jobs: int(toInt(res[0]))}
	if ms := toInt(res[1]); ms >= 0 {
		out.Recheck = time.Duration(ms) * time.Millisecond
	}
	for _, v := range res[2:] {
		out.Procs = append(out.Procs, toString(v))
	}
	return out, nil
}

// CancelChanged is what Cancel returns when the job waits in a set with
// another envelope than the one its event was built from.
const CancelChanged = "changed"

// Cancel records the cancellation of jid and removes it from the
// scheduled, retry or dead set, or finds it running. It returns the set, or
// "running", or "" (not found outside the queues), or CancelChanged. forget
// drops the pending cancellation when the job is not found. With check, a
// job found in a set is removed only if its envelope is env ("" = it has
// none), the one event was built from.
func (db *DB) Cancel(ctx context.Context, now time.Time, jid string, event []byte, keep time.Duration, forget, check bool, env string) (string, error) {
	return cancelScript.Run(ctx, db.C, []string{db.Keys.Job(jid), db.Keys.Procs()},
		db.Keys.Prefix(), jid, event, Ms(now), keep.Milliseconds(), Token(), flag(forget), flag(check), env).Text()
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// RemoveQueued removes envelope env of job jid from queue q.
func (db *DB) RemoveQueued(ctx context.Context, q, jid, env string, event []byte, releaseUnique bool) (bool, error) {
	rel := "0"
	if releaseUnique {
		rel = "1"
	}
	n, err := removeQueuedScript.Run(ctx, db.C, []string{db.Keys.Queue(q)}, db.Keys.Prefix(), jid, env, event, rel).Int()
	return n == 1, err
}

// Move outcomes.
const (
	MoveNotFound = 0  // the job is not in the set
	MoveDone     = 1  // moved
	MoveChanged  = -1 // its envelope is not the one given: read it again
)

// Move moves a job waiting in sorted set from to target "queue", "dead" or
// "delete", if its envelope is env (any envelope when env is "").
func (db *DB) Move(ctx context.Context, now time.Time, jid, from, to string, event []byte, deadMax int, deadMaxAge time.Duration, env string) (int, error) {
	return moveScript.Run(ctx, db.C, []string{db.Keys.Job(jid)}, db.Keys.Prefix(), jid, from, to,
		Ms(now), event, deadMax, deadMaxAge.Milliseconds(), Token(), env).Int()
}

// PauseQueue stops workers fetching from q.
func (db *DB) PauseQueue(ctx context.Context, q string) error {
	return db.C.SAdd(ctx, db.Keys.Paused(), q).Err()
}

// ResumeQueue lets workers fetch from q again and wakes idle ones.
func (db *DB) ResumeQueue(ctx context.Context, q string) error {
	return resumeQueueScript.Run(ctx, db.C, []string{db.Keys.Paused()}, db.Keys.Prefix(), q).Err()
}

// IterBegin claims jid's iteration state for run. ok is false when the state
// belongs to run cur >= run already.
func (db *DB) IterBegin(ctx context.Context, jid string, run int64, now time.Time, ttl time.Duration) (fields map[string]string, ok bool, cur int64, err error) {
	res, err := iterBeginScript.Run(ctx, db.C, []string{db.Keys.Iter(jid)}, run, Ms(now), ttl.Milliseconds()).Slice()
	if err != nil {
		return nil, false, 0, err
	}
	if len(res) == 0 {
		return nil, false, 0, fmt.Errorf("rdb: iter begin returned nothing")
	}
	if toInt(res[0]) == 0 {
		if len(res) > 1 {
			cur = toInt(res[1])
		}
		return nil, false, cur, nil
	}
	fields = make(map[string]string, (len(res)-1)/2)
	for i := 1; i+1 < len(res); i += 2 {
		fields[toString(res[i])] = toString(res[i+1])
	}
	return fields, true, 0, nil
}

// IterSave writes fields (name, value pairs) of jid's state if run owns it.
func (db *DB) IterSave(ctx context.Context, jid string, run int64, ttl time.Duration, fields []string) (bool, error) {
	args := make([]any, 0, 2+len(fields))
	args = append(args, run, ttl.Milliseconds())
	for _, f := range fields {
		args = append(args, f)
	}
	n, err := iterSaveScript.Run(ctx, db.C, []string{db.Keys.Iter(jid)}, args...).Int()
	return n == 1, err
}

// IterRestore writes jid's whole state for run if jid has none (see
// iterRestoreScript). restored is true when it wrote it; ok is false when
// another run owns the state.
func (db *DB) IterRestore(ctx context.Context, jid string, run int64, ttl time.Duration, executions int, firstStarted time.Time, fields []string) (restored, ok bool, err error) {
	args := make([]any, 0, 4+len(fields))
	fs := int64(0)
	if !firstStarted.IsZero() {
		fs = Ms(firstStarted)
	}
	args = append(args, run, ttl.Milliseconds(), executions, fs)
	for _, f := range fields {
		args = append(args, f)
	}
	n, err := iterRestoreScript.Run(ctx, db.C, []string{db.Keys.Iter(jid)}, args...).Int()
	return n == 2, n > 0, err
}

// Token returns a random call token.
func Token() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case nil:
		return ""
	case bool:
		if x {
			return "1"
		}
		return ""
	default:
		return fmt.Sprint(x)
	}
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	default:
		return 0
	}
}

// InFlight returns the ids in procID's in-flight set.
func (db *DB) InFlight(ctx context.Context, procID string) ([]string, error) {
	return db.C.HKeys(ctx, db.Keys.Inflight(procID)).Result()
}

// ReturnOrphans hands jobs in procID's in-flight hash that it runs none of
// back to their queues, whatever their lease.
func (db *DB) ReturnOrphans(ctx context.Context, procID string, ids []string) (int, error) {
	owned := make([]Owned, len(ids))
	for i, id := range ids {
		owned[i] = Owned{ID: id}
	}
	return db.Release(ctx, procID, owned)
}

// StartedTTL is how long a process's start marks outlive its last heartbeat
// (each beat refreshes them), given its process hash's TTL: long enough for
// a reaper to find them after the process dies, and bounded, so marks left
// by a process that dies unregistered (reaped while alive, then killed) go
// away.
func StartedTTL(procTTL time.Duration) time.Duration { return max(24*time.Hour, procTTL) }

// MarkStarted records that procID started the run of jid holding lease (see
// reapScript: only a started job's recovery counts against it). Ack and
// finish drop the mark.
func (db *DB) MarkStarted(ctx context.Context, procID, jid string, lease int64, procTTL time.Duration) error {
	key := db.Keys.Started(procID)
	_, err := db.C.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, jid, lease)
		p.Expire(ctx, key, StartedTTL(procTTL))
		return nil
	})
	return err
}

// Forgive zeroes the recovery count in the envelope procID holds for jid,
// if it holds it with lease.
func (db *DB) Forgive(ctx context.Context, procID, jid string, lease int64) (bool, error) {
	n, err := forgiveScript.Run(ctx, db.C, []string{db.Keys.Inflight(procID)}, jid, lease).Int()
	return n == 1, err
}
