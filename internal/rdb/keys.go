// Package rdb holds all of iterjob's Redis access: the key layout, the Lua
// scripts that change several keys at once, and typed calls for everything
// else. Nothing here is public API.
//
// # Layout
//
// Keys live in hash-tag groups, so that Redis Cluster can spread them: every
// script touches the keys of one group, and receives every key it touches in
// KEYS. On a single Redis the groups are only names, and one call may span
// several (a fetch looks at all of a runner's queues at once).
//
// Global group, G = "{ns}:" (small, touched about once per call, never per
// job):
//
//	G queues          set of queue names ever used
//	G procs           sorted set: worker processes, score = last heartbeat (ms, Redis clock)
//	G reaping         sorted set: processes found dead whose queues are being reaped
//	G proc:<id>       hash: a process's info, busy jobs, beat, liveness channel, interval
//	G epoch           a token set once per namespace: its loss tells that Redis lost the data
//	G events          stream of lifecycle events; an entry holds a batch (fields n, e = JSON array)
//	G events:idx      list: one "cum n id" per stream entry, oldest first (cum: events ever
//	                  appended, n: the entry's events), so trimming by events never reads entries
//	G notify          pub/sub channel: a queue got work (message = queue name)
//	G alive:<id>      pub/sub channel a live process stays subscribed to
//	G periodic        hash: periodic schedules, their next tick, pending claim and last tick (see periodic.go)
//
// One group per queue, Q = "{ns/<queue>}:" ('/' is not allowed in names, so
// no two namespaces or queues share a tag):
//
//	Q jobs            list of envelopes waiting (head = next)
//	Q inflight:<id>   hash: job id -> "<lease>|<envelope>" for each job process <id> holds
//	Q started:<id>    hash: job id -> lease, for the recovered jobs process <id> started
//	Q leases          the last lease handed out (a hybrid clock: see fetchScript)
//	Q paused          flag: workers do not fetch from the queue
//	Q idle            flag: a worker found the queue empty and waits for a notification
//	Q cancels         sorted set: ids of jobs whose cancellation is pending, score = request time
//	Q sched           sorted set: ids of jobs due later, score = due time (ms)
//	Q retry           sorted set: ids of jobs waiting to retry, score = due time (ms)
//	Q dead            sorted set: ids of dead jobs, score = time of death (ms)
//	Q parked          hash: job id -> envelope, for the jobs in sched, retry and dead
//	Q errors          hash: job id -> last error (JSON), for the jobs in retry and dead
//	Q unique          sorted set: uniqueness hash -> expiry (ms; the year 9999: until the job finishes)
//	Q unique:jid      hash: uniqueness hash -> the job id holding it
//	Q ids             sorted set: caller-chosen job ids enqueued lately, score = when they may be used again
//	Q stats           hash: processed, failed, processed:<yyyy-mm-dd>, failed:<yyyy-mm-dd>
//	Q calls           hash: call token -> reply, so a call the client retried is not applied twice
//	Q calls:at        sorted set: call token -> time, to forget replies after a minute
//	Q procs           hash: process id -> time it registered: the processes that may fetch from the queue
//
// One group per iterable job, "{ns/it/<jid>}": the job's iteration state
// (a hash: cursor, counters, run), read and written only by the cursor
// store.
//
// Uniqueness keys, caller-chosen ids and statistics are per queue: a
// uniqueness key held in one queue does not stop a job in another.
package rdb

// NamespaceDefault is the namespace used when none is configured.
const NamespaceDefault = "iterjob"

// Keys builds the keys of one namespace.
type Keys struct {
	ns string
	g  string // "{ns}:"
}

// NewKeys returns the key builder of namespace ns.
func NewKeys(ns string) Keys {
	if ns == "" {
		ns = NamespaceDefault
	}
	return Keys{ns: ns, g: "{" + ns + "}:"}
}

// Namespace returns the namespace.
func (k Keys) Namespace() string { return k.ns }

// Pattern matches every key of the namespace (for SCAN).
func (k Keys) Pattern() string { return "{" + k.ns + "[}/]*" }

func (k Keys) Queues() string         { return k.g + "queues" }
func (k Keys) Procs() string          { return k.g + "procs" }
func (k Keys) Reaping() string        { return k.g + "reaping" }
func (k Keys) Proc(id string) string  { return k.g + "proc:" + id }
func (k Keys) Epoch() string          { return k.g + "epoch" }
func (k Keys) Events() string         { return k.g + "events" }
func (k Keys) EventsIndex() string    { return k.g + "events:idx" }
func (k Keys) Notify() string         { return k.g + "notify" }
func (k Keys) Alive(id string) string { return k.g + "alive:" + id }

// Iter is the key of job jid's iteration state.
func (k Keys) Iter(jid string) string { return "{" + k.ns + "/it/" + jid + "}" }

// Q returns the keys of queue q.
func (k Keys) Q(q string) QKeys { return QKeys{p: "{" + k.ns + "/" + q + "}:", name: q} }

// QKeys builds the keys of one queue.
type QKeys struct {
	p    string // "{ns/queue}:"
	name string
}

// Name is the queue's name.
func (q QKeys) Name() string { return q.name }

func (q QKeys) Jobs() string                { return q.p + "jobs" }
func (q QKeys) Inflight(proc string) string { return q.p + "inflight:" + proc }
func (q QKeys) Started(proc string) string  { return q.p + "started:" + proc }
func (q QKeys) Leases() string              { return q.p + "leases" }
func (q QKeys) Paused() string              { return q.p + "paused" }
func (q QKeys) Idle() string                { return q.p + "idle" }
func (q QKeys) Cancels() string             { return q.p + "cancels" }
func (q QKeys) Sched() string               { return q.p + "sched" }
func (q QKeys) Retry() string               { return q.p + "retry" }
func (q QKeys) Dead() string                { return q.p + "dead" }
func (q QKeys) Parked() string              { return q.p + "parked" }
func (q QKeys) Errors() string              { return q.p + "errors" }
func (q QKeys) Unique() string              { return q.p + "unique" }
func (q QKeys) UniqueJID() string           { return q.p + "unique:jid" }
func (q QKeys) IDs() string                 { return q.p + "ids" }
func (q QKeys) Stats() string               { return q.p + "stats" }
func (q QKeys) Calls() string               { return q.p + "calls" }
func (q QKeys) CallsAt() string             { return q.p + "calls:at" }
func (q QKeys) Procs() string               { return q.p + "procs" }

// Set returns the key of the sorted set named "scheduled", "retry" or
// "dead".
func (q QKeys) Set(name string) string {
	switch name {
	case "scheduled":
		return q.Sched()
	case "retry":
		return q.Retry()
	}
	return q.Dead()
}

// block is the keys every queue script receives for a queue, in this order
// (see luaLib's qkeys): scripts read the ones they need by name.
func (q QKeys) block(proc string) []string {
	return []string{
		q.Jobs(), q.Inflight(proc), q.Started(proc), q.Leases(), q.Paused(), q.Idle(), q.Cancels(),
		q.Sched(), q.Retry(), q.Dead(), q.Parked(), q.Errors(), q.Unique(), q.UniqueJID(), q.IDs(),
		q.Stats(), q.Calls(), q.CallsAt(), q.Procs(),
	}
}

// blockLen is len(block(...)).
const blockLen = 19
