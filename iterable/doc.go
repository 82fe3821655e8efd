// Package iterable defines the jobs iterjob runs: iterable jobs, which walk
// an enumeration item by item and can be interrupted and resumed at any
// item, and plain jobs, which run whole.
//
// # Iterable jobs
//
// An iterable job has arguments A, items T and a cursor C:
//
//	type Reindex struct {
//		pool  *pgxpool.Pool
//		index *search.Index
//	}
//
//	func (j Reindex) BuildEnumerator(ctx context.Context, a ReindexArgs, c *keyset.Cursor) (enumerators.Enumerator[Doc, keyset.Cursor], error) {
//		return keyset.Rows(ctx, keyset.Config[Doc]{DB: j.pool, Table: "docs", Key: []string{"id"}}, c)
//	}
//
//	func (j Reindex) EachIteration(ctx context.Context, a ReindexArgs, d Doc) error {
//		return j.index.Put(ctx, d)
//	}
//
// The runner builds the enumerator from the cursor the last run saved (nil
// on the first run) and calls EachIteration once per item. The cursor that
// goes with an item is the position after it: once EachIteration returns
// nil the runner advances its cursor in memory, so a resumed job never
// repeats a finished item nor skips an unfinished one. The cursor is saved
// to Redis at most once per checkpoint interval and whenever a run ends,
// never per item; an item finished after the last save runs again if the
// process dies, so EachIteration must be idempotent.
//
// # Transactional checkpoints
//
// A job whose items must run exactly once, even across kill -9, commits each
// item's database work and the cursor after it in one transaction: it
// implements Committer, and the committed cursor, fenced by the run's
// number, is where every run resumes. Package pg provides it on PostgreSQL
// (pg.Transactional, pg.TransactionalBatches) for jobs with an
// EachIterationTx method.
//
// # Hooks
//
// A job may implement Starter (first run), Resumer (every later run),
// Completer (the enumeration is exhausted) and Stopper (every run's end,
// with a StopReason). They receive the job's arguments and a context
// carrying Info about the run. A job cancelled before a run starts gets
// OnStart or OnResume, then OnStop(Cancelled), and iterates nothing.
//
// # Steering errors
//
// A job steers the runner with the errors it returns: SkipRetry sends it
// straight to the dead set, Snooze reschedules it without using an attempt,
// Cancel ends it for good. Any other error is retried with backoff, and an
// iterable job resumes at the item that failed.
package iterable
