// Package pg adds exactly-once features on PostgreSQL (pgx v5) to iterjob,
// which keeps Redis as its fast queue: iterable jobs whose items commit
// with their cursor (transactional checkpoints), jobs staged inside the
// application's transactions (an outbox), and idempotent step workflows
// with a recovery point, persisted attributes and steps that await groups
// of jobs.
//
// Use it when an item's effect must happen exactly once even across kill -9
// (credit an account, count an event), when a job's existence must follow a
// database transaction (enqueue in a transaction that may roll back), or
// when an operation of several steps must run each step once even across
// crashes and retries (create a record, charge a card, send a receipt).
// Everything else stays on Redis: a job that does not need these guarantees
// pays nothing for them.
//
// # Schema
//
// Migrate creates the tables in a schema the caller names (default
// SchemaDefault, "iterjob") from SQL migrations embedded in the binary,
// numbered files applied in order, each once, in one transaction under an
// advisory lock: every process may call it at start-up. The versions applied
// are recorded in the schema's migrations table. Migrations returns the SQL
// for applications that run migrations with their own tool.
//
//	if _, err := pg.Migrate(ctx, pool, nil); err != nil { ... }
//
// The tables:
//
//   - migrations(version, name, applied_at): the migrations applied.
//   - outbox(id, job_id, kind, queue, args, max_attempts, run_at, meta,
//     created_at): staged jobs not yet pushed to Redis. id is the drain order;
//     job_id the id the job gets in the queue. A statement-level trigger sends
//     NOTIFY iterjob_outbox (payload: the schema) at commit.
//   - workflows(id, name, idempotency_key, args, step, attrs, status,
//     await_step, error, queue, max_attempts, job_id, locked_by, locked_run,
//     locked_until, created_at, updated_at, finished_at): one row per workflow
//     run, unique by (name, idempotency_key). step is the recovery point (the
//     first step not committed; NULL once all are), attrs the persisted
//     attributes (JSONB), status one of running, awaiting, succeeded, failed,
//     cancelled; locked_* is the claim of the job run working on it.
//   - workflow_jobs(job_id, workflow_id, step, kind, state, error, created_at,
//     finished_at): jobs a step staged and awaits, grouped by the step, with
//     each one's outcome (pending, succeeded, failed).
//   - job_cursors(job_id, kind, run, cursor, status, executions,
//     items_processed, first_started_at, last_checkpoint_at, updated_at): the
//     committed state of each unfinished job with transactional checkpoints:
//     the run number that owns it (the fencing token), the cursor after the
//     last item committed, the items committed, and how the owning run
//     stands (running, interrupted, failed). A job's last run deletes its
//     row when the job completes or is cancelled; PruneCursors deletes rows
//     left behind (jobs deleted from the dead set, a process that died
//     between a job's completion and that delete).
//
// # Transactional checkpoints
//
// A job opts in by doing its database work through the transaction it is
// given: a TxJob has EachIterationTx(ctx, tx, args, item), a TxBatchJob has
// EachBatchTx(ctx, tx, args, items) over groups of its enumerator's items.
// Transactional and TransactionalBatches wrap them for
// runner.RegisterIterable:
//
//	job, err := pg.TransactionalBatches(Interest{pool: pool}, 100, pg.TxConfig{Pool: pool})
//	runner.RegisterIterable(reg, "interest", job, nil)
//
//	func (j Interest) EachBatchTx(ctx context.Context, tx pgx.Tx, a Args, accts []Account) error {
//		_, err := tx.Exec(ctx, `UPDATE accounts SET cents = cents + $2 WHERE id = ANY($1)`, ids(accts), a.Cents)
//		return err
//	}
//
// For each item (or group) the runner opens a transaction, calls the job,
// then in one round trip records the cursor after the item in job_cursors,
// where the run number is still its own, and commits. A committed item never
// runs again; an item that did not commit left nothing and runs again. On
// resume the committed cursor is the source of truth; the cursor store in
// Redis keeps a mirror, saved at checkpoints and at the end of each run as
// usual, for progress and the dashboard.
//
// Fencing: each run claims the job's row with its run number (which grows
// with every run), and a commit whose run no longer owns the row fails and
// rolls back, so two runs of one job (one presumed dead, but alive) never
// both commit. What an item does outside the database is not rolled back:
// pass an idempotency key to outside systems.
//
// Each item costs a transaction, so group small items: with batches of 100
// the transactional mode moves about 0.8 times the rows per second of the
// same job without it (BenchmarkTxCheckpoints).
//
// # Staged jobs
//
// EnqueueTx writes a job into the outbox inside the caller's pgx.Tx and
// returns the id the job will have in the queue. If the transaction rolls
// back there is no job, ever; once it commits, the job reaches Redis:
//
//	tx, _ := pool.Begin(ctx)
//	defer tx.Rollback(ctx)
//	_, _ = tx.Exec(ctx, `INSERT INTO users (name) VALUES ($1)`, name)
//	jid, err := pg.EnqueueTx(ctx, tx, "welcome", WelcomeArgs{User: name}, nil)
//	...
//	err = tx.Commit(ctx)
//
// EnqueueManyTx stages many jobs in one statement; Schema("name").EnqueueTx
// stages in another schema. A Drainer, run by any number of processes with
// one active at a time, pushes committed rows to Redis and deletes them,
// woken by the trigger's notification within a millisecond or two of the
// commit and polling as a fallback. A drainer that dies between a push and
// its delete leaves the rows for the next, which pushes them again; the
// second push adds no job: every job is enqueued under the id EnqueueTx
// returned (queue.EnqueueOpts.ID), which the queue remembers for the
// client's IDRetention (24 h by default).
//
//	client, _ := queue.NewClient(rdb, queue.Config{})
//	d, _ := pg.NewDrainer(pg.DrainerConfig{DB: pool, Client: client})
//	_ = d.Start(ctx)
//	defer d.Stop(ctx)
//
// # Workflows
//
// A workflow is a job made of named steps run in order under an idempotency
// key. Args A are given when it starts; attributes T persist across steps
// and retries:
//
//	checkout, err := pg.NewWorkflow(pg.WorkflowConfig[Order, Progress]{
//		Name: "checkout", DB: pool,
//		Steps: []pg.Step[Order, Progress]{
//			{Name: "reserve", Run: reserve},
//			{Name: "charge", Run: func(ctx context.Context, tx pgx.Tx, s *pg.StepContext[Order, Progress]) error {
//				ch, err := payments.Charge(ctx, s.Args.Amount, s.IdempotencyKey())
//				s.Attrs.ChargeID = ch.ID
//				return err
//			}},
//			{Name: "ship", Run: func(ctx context.Context, tx pgx.Tx, s *pg.StepContext[Order, Progress]) error {
//				_, err := s.Await(ctx, "ship", ShipArgs{Order: s.Args.ID}, nil)
//				return err
//			}},
//			{Name: "receipt", Run: func(ctx context.Context, tx pgx.Tx, s *pg.StepContext[Order, Progress]) error {
//				_, err := s.EnqueueTx(ctx, "receipt", ReceiptArgs{Charge: s.Attrs.ChargeID}, nil)
//				return err
//			}},
//		},
//	})
//	checkout.Register(reg, nil)
//	id, err := checkout.Start(ctx, "order-"+orderID, order) // or StartTx in the app's transaction
//
// Each step runs in a transaction that also saves the attributes and moves
// the recovery point past the step; the commit makes both durable together.
// A step that fails rolls back (its attribute changes too) and the job
// retries with the runner's backoff, from that step; a crash does the same.
// A step that committed never runs again. What a step does outside the
// database is not rolled back: pass s.IdempotencyKey(), stable per workflow
// run and step, to outside systems, so that a step run again after a crash
// repeats no effect there.
//
// Starting twice with one key starts one run and returns its id both times
// (ErrKeyReused if the arguments differ). The run's row and its first job
// are written in the same transaction, the job through the outbox.
//
// A step may stage jobs (s.EnqueueTx) and await jobs (s.Await): once the
// step commits, the workflow waits without holding a worker; the next step
// runs when all the awaited jobs succeeded, and if any died or was cancelled
// the workflow fails with an *AwaitError naming them (its job dies with that
// error). The runner middleware from NewMiddleware records each awaited job's
// outcome in PostgreSQL before the runner acknowledges the run, and the job
// that completes the group stages the workflow's continuation in the same
// transaction: waking is as durable as the outcome, and nothing polls.
// Runners that run awaited kinds must use it.
//
// Workflow.Load returns a run's state: status, recovery point, attributes,
// last error, awaited jobs and their outcomes.
//
// # Limits of this version
//
// A transactional job holds a pool connection per item's transaction; a
// process frozen inside one (SIGSTOP, a long GC pause) holds its row locks
// until it resumes, and the newer run that took its job waits on them. Set
// idle_in_transaction_session_timeout on the pool's connections to bound
// that wait. A job that switches to transactional checkpoints while it has
// a cursor in Redis resumes from that cursor; its committed item count
// starts at zero.
//
// Staged jobs cannot set UniqueKey or ID (ErrUniqueKeyUnsupported): a
// staged job is unique by the id EnqueueTx gives it. A drainer that stays
// down for longer than the drainer client's IDRetention after a push it
// could not record would push those rows again as new jobs.
//
// A runner middleware sees a run end with a nil error both when a job
// succeeded and when it was interrupted; the middleware asks the cursor store
// to tell an iterable job's completion from an interruption. A plain awaited
// job that returned nil as a hard stop cancelled its context is not recorded
// (it may have been interrupted), so a workflow awaiting it waits until it
// runs again; if it had in fact succeeded, nothing runs it again and the
// workflow keeps waiting. A job cancelled while it waits in a queue (not
// running) is removed without running, so its outcome is never recorded
// either.
package pg
