package pg_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/keyset"
	"github.com/iterjob/iterjob/iterjobtest"
	"github.com/iterjob/iterjob/pg"
)

type interestArgs struct {
	Cents int `json:"cents"`
}

type account struct {
	ID int64 `db:"id"`
}

// interest credits every account once: a job whose effect must not repeat.
type interest struct{ pool *pgxpool.Pool }

func (j interest) BuildEnumerator(ctx context.Context, _ interestArgs, c *keyset.Cursor) (enumerators.Enumerator[account, keyset.Cursor], error) {
	return keyset.Rows(ctx, keyset.Config[account]{DB: j.pool, Table: "accounts", Columns: []string{"id"}, Key: []string{"id"}}, c)
}

// EachBatchTx credits a batch of accounts in the transaction that also
// records the cursor after the batch.
func (j interest) EachBatchTx(ctx context.Context, tx pgx.Tx, a interestArgs, batch []account) error {
	ids := make([]int64, len(batch))
	for i, acc := range batch {
		ids[i] = acc.ID
	}
	_, err := tx.Exec(ctx, `UPDATE accounts SET cents = cents + $2, credits = credits + 1 WHERE id = ANY($1)`, ids, a.Cents)
	return err
}

// A job with transactional checkpoints commits each batch's work with the
// cursor after it. Here its first run dies right after its second batch
// committed, before any checkpoint reached the cursor store (as kill -9
// would); the second run resumes from the committed cursor, so no account
// is credited twice. (Without transactional checkpoints the second run
// would start over and credit the first 8 accounts again.)
//
// The example needs PostgreSQL (TEST_DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/test), so it has no Output comment and
// `go test` only compiles it; TestExampleTransactional runs it and checks
// that it prints:
//
//	run 1 crashed after 2 batches; committed cursor {"key": ["8"]}
//	run 2 completed after 3 batches
//	accounts credited once: 20 of 20
func ExampleTransactionalBatches() {
	ctx := context.Background()
	pool, schema, _, cleanup := exampleEnv(ctx)
	defer cleanup()
	if _, err := pg.Migrate(ctx, pool, &pg.MigrateOpts{Schema: schema, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE accounts (id bigint PRIMARY KEY, cents int NOT NULL DEFAULT 0, credits int NOT NULL DEFAULT 0);
		INSERT INTO accounts (id) SELECT generate_series(1, 20)`); err != nil {
		fmt.Println(err)
		return
	}

	// In a worker: runner.RegisterIterable(reg, "interest", job, nil).
	job, err := pg.TransactionalBatches(interest{pool: pool}, 4, pg.TxConfig{Pool: pool, Schema: schema})
	if err != nil {
		fmt.Println(err)
		return
	}
	args := interestArgs{Cents: 150}
	first, err := iterjobtest.IterateWith(ctx, job, args, nil, iterjobtest.Options{CrashAfter: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := pg.LoadCursor(ctx, pool, schema, first.Info.JobID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("run 1 crashed after %d batches; committed cursor %s\n", first.Items, c.Cursor)
	second, err := iterjobtest.Iterate(ctx, job, args, first, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("run 2 %s after %d batches\n", second.Stop, second.Items)
	var once, total int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE credits = 1 AND cents = 150), count(*) FROM accounts`).Scan(&once, &total); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("accounts credited once: %d of %d\n", once, total)
}
