// Package queue is iterjob's Redis-backed job queue: a general queue that
// knows nothing of iteration (package runner adds that on top).
//
// # Enqueuing
//
// A Client enqueues jobs now (Enqueue, EnqueueMany in one round trip per
// 500 jobs), later (EnqueueOpts.In and At: a sorted set scored by due
// time), uniquely (EnqueueOpts.UniqueKey: a second enqueue while the first
// job exists reports a duplicate) and to any named queue. Client middleware
// wraps every enqueue.
//
// # Periodic jobs
//
// AddPeriodic stores a schedule (a cron spec or an @every interval, in a
// time zone); the runners of the namespace enqueue one job per tick between
// them all. RemovePeriodic removes one and PeriodicJobs lists them with their
// next run and last tick.
//
// # How runners consume
//
// Runners (package runner) fetch jobs crash-safely: one Lua call moves up to
// n jobs from a runner's queues, in weighted or strict order, into the
// process's in-flight hash with a new lease each. The process heartbeats
// (every second by default, on the Redis server's clock); a dead process is
// reaped by any live one and its jobs go back to the head of their queues
// without using an attempt. A process that died is found dead in about two
// heartbeats, by its liveness connection (a pub/sub subscription Redis drops
// when the process's sockets close); one that hangs with its connections
// open, after its dead-after interval. A job recovered too many times goes to
// the dead set as a poison pill. Every way a job leaves the in-flight hash is
// accepted only from the run holding its current lease; leases come from a
// hybrid clock, so they stay unique even if Redis loses recent writes. An
// idle runner waits on a pub/sub notification, not a polling loop, so a job
// starts within a millisecond or two of its enqueue.
//
// # Retries, the dead set and cancellation
//
// A failed job waits in the retry set until its backoff has passed; after
// its last attempt it goes to the dead set (capped by count and age) with
// its error, error type and a bounded stack trace. Cancel removes a waiting
// job or flags a running one for its runner.
//
// # Events and the admin API
//
// Every transition is a lifecycle Event (enqueued, scheduled, started,
// resumed, checkpointed, interrupted, succeeded, failed, retrying, dead,
// cancelled, deleted), passed to an in-process handler and, with
// PublishEvents, appended to a capped Redis stream in the same Lua call that
// moves the job. Subscribe reads the stream for the namespace or one job and
// resumes after an event id, so an application can stream job progress to
// its users without missing any. Job finds one job wherever it is. The
// admin API lists queues and sets page by page, moves and deletes jobs, and
// shows live processes with the jobs they run and daily counters.
//
// Each queue's keys share a Redis Cluster hash tag, as do each iterable
// job's state and a small namespace-wide group, so queues spread over a
// cluster's shards; see internal/rdb for the layout. Redis 6.2 or later is
// required.
package queue
