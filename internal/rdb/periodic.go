package rdb

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Periodic schedules live in one hash of the global group, G periodic, so
// every script touches one key. For each schedule <name>:
//
//	d:<name>   its definition (JSON, owned by internal/periodic)
//	s:<name>   its timing signature (spec and time zone): a change resets n: and p:
//	v:<name>   version, set whenever d: changes from the hash's counter "ver" (so a
//	           schedule removed and added again never reuses a version); claims name
//	           the version they read
//	n:<name>   the next tick to enqueue (Unix ms), shared by every process
//	p:<name>   a claimed tick being enqueued: "<tick>|<next after it>|<claimed at>" (ms)
//	l:<name>   the last tick enqueued: "<tick>|<enqueued at>|<job id>" (ms)
//
// A tick is enqueued in three steps: a process claims it (n: still the value
// it read, no claim pending: p: is set), enqueues the job under an id derived
// from the schedule and the tick (so a second enqueue of the same tick adds
// nothing), then commits (n: moves to the next tick, l: records the job, p:
// goes). A process that dies between claim and commit leaves p: behind; any
// process finishes it after a timeout, its enqueue adding nothing if the job
// was enqueued already. One claim per n:, so one job per tick.

// PeriodicRecord is what Redis holds for one schedule.
type PeriodicRecord struct {
	Name    string
	Def     string
	Version string
	// Next is the next tick to enqueue (Unix ms); 0 before a process set it.
	Next int64
	// Pending is a claim not yet committed (see PendingClaim); "" if none.
	Pending string
	// LastTick, LastAt (Unix ms) and LastJobID describe the last tick
	// enqueued; zero if none.
	LastTick, LastAt int64
	LastJobID        string
}

// PendingClaim splits a Pending value into its tick, the tick after it and
// when it was claimed (Unix ms).
func PendingClaim(p string) (tick, nextAfter, claimedAt int64, ok bool) {
	parts := strings.Split(p, "|")
	if len(parts) != 3 {
		return 0, 0, 0, false
	}
	var err [3]error
	tick, err[0] = strconv.ParseInt(parts[0], 10, 64)
	nextAfter, err[1] = strconv.ParseInt(parts[1], 10, 64)
	claimedAt, err[2] = strconv.ParseInt(parts[2], 10, 64)
	return tick, nextAfter, claimedAt, err[0] == nil && err[1] == nil && err[2] == nil
}

// Periodic is the key of the schedules hash.
func (k Keys) Periodic() string { return k.g + "periodic" }

// periodicPutScript stores a schedule's definition.
// KEYS[1] periodic hash. ARGV: name, definition, timing signature.
// Returns 1 if the definition changed (version bumped), 0 if it was the same.
// A changed timing signature drops the next tick and any pending claim, so
// the next tick is computed afresh from the new timing.
var periodicPutScript = redis.NewScript(`
local n = ARGV[1]
if redis.call('HGET', KEYS[1], 'd:'..n) == ARGV[2] then return 0 end
if redis.call('HGET', KEYS[1], 's:'..n) ~= ARGV[3] then
  redis.call('HDEL', KEYS[1], 'n:'..n, 'p:'..n)
end
redis.call('HSET', KEYS[1], 'd:'..n, ARGV[2], 's:'..n, ARGV[3])
redis.call('HSET', KEYS[1], 'v:'..n, redis.call('HINCRBY', KEYS[1], 'ver', 1))
return 1
`)

// periodicInitScript sets a schedule's first next tick.
// KEYS[1] periodic hash. ARGV: name, version read, next tick (ms).
// Returns 1 if it set it, 0 if the version changed or a next tick is set.
var periodicInitScript = redis.NewScript(`
local n = ARGV[1]
if redis.call('HGET', KEYS[1], 'v:'..n) ~= ARGV[2] then return 0 end
return redis.call('HSETNX', KEYS[1], 'n:'..n, ARGV[3])
`)

// periodicClaimScript claims a due tick, or skips it.
// KEYS[1] periodic hash. ARGV: name, version read, next tick read (ms), the
// tick claimed (ms), the tick after it (ms), '1' to enqueue or '0' to skip,
// now (ms).
// Returns "claimed", "skipped", or why nothing changed: "changed" (the
// definition changed or went), "moved" (another process advanced the next
// tick), "pending" (a claim is pending).
var periodicClaimScript = redis.NewScript(`
local n = ARGV[1]
if redis.call('HGET', KEYS[1], 'v:'..n) ~= ARGV[2] then return 'changed' end
if redis.call('HGET', KEYS[1], 'n:'..n) ~= ARGV[3] then return 'moved' end
if redis.call('HEXISTS', KEYS[1], 'p:'..n) == 1 then return 'pending' end
if ARGV[6] == '1' then
  redis.call('HSET', KEYS[1], 'p:'..n, ARGV[4]..'|'..ARGV[5]..'|'..ARGV[7])
  return 'claimed'
end
redis.call('HSET', KEYS[1], 'n:'..n, ARGV[5])
return 'skipped'
`)

