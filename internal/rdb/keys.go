// Package rdb holds iterjob's Redis layout: key builders and the Lua scripts
// that change several keys at once. Nothing here is public API.
//
// Every key lives under one namespace wrapped in a hash tag, "{ns}:", so all
// keys of a namespace hash to one Redis Cluster slot and every script may
// touch any of them atomically. A namespace is therefore served by one shard;
// spread load across shards with several namespaces.
//
// Layout, with p = "{ns}:":
//
//	p q:<queue>          list of job envelopes waiting in a queue (head = next)
//	p queues             set of queue names ever used
//	p paused             set of paused queue names
//	p idle:<queue>       flag: a worker found <queue> empty and waits for a notification
//	p notify             pub/sub channel: a queue got work (message = queue name)
//	p events             pub/sub channel: lifecycle events as JSON
//	p epoch              random token set by the first process to beat: gone or changed means Redis lost the data
//	p leases             the last lease number handed out (a hybrid clock: see fetchScript)
//	p inflight:<id>      hash: job id -> "<lease>|<envelope>" for each job a process holds
//	p started:<id>       hash: job id -> lease, for the recovered jobs a process started
//	p scheduled          sorted set: ids of jobs due later, score = due time in ms
//	p retry              sorted set: ids of jobs waiting to retry, score = due time in ms
//	p dead               sorted set: ids of dead jobs, score = time of death in ms
//	p j:<jid>            hash: envelope and last error of a job in one of those sets
//	p cancels            sorted set: ids of jobs whose cancellation is pending, score = request time in ms
//	p call:<token>       the reply of a script call, kept a minute, so a call the client retries is not applied twice
//	p ids               sorted set: caller-chosen job ids enqueued lately, score = when they may be used again (ms)
//	p u:<hash>           string: the job id holding a uniqueness key (hash of the key)
//	p procs              sorted set: worker processes, score = last heartbeat in ms (server time)
//	p proc:<id>          hash: a process's info, busy jobs, liveness channel and heartbeat interval
//	p alive:<id>         pub/sub channel a live process stays subscribed to (see reapScript)
//	p it:<jid>           hash: an iterable job's state (cursor, counters, run)
//	p stat:<name>        counters (processed, failed), p stat:<name>:<yyyy-mm-dd> per day
package rdb

// NamespaceDefault is the namespace used when none is configured.
const NamespaceDefault = "iterjob"

// Keys builds the keys of one namespace.
type Keys struct {
	p string // "{ns}:"
}

// NewKeys returns the key builder of namespace ns.
func NewKeys(ns string) Keys {
	if ns == "" {
		ns = NamespaceDefault
	}
	return Keys{p: "{" + ns + "}:"}
}

// Prefix is the "{ns}:" prefix every key starts with; scripts build keys from it.
func (k Keys) Prefix() string { return k.p }

func (k Keys) Queue(q string) string           { return k.p + "q:" + q }
func (k Keys) Queues() string                  { return k.p + "queues" }
func (k Keys) Paused() string                  { return k.p + "paused" }
func (k Keys) Notify() string                  { return k.p + "notify" }
func (k Keys) Events() string                  { return k.p + "events" }
func (k Keys) Job(jid string) string           { return k.p + "j:" + jid }
func (k Keys) Scheduled() string               { return k.p + "scheduled" }
func (k Keys) Retry() string                   { return k.p + "retry" }
func (k Keys) Dead() string                    { return k.p + "dead" }
func (k Keys) Procs() string                   { return k.p + "procs" }
func (k Keys) Proc(id string) string           { return k.p + "proc:" + id }
func (k Keys) Alive(id string) string          { return k.p + "alive:" + id }
func (k Keys) Inflight(id string) string       { return k.p + "inflight:" + id }
func (k Keys) Started(id string) string        { return k.p + "started:" + id }
func (k Keys) Cancels() string                 { return k.p + "cancels" }
func (k Keys) IDs() string                     { return k.p + "ids" }
func (k Keys) Leases() string                  { return k.p + "leases" }
func (k Keys) Epoch() string                   { return k.p + "epoch" }
func (k Keys) Iter(jid string) string          { return k.p + "it:" + jid }
func (k Keys) Stat(name string) string         { return k.p + "stat:" + name }
func (k Keys) StatDay(name, day string) string { return k.p + "stat:" + name + ":" + day }
