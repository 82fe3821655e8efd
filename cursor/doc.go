// Package cursor encodes iterable jobs' cursors and keeps their state.
//
// A cursor is any Go value that round-trips through encoding/json. Encode
// and Decode are what the runner uses; Decode is strict (unknown fields,
// trailing data and wrong JSON types are errors matching ErrInvalid), so a
// cursor saved by an older version of a job is reported, never
// half-applied.
//
// A Store keeps each job's State: its cursor, how many runs it took, how
// often it was interrupted, the items processed and the time spent. Writes
// are fenced by run number: Begin claims the state for a run, and Save
// accepts state only from the run that claimed it last, atomically, so a run
// that was presumed dead can never overwrite a newer run's cursor
// (ErrStaleRun). RedisStore keeps one hash per job and refreshes its time to
// live on every save; MemoryStore is for tests.
package cursor
