package rdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// EventsMaxDefault is how many events the stream keeps when none is
// configured.
const EventsMaxDefault = 100_000

// DB runs iterjob's commands and scripts on one namespace.
type DB struct {
	C    redis.UniversalClient
	Keys Keys
	// EventsMax is how many events the stream keeps.
	EventsMax int64
	cluster   bool
	known     sync.Map // queue names this DB added to the queues set
}

// New returns a DB on namespace ns. On a *redis.ClusterClient it calls one
// script per queue and appends events to the stream with calls of their
// own, and adds a hook to the client that reloads the cluster's layout
// after a failover (see followFailovers); elsewhere one call may span
// queues and appends its events itself.
func New(c redis.UniversalClient, ns string) *DB {
	cc, cluster := c.(*redis.ClusterClient)
	if cluster {
		followFailovers(cc)
	}
	return &DB{C: c, Keys: NewKeys(ns), EventsMax: EventsMaxDefault, cluster: cluster}
}

// Cluster reports whether the DB works on a Redis Cluster.
func (db *DB) Cluster() bool { return db.cluster }

// Ms is t in Unix milliseconds.
func Ms(t time.Time) int64 { return t.UnixMilli() }

// Day is t's UTC date as yyyy-mm-dd, the suffix of daily counters.
func Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// oldDay is the day whose daily counters a bump on t's day drops: 400 days
// before (the admin API shows up to a year).
func oldDay(t time.Time) string { return Day(t.AddDate(0, 0, -400)) }

// Dead set caps used when none is configured.
const (
	// DeadMaxJobsDefault caps the dead set of each queue; the oldest
	// deaths go first.
	DeadMaxJobsDefault = 10_000
	// DeadMaxAgeDefault is how long a job stays in the dead set.
	DeadMaxAgeDefault = 180 * 24 * time.Hour
)

// groups splits queues into the groups one script call may touch: all of
// them on a single Redis, one each on a cluster.
func (db *DB) groups(queues []string) [][]string {
	if len(queues) == 0 {
		return nil
	}
	if !db.cluster || len(queues) == 1 {
		return [][]string{queues}
	}
	out := make([][]string, len(queues))
	for i, q := range queues {
		out[i] = []string{q}
	}
	return out
}

// qkeys returns the KEYS of a queue script over queues, for process proc
// ("" when the script touches no process's keys), and its two first ARGV.
func (db *DB) qkeys(queues []string, proc string) ([]string, []any) {
	keys := make([]string, 0, 2+blockLen*len(queues))
	inline := "1"
	if db.cluster {
		// The stream lives in the global group, which a queue's script
		// cannot touch on a cluster: pass two keys of the queue's own
		// group, never touched, and append the events afterwards.
		inline = "0"
		q := db.Keys.Q(queues[0])
		keys = append(keys, q.p+"-", q.p+"-")
	} else {
		keys = append(keys, db.Keys.Events(), db.Keys.EventsIndex())
	}
	for _, q := range queues {
		keys = append(keys, db.Keys.Q(q).block(proc)...)
	}
	return keys, []any{inline, db.EventsMax}
}

// events appends what a script returned for its events: nothing on a single
// Redis (the script appended them), a batch on a cluster.
func (db *DB) events(ctx context.Context, reply any) error {
	blob := toString(reply)
	if blob == "" {
		return nil
	}
	return db.AppendEvents(ctx, blob)
}

// AppendEvents appends a batch of events (a JSON array) to the stream.
func (db *DB) AppendEvents(ctx context.Context, blob string) error {
	n := countEvents(blob)
	if n == 0 {
		return nil
	}
	return appendEventsScript.Run(ctx, db.C, []string{db.Keys.Events(), db.Keys.EventsIndex()},
		"1", db.EventsMax, blob[1:len(blob)-1], n).Err()
}

// countEvents counts the events of a JSON array of event objects: the
// objects at the array's top level.
func countEvents(blob string) int {
	n, depth, inStr, esc := 0, 0, false, false
	for i := 0; i < len(blob); i++ {
		c := blob[i]
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			if c == '{' && depth == 1 {
				n++
			}
			depth++
		case c == '}' || c == ']':
			depth--
		}
	}
	return n
}

