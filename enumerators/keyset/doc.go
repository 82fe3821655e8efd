// Package keyset enumerates the rows of a PostgreSQL table or query by
// keyset pagination over pgx: each page is one indexed range query after the
// key of the last row, never OFFSET, so resuming at row 10,000,000 costs what
// starting costs.
//
// # Walkthrough
//
// Describe the rows and the unique key that orders them in a Config, and
// build the enumerator from the cursor the job's last run saved (nil on the
// first run):
//
//	type Account struct {
//		ID    int64  `db:"id"`
//		Email string `db:"email"`
//	}
//
//	func (j *Backfill) BuildEnumerator(ctx context.Context, a BackfillArgs, c *keyset.Cursor) (enumerators.Enumerator[Account, keyset.Cursor], error) {
//		return keyset.Rows(ctx, keyset.Config[Account]{
//			DB:     j.pool, // a *pgxpool.Pool, *pgx.Conn or pgx.Tx
//			Table:  "accounts",
//			Key:    []string{"id"},
//			Filter: "tenant_id = $1",
//			Args:   []any{a.TenantID},
//		}, c)
//	}
//
// Rows yields one row at a time; Pages yields whole pages, for jobs that
// write in bulk. Each item's Cursor is the key of its (last) row, as strings
// PostgreSQL reads back exactly, so it survives the JSON the runner saves.
//
// # What is checked
//
// Building reads the catalog: the key columns must be in the result, of a
// type cursors can hold (integers, numeric, text, uuid, date, timestamps),
// and unique, by a primary key or unique index of the table (ErrNotUnique
// otherwise, unless Config.AllowNonUnique). A Config that cannot work (a
// base Query with its own top-level ORDER BY or LIMIT, for one) is an error
// matching ErrConfig; a NULL key met while reading is ErrNullKey; a
// cursor that does not fit the key matches enumerators.ErrInvalidCursor.
//
// # Connections
//
// A page is read whole before its first row is yielded, so no connection is
// held while the job works on a row. Config.Prefetch reads the next page
// during that time instead, on a connection of its own.
package keyset
