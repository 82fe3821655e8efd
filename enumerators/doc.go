// Package enumerators holds the enumerator contract and the built-in
// enumerators iterable jobs walk.
//
// # The contract
//
// An Enumerator yields items in a fixed order, each with the cursor that
// resumes after it: built again from that cursor, it yields the next item
// first, so nothing is skipped and nothing repeated. Enumerators are
// push-style: Enumerate is a plain loop that calls yield and releases what it
// holds when yield returns false. A cursor is a small value the runner saves
// as JSON; a cursor that does not fit the data is an error matching
// ErrInvalidCursor.
//
// An iterable job builds its enumerator from the cursor its last run saved
// (nil on the first run):
//
//	func (j Sweep) BuildEnumerator(_ context.Context, a SweepArgs, c *int64) (enumerators.Enumerator[int64, int64], error) {
//		return enumerators.Batches(enumerators.Range(0, a.Count, c), 100), nil
//	}
//
// All and Collect drive an enumerator by hand, for tests. The conformance
// suite in package enumtest checks any enumerator against the contract.
//
// # Built-ins
//
//   - Slice and Range: cursor = the next index or integer.
//   - Batches: groups of n items; the cursor moves only after a whole batch.
//   - Limit: the first n items, counted across runs (the count travels in
//     the cursor).
//   - Nested: an inner enumeration per outer item; a stale inner cursor is
//     discarded, never applied to another outer item.
//   - Throttle: ends the enumeration with a ThrottledError while the system
//     is under pressure; the runner reschedules the job.
//
// Enumerators may report their size (ProgressReporter) so the runner can
// record progress as a fraction and an ETA.
//
// # Drivers
//
// Enumerators over external data live in packages of their own, so that a
// job package that imports this one links no database or file-format
// library:
//
//   - enumerators/keyset: a PostgreSQL table or query walked by keyset
//     pagination over pgx, cursor = the key tuple of the last row; never
//     OFFSET.
//   - enumerators/csvrows: CSV rows decoded with gocsv, cursor = the byte
//     offset and line after the last row; resuming seeks instead of
//     re-reading.
package enumerators