// RegisterQueues adds queue names to the namespace's queue set, once per DB.
func (db *DB) RegisterQueues(ctx context.Context, names ...string) error {
	var add []any
	for _, q := range names {
		if _, ok := db.known.Load(q); !ok {
			add = append(add, q)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := db.C.SAdd(ctx, db.Keys.Queues(), add...).Err(); err != nil {
		return err
	}
	for _, q := range add {
		db.known.Store(q, true)
	}
	return nil
}

// QueueNames returns the namespace's queue names, sorted.
func (db *DB) QueueNames(ctx context.Context) ([]string, error) {
	names, err := db.C.SMembers(ctx, db.Keys.Queues()).Result()
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

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

// Enqueue adds jobs: one call per group of queues (see groups).
func (db *DB) Enqueue(ctx context.Context, now time.Time, jobs []NewJob) ([]EnqueueReply, error) {
	var names []string
	for _, j := range jobs {
		if !slices.Contains(names, j.Queue) {
			names = append(names, j.Queue)
		}
	}
	if err := db.RegisterQueues(ctx, names...); err != nil {
		return nil, err
	}
	out := make([]EnqueueReply, len(jobs))
	for _, group := range db.groups(names) {
		idx := make(map[string]int, len(group))
		for i, q := range group {
			idx[q] = i + 1
		}
		keys, args := db.qkeys(group, "")
		var events []byte
		for _, j := range jobs {
			if _, ok := idx[j.Queue]; ok && len(j.Event) > 0 {
				if len(events) > 0 {
					events = append(events, ',')
				}
				events = append(events, j.Event...)
			}
		}
		args = append(args, Ms(now), Token(), db.Keys.Notify(), events, len(group))
		for _, q := range group {
			args = append(args, q)
		}
		var pos []int
		for i, j := range jobs {
			qi, ok := idx[j.Queue]
			if !ok {
				continue
			}
			pos = append(pos, i)
			args = append(args, qi, j.ID, j.Envelope, j.Due, j.UniqueHash, j.UniqueTTLMs, len(j.Event), j.KeepIDMs)
		}
		res, err := enqueueScript.Run(ctx, db.C, keys, args...).Slice()
		if err != nil {
			return nil, err
		}
		if len(res) != 1+2*len(pos) {
			return nil, fmt.Errorf("rdb: enqueue returned %d values for %d jobs", len(res), len(pos))
		}
		for k, i := range pos {
			out[i] = EnqueueReply{Status: int(toInt(res[1+2*k])), ID: toString(res[2+2*k])}
		}
		if err := db.events(ctx, res[0]); err != nil {
			return out, fmt.Errorf("rdb: jobs enqueued, but their events were not recorded: %w", err)
		}
	}
	return out, nil
}

// Fetched is one job taken by Fetch.
type Fetched struct {
	Lease    int64
	Queue    string
	Envelope string
}

// ErrReaped is returned by Fetch for a process a reaper took jobs from: it
// was presumed dead, and must heartbeat (register again) before fetching.
var ErrReaped = errors.New("rdb: process presumed dead and reaped")

// Fetch takes up to n jobs from queues, in order, into procID's in-flight
// hashes: one call per group of queues, until n are taken. Jobs whose
// cancellation is pending are dropped (with a cancelled event at now, if
// events is set).
func (db *DB) Fetch(ctx context.Context, procID string, n int, queues []string, now time.Time, events bool) ([]Fetched, error) {
	var out []Fetched
	ev := "0"
	if events {
		ev = "1"
	}
	for _, group := range db.groups(queues) {
		if len(out) >= n {
			break
		}
		keys, args := db.qkeys(group, procID)
		args = append(args, n-len(out), procID, now.UTC().Format(time.RFC3339Nano), ev)
		for _, q := range group {
			args = append(args, q)
		}
		res, err := fetchScript.Run(ctx, db.C, keys, args...).Slice()
		if err != nil {
			if strings.HasPrefix(err.Error(), "ITERJOB_REAPED") {
				return out, fmt.Errorf("%w: %v", ErrReaped, err)
			}
			return out, err
		}
		for i := 1; i+2 < len(res); i += 3 {
			out = append(out, Fetched{Lease: toInt(res[i]), Queue: toString(res[i+1]), Envelope: toString(res[i+2])})
		}
		if err := db.events(ctx, res[0]); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Owned names one run of a job: its id, queue and the lease it was fetched
// with.
type Owned struct {
	ID, Queue string
	Lease     int64
	// EventLen is the length of the job's event in the events given with
	// it (Ack), 0 for none.
	EventLen int
}

// byQueue groups jobs' indexes by queue, queues in first-seen order.
func byQueue(n int, queue func(int) string) ([]string, map[string][]int) {
	var names []string
	idx := map[string][]int{}
	for i := range n {
		q := queue(i)
		if _, ok := idx[q]; !ok {
			names = append(names, q)
		}
		idx[q] = append(idx[q], i)
	}
	return names, idx
}

// Pending is a batch of events emitted before a call that carries them
// (JSON objects joined by commas, and their number).
type Pending struct {
	Events []byte
	N      int
}

// Ack completes succeeded jobs; it returns the ids whose lease had moved on.
// events holds the jobs' events, in job order, joined by commas (each
// Owned.EventLen long); pre are events to append before them.
func (db *DB) Ack(ctx context.Context, procID string, now time.Time, jobs []Owned, events []byte, pre Pending) ([]string, error) {
	names, idx := byQueue(len(jobs), func(i int) string { return jobs[i].Queue })
	groups := db.groups(names)
	var at []int // each job's event offset in events, when regrouped
	if len(groups) > 1 || len(names) > 1 {
		at = make([]int, len(jobs))
		off := 0
		for i, j := range jobs {
			at[i] = off
			if j.EventLen > 0 {
				off += j.EventLen + 1
			}
		}
	}
	var stale []string
	for _, group := range groups {
		keys, args := db.qkeys(group, procID)
		evs := events
		if at != nil {
			evs = nil
			for _, q := range group {
				for _, i := range idx[q] {
					if n := jobs[i].EventLen; n > 0 {
						if len(evs) > 0 {
							evs = append(evs, ',')
						}
						evs = append(evs, events[at[i]:at[i]+n]...)
					}
				}
			}
		}
		args = append(args, Day(now), oldDay(now), pre.Events, pre.N, evs)
		pre = Pending{}
		for qi, q := range group {
			for _, i := range idx[q] {
				j := jobs[i]
				args = append(args, qi+1, j.ID, j.Lease, j.EventLen)
			}
		}
		res, err := ackScript.Run(ctx, db.C, keys, args...).Slice()
		if err != nil {
			return stale, err
		}
		for _, v := range res[1:] {
			stale = append(stale, toString(v))
		}
		if err := db.events(ctx, res[0]); err != nil {
			return stale, err
		}
	}
	return stale, nil
}

// Release hands fetched, unstarted jobs back to the head of their queues
// (a lease of 0: whatever the lease).
func (db *DB) Release(ctx context.Context, procID string, jobs []Owned) (int, error) {
	names, idx := byQueue(len(jobs), func(i int) string { return jobs[i].Queue })
	total := 0
	for _, q := range names {
		keys, args := db.qkeys([]string{q}, procID)
		args = append(args, db.Keys.Notify(), q)
		// Back to the head in their order: the script pushes the last first.
		for _, i := range idx[q] {
			lease := ""
			if jobs[i].Lease > 0 {
				lease = strconv.FormatInt(jobs[i].Lease, 10)
			}
			args = append(args, jobs[i].ID, lease)
		}
		n, err := releaseScript.Run(ctx, db.C, keys, args...).Int()
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
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
	ID, Queue   string
	Lease       int64
	Action      string
	Due         int64  // ms, for schedule and retry
	NewEnvelope []byte // nil = unchanged
	Error       []byte // JSON, for retry and dead
	Event       []byte
	DeadMax     int
	DeadMaxAge  time.Duration
	// Pre are events to append before the run's.
	Pre Pending
}

// Finish applies f; ok false means the run no longer owns the job. trimmed
// are the dead jobs the dead set dropped to stay within its caps.
func (db *DB) Finish(ctx context.Context, now time.Time, f Finish) (ok bool, trimmed []string, err error) {
	keys, args := db.qkeys([]string{f.Queue}, f.ProcID)
	args = append(args, f.ID, f.Lease, f.Action, f.Due, f.NewEnvelope, f.Error, f.Event,
		Ms(now), Day(now), oldDay(now), f.DeadMax, f.DeadMaxAge.Milliseconds(), db.Keys.Notify(), f.Pre.Events, f.Pre.N)
	res, err := finishScript.Run(ctx, db.C, keys, args...).Slice()
	if err != nil {
		return false, nil, err
	}
	if len(res) < 2 {
		return false, nil, fmt.Errorf("rdb: finish returned %d values", len(res))
	}
	for _, v := range res[2:] {
		trimmed = append(trimmed, toString(v))
	}
	if err := db.events(ctx, res[0]); err != nil {
		return toInt(res[1]) == 1, trimmed, err
	}
	return toInt(res[1]) == 1, trimmed, nil
}

// Promote moves due scheduled and retry jobs of queues to their queues (up
// to limit from each set). next is the due time (ms) of the earliest job
// left, or -1.
func (db *DB) Promote(ctx context.Context, now time.Time, limit int, queues []string) (moved int, next int64, err error) {
	next = -1
	for _, group := range db.groups(queues) {
		keys, args := db.qkeys(group, "")
		args = append(args, Ms(now), limit, db.Keys.Notify())
		for _, q := range group {
			args = append(args, q)
		}
		res, err := promoteScript.Run(ctx, db.C, keys, args...).Int64Slice()
		if err != nil {
			return moved, next, err
		}
		if len(res) != 2 {
			return moved, next, fmt.Errorf("rdb: promote returned %d values", len(res))
		}
		moved += int(res[0])
		if res[1] >= 0 && (next < 0 || res[1] < next) {
			next = res[1]
		}
	}
	return moved, next, nil
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
	res, err := heartbeatScript.Run(ctx, db.C,
		[]string{db.Keys.Procs(), db.Keys.Proc(b.ProcID), db.Keys.Epoch(), db.Keys.Reaping()},
		b.ProcID, b.Info, b.Busy, int64(b.TTL.Seconds())+1, flag(b.First),
		b.Alive, b.Interval.Milliseconds(), b.Epoch, b.NewEpoch).Slice()
	if err != nil {
		return BeatReply{}, err
	}
	if len(res) != 3 {
		return BeatReply{}, fmt.Errorf("rdb: heartbeat returned %d values", len(res))
	}
	return BeatReply{Status: int(toInt(res[0])), Now: time.UnixMilli(toInt(res[1])), Epoch: toString(res[2])}, nil
}

// RegisterIn registers procID in queues (it may fetch from them) or, with
// register false, unregisters it.
func (db *DB) RegisterIn(ctx context.Context, procID string, queues []string, register bool, now time.Time) error {
	for _, q := range queues {
		keys, args := db.qkeys([]string{q}, procID)
		if err := registerScript.Run(ctx, db.C, keys, append(args, procID, flag(register), Ms(now))...).Err(); err != nil {
			return err
		}
	}
	return nil
}

// Held is a job a process holds, to put back in its in-flight hash.
type Held struct {
	ID, Queue string
	Lease     int64
	Envelope  []byte
	Started   bool // mark it started (a recovered job whose run started)
}

// StartedTTL is how long a process's start marks live after the last was
// set: long enough for a reaper to find them after the process dies, and
// bounded, so marks left by a process that died unregistered go away.
const StartedTTL = 24 * time.Hour

// Restore puts back procID's in-flight entries for the jobs it holds after
// Redis lost them (see restoreScript). It returns how many it put back.
func (db *DB) Restore(ctx context.Context, procID string, jobs []Held) (int, error) {
	names, idx := byQueue(len(jobs), func(i int) string { return jobs[i].Queue })
	total := 0
	for _, q := range names {
		keys, args := db.qkeys([]string{q}, procID)
		args = append(args, int64(StartedTTL.Seconds()))
		for _, i := range idx[q] {
			j := jobs[i]
			args = append(args, j.ID, j.Lease, j.Envelope, flag(j.Started))
		}
		n, err := restoreScript.Run(ctx, db.C, keys, args...).Int()
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
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
// silent for deadAfter, or for look and without their liveness connection,
// the latter only when the server sees the reaper's own liveness channel
// alive ("" turns that quick path off). It reaps every queue of the
// namespace for each, then forgets them.
func (db *DB) Reap(ctx context.Context, deadAfter, look time.Duration, self, alive string) (Reaped, error) {
	cand, err := reapCandidatesScript.Run(ctx, db.C, []string{db.Keys.Procs(), db.Keys.Reaping()},
		look.Milliseconds(), self).Slice()
	if err != nil {
		return Reaped{}, err
	}
	if len(cand) < 1 {
		return Reaped{}, fmt.Errorf("rdb: reap candidates returned %d values", len(cand))
	}
	nsilent := int(toInt(cand[0]))
	if nsilent > len(cand)-1 {
		return Reaped{}, fmt.Errorf("rdb: reap candidates returned %d values for %d silent processes", len(cand), nsilent)
	}
	var out Reaped
	var reap []string // the processes found dead now, then those being reaped
	if nsilent > 0 {
		keys := []string{db.Keys.Procs(), db.Keys.Reaping()}
		args := []any{deadAfter.Milliseconds(), look.Milliseconds(), alive}
		for _, v := range cand[1 : 1+nsilent] {
			id := toString(v)
			keys = append(keys, db.Keys.Proc(id))
			args = append(args, id)
		}
		res, err := reapScript.Run(ctx, db.C, keys, args...).Slice()
		if err != nil {
			return Reaped{}, err
		}
		if len(res) < 1 {
			return Reaped{}, fmt.Errorf("rdb: reap returned %d values", len(res))
		}
		if ms := toInt(res[0]); ms >= 0 {
			out.Recheck = time.Duration(ms) * time.Millisecond
		}
		for _, v := range res[1:] {
			reap = append(reap, toString(v))
		}
	}
	for _, v := range cand[1+nsilent:] {
		if id := toString(v); !slices.Contains(reap, id) {
			reap = append(reap, id)
		}
	}
	if len(reap) == 0 {
		return out, nil
	}
	queues, err := db.QueueNames(ctx)
	if err != nil {
		return out, err
	}
	now := Ms(time.Now())
	for _, id := range reap {
		for _, q := range queues {
			keys, args := db.qkeys([]string{q}, id)
			n, err := reapQueueScript.Run(ctx, db.C, keys, append(args, db.Keys.Notify(), q, id, now)...).Int()
			if err != nil {
				return out, err
			}
			out.Jobs += n
		}
		if err := db.C.ZRem(ctx, db.Keys.Reaping(), id).Err(); err != nil {
			return out, err
		}
		out.Procs = append(out.Procs, id)
	}
	return out, nil
}

// Deregister forgets a process that stops with nothing in flight (call
// RegisterIn to unregister it from its queues too).
func (db *DB) Deregister(ctx context.Context, procID string) error {
	pipe := db.C.Pipeline()
	pipe.ZRem(ctx, db.Keys.Procs(), procID)
	pipe.Del(ctx, db.Keys.Proc(procID))
	_, err := pipe.Exec(ctx)
	return err
}

// InFlight returns the ids in procID's in-flight hashes of queues, by queue.
func (db *DB) InFlight(ctx context.Context, procID string, queues []string) (map[string][]string, error) {
	pipe := db.C.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(queues))
	for i, q := range queues {
		cmds[i] = pipe.HKeys(ctx, db.Keys.Q(q).Inflight(procID))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(queues))
	for i, q := range queues {
		if ids := cmds[i].Val(); len(ids) > 0 {
			out[q] = ids
		}
	}
	return out, nil
}

// MarkStarted records that procID started the run of jid (in queue q)
// holding lease (see reapQueueScript). Ack and finish drop the mark.
func (db *DB) MarkStarted(ctx context.Context, procID, q, jid string, lease int64) error {
	keys, args := db.qkeys([]string{q}, procID)
	return markStartedScript.Run(ctx, db.C, keys, append(args, jid, lease, int64(StartedTTL.Seconds()))...).Err()
}

// Forgive zeroes the recovery count in the envelope procID holds for jid
// (in queue q), if it holds it with lease.
func (db *DB) Forgive(ctx context.Context, procID, q, jid string, lease int64) (bool, error) {
	keys, args := db.qkeys([]string{q}, procID)
	n, err := forgiveScript.Run(ctx, db.C, keys, append(args, jid, lease)...).Int()
	return n == 1, err
}

// Cancelled reports which jobs have a pending cancellation; queue names
// each job's queue.
func (db *DB) Cancelled(ctx context.Context, ids, queues []string) ([]bool, error) {
	names, idx := byQueue(len(ids), func(i int) string { return queues[i] })
	out := make([]bool, len(ids))
	if len(names) == 1 {
		scores, err := db.C.ZMScore(ctx, db.Keys.Q(names[0]).Cancels(), ids...).Result()
		if err != nil {
			return nil, err
		}
		for i, sc := range scores {
			out[i] = sc > 0 // request times in ms; 0 is a missing member
		}
		return out, nil
	}
	pipe := db.C.Pipeline()
	cmds := make(map[string]*redis.FloatSliceCmd, len(names))
	for _, q := range names {
		members := make([]string, len(idx[q]))
		for k, i := range idx[q] {
			members[k] = ids[i]
		}
		cmds[q] = pipe.ZMScore(ctx, db.Keys.Q(q).Cancels(), members...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	for _, q := range names {
		for k, sc := range cmds[q].Val() {
			out[idx[q][k]] = sc > 0 // request times in ms; 0 is a missing member
		}
	}
	return out, nil
}

// CancelChanged is what Cancel returns when the job waits in a set with
// another envelope than the one its event was built from.
const CancelChanged = "changed"

// Cancel records the cancellation of jid in queue q and removes it from the
// queue's sched, retry or dead set, or finds it running. It returns the set
// it was in, "running", "" (neither), or CancelChanged. With check, a job found in a set is removed
// only if its envelope is env ("" = it has none), the one event was built
// from.
func (db *DB) Cancel(ctx context.Context, q string, now time.Time, jid string, event []byte, keep time.Duration, check bool, env string) (string, error) {
	procs, err := db.C.ZRange(ctx, db.Keys.Procs(), 0, -1).Result()
	if err != nil {
		return "", err
	}
	keys, args := db.qkeys([]string{q}, "")
	for _, p := range procs {
		keys = append(keys, db.Keys.Q(q).Inflight(p))
	}
	args = append(args, jid, event, Ms(now), keep.Milliseconds(), Token(), flag(check), env)
	res, err := cancelScript.Run(ctx, db.C, keys, args...).Slice()
	if err != nil {
		return "", err
	}
	if len(res) != 2 {
		return "", fmt.Errorf("rdb: cancel returned %d values", len(res))
	}
	return toString(res[1]), db.events(ctx, res[0])
}

// ForgetCancels drops jid's pending cancellation in queues.
func (db *DB) ForgetCancels(ctx context.Context, jid string, queues []string) error {
	pipe := db.C.Pipeline()
	for _, q := range queues {
		pipe.ZRem(ctx, db.Keys.Q(q).Cancels(), jid)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// RemoveQueued removes envelope env of job jid from queue q.
func (db *DB) RemoveQueued(ctx context.Context, q, jid, env string, event []byte) (bool, error) {
	keys, args := db.qkeys([]string{q}, "")
	res, err := removeQueuedScript.Run(ctx, db.C, keys, append(args, jid, env, event)...).Slice()
	if err != nil {
		return false, err
	}
	if len(res) != 2 {
		return false, fmt.Errorf("rdb: remove returned %d values", len(res))
	}
	return toInt(res[1]) == 1, db.events(ctx, res[0])
}

// Move moves job jid waiting in set from ("scheduled", "retry", "dead") of
// queue q to target "queue", "dead" or "delete" (see moveScript). It
// returns 1, 0 (not in that set) or -1 (its envelope is not env), and the
// dead jobs trimmed.
func (db *DB) Move(ctx context.Context, now time.Time, q, jid, from, to string, event []byte, deadMax int, deadMaxAge time.Duration, env string) (int, []string, error) {
	keys, args := db.qkeys([]string{q}, "")
	args = append(args, jid, from, to, Ms(now), event, deadMax, deadMaxAge.Milliseconds(), Token(), env,
		db.Keys.Notify(), q)
	res, err := moveScript.Run(ctx, db.C, keys, args...).Slice()
	if err != nil {
		return 0, nil, err
	}
	if len(res) < 2 {
		return 0, nil, fmt.Errorf("rdb: move returned %d values", len(res))
	}
	var trimmed []string
	for _, v := range res[2:] {
		trimmed = append(trimmed, toString(v))
	}
	return int(toInt(res[1])), trimmed, db.events(ctx, res[0])
}

// PauseQueue stops workers fetching from q.
func (db *DB) PauseQueue(ctx context.Context, q string) error {
	if err := db.RegisterQueues(ctx, q); err != nil {
		return err
	}
	return db.C.Set(ctx, db.Keys.Q(q).Paused(), "1", 0).Err()
}

// ResumeQueue lets workers fetch from q again and wakes idle ones.
func (db *DB) ResumeQueue(ctx context.Context, q string) error {
	keys, args := db.qkeys([]string{q}, "")
	return resumeQueueScript.Run(ctx, db.C, keys, append(args, db.Keys.Notify(), q)...).Err()
}

// Token returns a random call token.
func Token() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
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

// Move results.
const (
	MoveChanged  = -1 // the job's envelope is not the one given
	MoveNotFound = 0  // the job is not in that set
	MoveDone     = 1
)
