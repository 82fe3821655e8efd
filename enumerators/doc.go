// Package enumerators holds the enumerator contract and the built-in
// enumerators iterable jobs walk.
//
// An Enumerator yields items in a fixed order, each with the cursor that
// resumes after it. Enumerators are push-style: Enumerate is a plain loop
// that calls yield and releases what it holds when yield returns false. The
// conformance suite in package enumtest checks any enumerator against the
// contract.
//
// Built-ins:
//
//   - Slice and Range: cursor = the next index or integer.
//   - Keyset: a PostgreSQL table or query walked by keyset pagination over
//     pgx, cursor = the key tuple of the last row; never OFFSET.
//   - CSV and CSVFile: rows decoded with gocsv, cursor = the byte offset and
//     line after the last row; resuming seeks instead of re-reading.
//   - Batches: groups of n items; the cursor moves only after a whole batch.
//   - Nested: an inner enumeration per outer item; a stale inner cursor is
//     discarded, never applied to another outer item.
//   - Throttle: ends the enumeration with a ThrottledError while the system
//     is under pressure; the runner reschedules the job.
//
// Enumerators may report their size (ProgressReporter) so the runner can
// record progress as a fraction and an ETA.
package enumerators
