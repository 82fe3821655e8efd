package keyset_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators/keyset"
	"github.com/iterjob/iterjob/internal/testutil"
)

// A job walks the paid orders of a table by primary key, is interrupted
// after two orders, and resumes from its saved cursor in its next run.
//
// The example needs PostgreSQL (TEST_DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/test), so it has no Output comment and
// `go test` only compiles it; TestExampleRows runs it and checks that it
// prints:
//
//	run 1: order 2 (Ada, 120.00)
//	run 1: order 3 (Zoë, 99.50)
//	saved cursor: {"key":["3"]}
//	run 2: order 5 (Zoë, 15.00)
//	run 2: order 8 (Ada, 1000.00)
//	run 2: done
func ExampleRows() {
	ctx := context.Background()
	// A pool on a schema holding orders(id bigint PRIMARY KEY, customer
	// text, total numeric, paid bool).
	pool, cleanup := exampleOrdersDB(ctx)
	defer cleanup()

	type order struct {
		ID       int64  `db:"id"`
		Customer string `db:"customer"`
		Total    string `db:"total"`
	}
	cfg := keyset.Config[order]{
		DB:       pool,
		Table:    "orders",
		Columns:  []string{"id", "customer", "total"},
		Key:      []string{"id"},
		Filter:   "paid AND customer <> $1",
		Args:     []any{"Mallory"},
		PageSize: 2,
	}

	// The first run stops after two orders, as a job does when it is asked
	// to stop, and saves the cursor after the last order it finished.
	e, err := keyset.Rows(ctx, cfg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	var saved []byte
	done := 0
	err = e.Enumerate(ctx, func(o order, after keyset.Cursor) bool {
		fmt.Printf("run 1: order %d (%s, %s)\n", o.ID, o.Customer, o.Total)
		saved, _ = cursor.Encode(after)
		done++
		return done < 2
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("saved cursor:", string(saved))

	// The next run builds the enumerator from the saved cursor: it starts
	// after order 3 with one range query, however many orders lie before.
	from, err := cursor.Decode[keyset.Cursor](saved)
	if err != nil {
		fmt.Println(err)
		return
	}
	e, err = keyset.Rows(ctx, cfg, from)
	if err != nil {
		fmt.Println(err)
		return
	}
	err = e.Enumerate(ctx, func(o order, _ keyset.Cursor) bool {
		fmt.Printf("run 2: order %d (%s, %s)\n", o.ID, o.Customer, o.Total)
		return true
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("run 2: done")
}

// exampleOrdersDB creates a schema with the example's orders table and
// returns a pool whose connections use it, and a function that drops it.
func exampleOrdersDB(ctx context.Context) (*pgxpool.Pool, func()) {
	cfg, err := pgxpool.ParseConfig(testutil.DatabaseURL())
	if err != nil {
		panic(err)
	}
	schema := testutil.Unique("example_")
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		panic(err)
	}
	for _, sql := range []string{
		"CREATE SCHEMA " + schema,
		`CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric(10, 2) NOT NULL, paid bool NOT NULL)`,
		`INSERT INTO orders VALUES
			(1, 'Ada', 10, false), (2, 'Ada', 120, true), (3, 'Zoë', 99.5, true), (4, 'Mallory', 5, true),
			(5, 'Zoë', 15, true), (6, 'Ada', 7, false), (7, 'Mallory', 70, true), (8, 'Ada', 1000, true)`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			pool.Close()
			panic(err)
		}
	}
	return pool, func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		pool.Close()
	}
}
