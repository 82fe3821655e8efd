// Package csvrows enumerates the rows of CSV data, each decoded by gocsv
// into a struct whose fields name their columns with `csv:"..."` tags. The
// cursor is the byte offset and line after a row, so a resumed job seeks
// to its row instead of reading the data again.
//
// # Walkthrough
//
// Build the enumerator from the cursor the job's last run saved (nil on the
// first run). FromFile opens the file on every run and closes it when the
// run ends; FromReader reads an io.Reader the caller owns.
//
//	type Account struct {
//		Email string `csv:"email"`
//		Plan  string `csv:"plan"`
//	}
//
//	func (j *Import) BuildEnumerator(_ context.Context, a ImportArgs, c *csvrows.Cursor) (enumerators.Enumerator[Account, csvrows.Cursor], error) {
//		return csvrows.FromFile[Account](a.Path, c, csvrows.Config{RequireHeader: true}), nil
//	}
//
// The first line is the header. Config sets the delimiter, comments, quoting
// rules and whether the header must name every mapped field; the zero Config
// reads RFC 4180 data with a header.
//
// # Errors
//
// A malformed row (bad quoting, a wrong field count, a value that does not
// decode) ends the enumeration with a *RowError naming its line in the
// data, after the rows before it were yielded. A cursor that is not a row
// boundary of the data matches enumerators.ErrInvalidCursor; a Config that
// cannot work matches ErrConfig, and a missing header or column ErrHeader.
//
// gocsv's process-wide settings are never changed: decoding uses a reader of
// this package's own, configured by Config.
package csvrows
