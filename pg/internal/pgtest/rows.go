package pgtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/keyset"
)

// RowsKind is the kind of the transactional rows job; PlainRowsKind that
// of the same work without transactional checkpoints.
const (
	RowsKind      = "tx-rows"
	PlainRowsKind = "plain-rows"
)

// RowsDDL creates the table the rows jobs walk, in the search_path's
// schema: each run of an item adds one to its row's n, so after any number
// of crashes n says how often the row was processed.
const RowsDDL = `CREATE TABLE tx_rows (id bigint PRIMARY KEY, n integer NOT NULL DEFAULT 0)`

// FillRows inserts rows 1..n into tx_rows with n = 0.
func FillRows(ctx context.Context, pool *pgxpool.Pool, n int) error {
	_, err := pool.Exec(ctx, `INSERT INTO tx_rows (id) SELECT generate_series(1, $1::bigint)`, n)
	return err
}

// RowCounts returns how many rows of tx_rows were processed 0, 1, 2, ...
// times (a map from n to the number of rows with that n).
func RowCounts(ctx context.Context, pool *pgxpool.Pool) (map[int]int, error) {
	rows, err := pool.Query(ctx, `SELECT n, count(*) FROM tx_rows GROUP BY n`)
	if err != nil {
		return nil, err
	}
	out := map[int]int{}
	var n, c int
	_, err = pgx.ForEachRow(rows, []any{&n, &c}, func() error { out[n] = c; return nil })
	return out, err
}

// Row is a row of tx_rows, as the jobs enumerate it.
type Row struct {
	ID int64 `db:"id"`
}

// RowsArgs are the rows jobs' arguments.
type RowsArgs struct {
	// Page is the keyset page size (0: the default).
	Page int `json:"page,omitempty"`
	// From and To bound the ids walked: From < id <= To (To 0: all rows).
	From int64 `json:"from,omitempty"`
	To   int64 `json:"to,omitempty"`
}

// RowsJob is the transactional rows job (a pg.TxBatchJob): it walks tx_rows
// by keyset and adds one to n of each row, a batch per transaction.
type RowsJob struct {
	Pool *pgxpool.Pool
	// MaxSleep bounds a random pause inside each batch's transaction,
	// where kills land (0: none).
	MaxSleep time.Duration
}

// BuildEnumerator walks tx_rows in id order.
func (j RowsJob) BuildEnumerator(ctx context.Context, a RowsArgs, c *keyset.Cursor) (enumerators.Enumerator[Row, keyset.Cursor], error) {
	cfg := keyset.Config[Row]{DB: j.Pool, Table: "tx_rows", Columns: []string{"id"}, Key: []string{"id"}, PageSize: a.Page}
	if a.To > 0 {
		cfg.Filter, cfg.Args = "id > $1 AND id <= $2", []any{a.From, a.To}
	}
	return keyset.Rows(ctx, cfg, c)
}

// EachBatchTx adds one to n of each row of the batch.
func (j RowsJob) EachBatchTx(ctx context.Context, tx pgx.Tx, _ RowsArgs, rows []Row) error {
	if err := bump(ctx, tx, rows); err != nil {
		return err
	}
	if j.MaxSleep > 0 {
		time.Sleep(rand.N(j.MaxSleep))
	}
	return nil
}

// PlainRowsJob does RowsJob's work as a plain iterable job over batches of
// Batch rows: each batch's update commits on its own, and the cursor is
// checkpointed to the cursor store only.
type PlainRowsJob struct {
	Pool  *pgxpool.Pool
	Batch int
}

// BuildEnumerator walks tx_rows in id order, in batches.
func (j PlainRowsJob) BuildEnumerator(ctx context.Context, a RowsArgs, c *keyset.Cursor) (enumerators.Enumerator[[]Row, keyset.Cursor], error) {
	e, err := RowsJob{Pool: j.Pool}.BuildEnumerator(ctx, a, c)
	if err != nil {
		return nil, err
	}
	return enumerators.Batches(e, j.Batch), nil
}

// EachIteration adds one to n of each row of the batch.
func (j PlainRowsJob) EachIteration(ctx context.Context, _ RowsArgs, rows []Row) error {
	return bump(ctx, j.Pool, rows)
}

// execer is what bump needs: a pgx.Tx or a pool.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func bump(ctx context.Context, db execer, rows []Row) error {
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	tag, err := db.Exec(ctx, `UPDATE tx_rows SET n = n + 1 WHERE id = ANY($1)`, ids)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != int64(len(rows)) {
		return fmt.Errorf("pgtest: updated %d rows of %d", tag.RowsAffected(), len(rows))
	}
	return nil
}