// periodicCommitScript records an enqueued tick and moves to the next.
// KEYS[1] periodic hash. ARGV: name, the pending claim as read, the tick
// after it (ms), the tick (ms), the job id, now (ms).
// Returns 1, or 0 if the claim is no longer pending (committed by another
// process, or reset by a change of timing).
var periodicCommitScript = redis.NewScript(`
local n = ARGV[1]
if redis.call('HGET', KEYS[1], 'p:'..n) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'n:'..n, ARGV[3], 'l:'..n, ARGV[4]..'|'..ARGV[6]..'|'..ARGV[5])
redis.call('HDEL', KEYS[1], 'p:'..n)
return 1
`)

// PeriodicPut stores a schedule's definition def under name; sig is its
// timing signature. It reports whether anything changed.
func (db *DB) PeriodicPut(ctx context.Context, name, def, sig string) (bool, error) {
	n, err := periodicPutScript.Run(ctx, db.C, []string{db.Keys.Periodic()}, name, def, sig).Int()
	return n == 1, err
}

// PeriodicRemove deletes a schedule and its state; false if there was none.
func (db *DB) PeriodicRemove(ctx context.Context, name string) (bool, error) {
	n, err := db.C.HDel(ctx, db.Keys.Periodic(),
		"d:"+name, "s:"+name, "v:"+name, "n:"+name, "p:"+name, "l:"+name).Result()
	return n > 0, err
}

// PeriodicAll reads every schedule, in one round trip.
func (db *DB) PeriodicAll(ctx context.Context) (map[string]*PeriodicRecord, error) {
	h, err := db.C.HGetAll(ctx, db.Keys.Periodic()).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]*PeriodicRecord)
	for f, v := range h {
		if d, ok := strings.CutPrefix(f, "d:"); ok {
			out[d] = &PeriodicRecord{Name: d, Def: v}
		}
	}
	for f, v := range h {
		kind, name, ok := strings.Cut(f, ":")
		r := out[name]
		if !ok || r == nil {
			continue // a definition removed while state lingered: never, but harmless
		}
		switch kind {
		case "v":
			r.Version = v
		case "n":
			r.Next, _ = strconv.ParseInt(v, 10, 64)
		case "p":
			r.Pending = v
		case "l":
			parts := strings.SplitN(v, "|", 3)
			if len(parts) == 3 {
				r.LastTick, _ = strconv.ParseInt(parts[0], 10, 64)
				r.LastAt, _ = strconv.ParseInt(parts[1], 10, 64)
				r.LastJobID = parts[2]
			}
		}
	}
	return out, nil
}

// PeriodicInit sets the first next tick of a schedule read at version.
func (db *DB) PeriodicInit(ctx context.Context, name, version string, next int64) error {
	return periodicInitScript.Run(ctx, db.C, []string{db.Keys.Periodic()}, name, version, next).Err()
}

// Outcomes of PeriodicClaim.
const (
	ClaimClaimed = "claimed"
	ClaimSkipped = "skipped"
	ClaimChanged = "changed"
	ClaimMoved   = "moved"
	ClaimPending = "pending"
)

// PeriodicClaim claims tick (or skips it when enqueue is false) for a
// schedule read at version with next tick next; nextAfter is the tick after
// it. It returns one of the Claim* outcomes and, when claimed, the pending
// value to commit.
func (db *DB) PeriodicClaim(ctx context.Context, name, version string, next, tick, nextAfter int64, enqueue bool, now int64) (string, string, error) {
	flag := "0"
	if enqueue {
		flag = "1"
	}
	res, err := periodicClaimScript.Run(ctx, db.C, []string{db.Keys.Periodic()},
		name, version, next, tick, nextAfter, flag, now).Text()
	if err != nil {
		return "", "", err
	}
	return res, fmt.Sprintf("%d|%d|%d", tick, nextAfter, now), nil
}

// PeriodicCommit records that the claim pending (as read) enqueued job
// jobID, and moves the schedule to the tick after it. False if the claim was
// no longer pending.
func (db *DB) PeriodicCommit(ctx context.Context, name, pending, jobID string, now int64) (bool, error) {
	tick, nextAfter, _, ok := PendingClaim(pending)
	if !ok {
		return false, fmt.Errorf("rdb: malformed periodic claim %q", pending)
	}
	n, err := periodicCommitScript.Run(ctx, db.C, []string{db.Keys.Periodic()},
		name, pending, nextAfter, tick, jobID, now).Int()
	return n == 1, err
}
