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
// # Consuming
//
// A Consumer, owned by a runner, fetches jobs crash-safely: one Lua call
// moves up to n jobs, from all the consumer's queues in weighted or strict
// order, into the process's in-flight hash with a new lease each. The
// process heartbeats (every second by default, on the Redis server's
// clock); a dead process is reaped by any live one and its jobs go back to
// the head of their queues, without using an attempt. A process that died
// is found dead in about two heartbeats, by its liveness connection (a
// pub/sub subscription Redis drops when the process's sockets close); one
// that hangs with its connections open, after DeadAfter. A job recovered
// more than MaxRecoveries times is sent to the dead set as a poison pill;
// after its first recovery a job counts only recoveries from processes that
// had started it (see Consumer.MarkStarted), and a run that made progress
// is forgiven (Consumer.Forgive). Every way a job leaves the in-flight hash
// is accepted only from the run holding its current lease; leases come from
// a hybrid clock, so they stay unique even if Redis loses recent writes. A
// process that Redis forgot with its data (a restart without persistence)
// learns it at its next heartbeat and puts back the jobs it holds
// (BeatDataLost, Consumer.Restore). An
// idle consumer waits on a pub/sub notification, not a polling loop, so a
// job starts within a millisecond or two of its enqueue.
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
// PublishEvents, published as JSON on a Redis channel that Subscribe
// reads, so an application can stream job progress to its users. The admin
// API lists queues and sets page by page, moves and deletes jobs, and shows
// live processes with the jobs they run and daily counters.
//
// All keys live under one namespace in a Redis Cluster hash tag; see
// internal/rdb for the layout. Redis 6.2 or later is required.
package queue
