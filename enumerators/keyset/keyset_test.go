package keyset_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/enumtest"
	"github.com/iterjob/iterjob/enumerators/keyset"
	"github.com/iterjob/iterjob/internal/testutil"
)

// The pgx types a keyset enumerator accepts.
var (
	_ keyset.Querier = (*pgxpool.Pool)(nil)
	_ keyset.Querier = (*pgx.Conn)(nil)
	_ keyset.Querier = pgx.Tx(nil)
)

type keysetItem struct {
	ID   int64  `db:"id"`
	Name string `db:"name"`
}

type keysetPair struct {
	A    int32  `db:"a"`
	B    int64  `db:"b"`
	Note string `db:"note"`
}

func pgExec(t testing.TB, db keyset.Querier, sql string, args ...any) {
	t.Helper()
	rows, err := db.Query(t.Context(), sql, args...)
	require.NoError(t, err, sql)
	rows.Close()
	require.NoError(t, rows.Err(), sql)
}

// acquired counts the connections of pool in use: a keyset enumerator must
// hold none between pages.
func acquired(pool *pgxpool.Pool) func() int {
	return func() int { return int(pool.Stat().AcquiredConns()) }
}

// failingQuerier fails every query from the failAt-th on with
// enumtest.ErrSource.
type failingQuerier struct {
	keyset.Querier
	calls, failAt int
}

func (f *failingQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	f.calls++
	if f.failAt > 0 && f.calls >= f.failAt {
		return nil, enumtest.ErrSource
	}
	return f.Querier.Query(ctx, sql, args...)
}

// failingAfter builds with cfg on a querier that lets the first page
// through and fails the second.
func failingAfter[T any](ctx context.Context, cfg keyset.Config[T]) (enumerators.Enumerator[T, keyset.Cursor], error) {
	f := &failingQuerier{Querier: cfg.DB}
	cfg.DB = f
	e, err := keyset.Rows(ctx, cfg, nil)
	f.failAt = f.calls + 2
	return e, err
}

// itemsTable creates items(id, name) with ids 3, 6, ..., 3n, inserted in
// random order so that the heap order is not the key order.
func itemsTable(t *testing.T, pool *pgxpool.Pool, n int) []keysetItem {
	t.Helper()
	pgExec(t, pool, `CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL)`)
	pgExec(t, pool, `INSERT INTO items SELECT i*3, 'item ' || i FROM generate_series(1, $1::int) i ORDER BY random()`, n)
	want := make([]keysetItem, n)
	for i := range want {
		want[i] = keysetItem{ID: int64(i+1) * 3, Name: fmt.Sprintf("item %d", i+1)}
	}
	return want
}

// pairsPerA is the number of rows per value of a in pairsTable: more than a
// page of 7, so pages split runs of equal a, and few enough that resuming
// from every one of the 20 × pairsPerA cursors stays quick (each resume
// reads the rest of the table).
const pairsPerA = 15

// pairsTable creates pairs(a, b, note) with 20 values of a and pairsPerA of
// b for each, so that pages of 7 split runs of equal a.
func pairsTable(t *testing.T, pool *pgxpool.Pool) []keysetPair {
	t.Helper()
	pgExec(t, pool, `CREATE TABLE pairs (a int4 NOT NULL, b int8 NOT NULL, note text NOT NULL, PRIMARY KEY (a, b))`)
	pgExec(t, pool, `INSERT INTO pairs SELECT a, (a * 37 + j * 11) % 1000, a || '/' || j
		FROM generate_series(1, 20) a, generate_series(1, $1::int) j ORDER BY random()`, pairsPerA)
	var want []keysetPair
	for a := 1; a <= 20; a++ {
		for j := 1; j <= pairsPerA; j++ {
			want = append(want, keysetPair{A: int32(a), B: int64((a*37 + j*11) % 1000), Note: fmt.Sprintf("%d/%d", a, j)})
		}
	}
	slices.SortFunc(want, func(x, y keysetPair) int {
		return cmp.Or(cmp.Compare(x.A, y.A), cmp.Compare(x.B, y.B))
	})
	return want
}

func TestConformanceSingleKey(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	want := itemsTable(t, pool, 200)
	cfg := keyset.Config[keysetItem]{DB: pool, Table: "items", Key: []string{"id"}, PageSize: 7}
	enumtest.Run(t, enumtest.Case[keysetItem, keyset.Cursor]{
		Build: func(ctx context.Context, c *keyset.Cursor) (enumerators.Enumerator[keysetItem, keyset.Cursor], error) {
			return keyset.Rows(ctx, cfg, c)
		},
		Want:   want,
		Stride: 3,
		Open:   acquired(pool),
		Failing: func(ctx context.Context) (enumerators.Enumerator[keysetItem, keyset.Cursor], error) {
			return failingAfter(ctx, cfg)
		},
		FailErr: enumtest.ErrSource,
	})
}

// From every position of a composite key whose leading column repeats
// across page boundaries, resuming yields exactly the remaining rows.
func TestConformanceCompositeKey(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	want := pairsTable(t, pool)
	cfg := keyset.Config[keysetPair]{DB: pool, Table: "pairs", Key: []string{"a", "b"}, PageSize: 7}
	enumtest.Run(t, enumtest.Case[keysetPair, keyset.Cursor]{
		Build: func(ctx context.Context, c *keyset.Cursor) (enumerators.Enumerator[keysetPair, keyset.Cursor], error) {
			return keyset.Rows(ctx, cfg, c)
		},
		Want: want,
		Open: acquired(pool),
		Failing: func(ctx context.Context) (enumerators.Enumerator[keysetPair, keyset.Cursor], error) {
			return failingAfter(ctx, cfg)
		},
		FailErr: enumtest.ErrSource,
	})
}

func TestConformanceDescending(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	want := pairsTable(t, pool)
	slices.Reverse(want)
	cfg := keyset.Config[keysetPair]{DB: pool, Table: "pairs", Key: []string{"a", "b"}, PageSize: 7, Descending: true}
	enumtest.Run(t, enumtest.Case[keysetPair, keyset.Cursor]{
		Build: func(ctx context.Context, c *keyset.Cursor) (enumerators.Enumerator[keysetPair, keyset.Cursor], error) {
			return keyset.Rows(ctx, cfg, c)
		},
		Want:   want,
		Stride: 3,
		Open:   acquired(pool),
	})
}

func TestPagesConformance(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	rows := pairsTable(t, pool)
	var want [][]keysetPair
	for page := range slices.Chunk(rows, 7) {
		want = append(want, page)
	}
	cfg := keyset.Config[keysetPair]{DB: pool, Table: "pairs", Key: []string{"a", "b"}, PageSize: 7}
	enumtest.Run(t, enumtest.Case[[]keysetPair, keyset.Cursor]{
		Build: func(ctx context.Context, c *keyset.Cursor) (enumerators.Enumerator[[]keysetPair, keyset.Cursor], error) {
			return keyset.Pages(ctx, cfg, c)
		},
		Want: want,
		Open: acquired(pool),
	})
}

func TestPagesCursorIsLastRowOfPage(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	itemsTable(t, pool, 20)
	e, err := keyset.Pages(t.Context(), keyset.Config[keysetItem]{DB: pool, Table: "items", Key: []string{"id"}, PageSize: 7}, nil)
	require.NoError(t, err)
	pages, cursors, err := enumerators.Collect(t.Context(), e)
	require.NoError(t, err)
	var sizes []int
	for _, p := range pages {
		sizes = append(sizes, len(p))
	}
	require.Equal(t, []int{7, 7, 6}, sizes)
	require.Equal(t, []keyset.Cursor{{Key: []string{"21"}}, {Key: []string{"42"}}, {Key: []string{"60"}}}, cursors)
}

// No connection is held while the caller works on an item, so the caller
// can use the pool (here: all of it) in between.
func TestHoldsNoConnectionWhileYielding(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	itemsTable(t, pool, 30)
	e, err := keyset.Rows(t.Context(), keyset.Config[keysetItem]{DB: pool, Table: "items", Key: []string{"id"}, PageSize: 4}, nil)
	require.NoError(t, err)
	n := 0
	err = e.Enumerate(t.Context(), func(keysetItem, keyset.Cursor) bool {
		n++
		require.Zero(t, pool.Stat().AcquiredConns(), "a connection is held while an item is yielded")
		return true
	})
	require.NoError(t, err)
	require.Equal(t, 30, n)
}

// Rows inserted behind the cursor while the enumeration runs are not
// visited; rows inserted ahead are, and rows deleted ahead are not.
func TestConcurrentChanges(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	pgExec(t, pool, `CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL)`)
	pgExec(t, pool, `INSERT INTO items SELECT i*10, 'x' FROM generate_series(1, 20) i`)
	e, err := keyset.Rows(t.Context(), keyset.Config[keysetItem]{DB: pool, Table: "items", Key: []string{"id"}, PageSize: 5}, nil)
	require.NoError(t, err)
	var got []int64
	err = e.Enumerate(t.Context(), func(it keysetItem, _ keyset.Cursor) bool {
		got = append(got, it.ID)
		if it.ID == 80 { // mid-page: the page up to 100 is already read
			pgExec(t, pool, `INSERT INTO items VALUES (55, 'behind'), (95, 'ahead, this page'), (155, 'ahead, later page')`)
			pgExec(t, pool, `DELETE FROM items WHERE id IN (170, 20)`)
		}
		return true
	})
	require.NoError(t, err)
	// 95 is ahead of the cursor but inside the page already read (60 to
	// 100): the next page starts after 100, so 95 is not visited. A row is
	// visited when it exists at the read of its page.
	want := []int64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 155, 160, 180, 190, 200}
	require.Equal(t, want, got)
}

func TestFilterAndArgs(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	pairsTable(t, pool)
	cfg := keyset.Config[keysetPair]{
		DB: pool, Table: "pairs", Key: []string{"a", "b"}, PageSize: 3,
		Filter: "a = $1 OR a = $2 -- a trailing comment", Args: []any{4, 17},
		Columns: []string{"a", "b", "note"},
	}
	e, err := keyset.Rows(t.Context(), cfg, nil)
	require.NoError(t, err)
	items, cursors, err := enumerators.Collect(t.Context(), e)
	require.NoError(t, err)
	require.Len(t, items, 2*pairsPerA)
	for _, it := range items {
		require.Contains(t, []int32{4, 17}, it.A, "the filter's OR is kept inside parentheses")
	}
	require.True(t, slices.IsSortedFunc(items, func(x, y keysetPair) int { return cmp.Or(cmp.Compare(x.A, y.A), cmp.Compare(x.B, y.B)) }))

	e, err = keyset.Rows(t.Context(), cfg, &cursors[pairsPerA-1])
	require.NoError(t, err)
	rest, _, err := enumerators.Collect(t.Context(), e)
	require.NoError(t, err)
	require.Equal(t, items[pairsPerA:], rest)
}

// A base query (a join) with a row function, checked for uniqueness on the
// table named by KeyTable.
func TestQueryMode(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	pgExec(t, pool, `CREATE TABLE customers (id int4 PRIMARY KEY, name text NOT NULL)`)
	pgExec(t, pool, `CREATE TABLE orders (id int8 PRIMARY KEY, customer_id int4 NOT NULL REFERENCES customers, total numeric NOT NULL)`)
	pgExec(t, pool, `INSERT INTO customers VALUES (1, 'Zoë'), (2, 'Ada')`)
	pgExec(t, pool, `INSERT INTO orders SELECT i, 1 + i % 2, i * 1.25 FROM generate_series(1, 25) i`)
	type row struct {
		ID    int64
		Label string
	}
	cfg := keyset.Config[row]{
		DB: pool,
		Query: `SELECT o.id, c.name || ': ' || o.total AS label
			FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > $1 -- big orders`,
		Args:     []any{5},
		KeyTable: "orders",
		Key:      []string{"id"},
		PageSize: 4,
		Scan: func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.ID, &x.Label)
			return x, err
		},
	}
	e, err := keyset.Rows(t.Context(), cfg, nil)
	require.NoError(t, err)
	items, cursors, err := enumerators.Collect(t.Context(), e)
	require.NoError(t, err)
	require.Len(t, items, 21) // totals above 5: ids 5..25
	require.Equal(t, row{ID: 5, Label: "Ada: 6.25"}, items[0])
	require.Equal(t, row{ID: 6, Label: "Zoë: 7.50"}, items[1])

	e, err = keyset.Rows(t.Context(), cfg, &cursors[9])
	require.NoError(t, err)
	rest, _, err := enumerators.Collect(t.Context(), e)
	require.NoError(t, err)
	require.Equal(t, items[10:], rest)

	cfg.KeyTable = ""
	_, err = keyset.Rows(t.Context(), cfg, nil)
	require.ErrorIs(t, err, keyset.ErrConfig, "a query needs KeyTable or AllowNonUnique")
	require.ErrorContains(t, err, "KeyTable")
	cfg.AllowNonUnique = true
	_, err = keyset.Rows(t.Context(), cfg, nil)
	require.NoError(t, err)
}

// A pgx.Tx is a Querier: the pages run inside the transaction and see its
// uncommitted rows.
func TestInTransaction(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	itemsTable(t, pool, 10)
	tx, err := pool.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	pgExec(t, tx, `INSERT INTO items VALUES (1000, 'in tx')`)
	e, err := keyset.Rows(t.Context(), keyset.Config[keysetItem]{DB: tx, Table: "items", Key: []string{"id"}, PageSize: 3}, nil)
	require.NoError(t, err)
	items, _, err := enumerators.Collect(t.Context(), e)
	require.NoError(t, err)
	require.Len(t, items, 11)
	require.Equal(t, keysetItem{ID: 1000, Name: "in tx"}, items[10])
}

func TestRefusesNonUniqueKey(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	pgExec(t, pool, `CREATE TABLE t (a int4 NOT NULL, b int4 NOT NULL, c int4 NOT NULL, d int4, note text)`)
	pgExec(t, pool, `CREATE UNIQUE INDEX t_ab ON t (a, b)`)
	pgExec(t, pool, `CREATE UNIQUE INDEX t_c_partial ON t (c) WHERE c > 0`)
	pgExec(t, pool, `CREATE UNIQUE INDEX t_d_incl ON t (d) INCLUDE (note)`)
	pgExec(t, pool, `CREATE UNIQUE INDEX t_lower ON t (lower(note))`)
	pgExec(t, pool, `INSERT INTO t VALUES (1, 1, 1, 1, 'x'), (1, 2, 2, 2, 'y'), (2, 1, 3, 3, 'z')`)
	type row struct{ A, B, C, D int32 }
	build := func(key []string, allow bool) error {
		_, err := keyset.Rows(t.Context(), keyset.Config[row]{
			DB: pool, Table: "t", Columns: []string{"a", "b", "c", "d"}, Key: key, AllowNonUnique: allow,
		}, nil)
		return err
	}
	for _, key := range [][]string{{"a"}, {"b"}, {"c"}, {"a", "c"}} {
		err := build(key, false)
		require.ErrorIs(t, err, keyset.ErrNotUnique, "key %v", key)
		require.ErrorContains(t, err, "AllowNonUnique")
		require.ErrorContains(t, err, "t_ab (a, b)", "the message lists the unique indexes")
	}
	// A partial unique index does not make its columns unique.
	require.ErrorIs(t, build([]string{"c"}, false), keyset.ErrNotUnique)
	// Unique indexes whose columns are all in the key: the key is unique.
	require.NoError(t, build([]string{"a", "b"}, false))
	require.NoError(t, build([]string{"b", "a"}, false), "the order of the key columns does not matter for uniqueness")
	require.NoError(t, build([]string{"a", "b", "c"}, false), "a superset of a unique key is unique")
	require.NoError(t, build([]string{"d"}, false), "INCLUDE columns are not part of the unique key, the key column is")

	// The opt-out enumerates a non-unique key anyway.
	e, err := keyset.Rows(t.Context(), keyset.Config[row]{
		DB: pool, Table: "t", Columns: []string{"a", "b", "c", "d"}, Key: []string{"c"}, AllowNonUnique: true,
	}, nil)
	require.NoError(t, err)
	items, _, err := enumerators.Collect(t.Context(), e)
	require.NoError(t, err)
	require.Len(t, items, 3)
}

func TestRefusesIncludeColumnAsKey(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	pgExec(t, pool, `CREATE TABLE t (a int4 NOT NULL, b int4 NOT NULL)`)
	pgExec(t, pool, `CREATE UNIQUE INDEX t_a_incl_b ON t (a) INCLUDE (b)`)
	_, err := keyset.Rows(t.Context(), keyset.Config[struct{ A, B int32 }]{DB: pool, Table: "t", Key: []string{"b"}}, nil)
	require.ErrorIs(t, err, keyset.ErrNotUnique)
}

func TestNullKeyNamesTheColumn(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	pgExec(t, pool, `CREATE TABLE t (a int4 NOT NULL, "Weird b" int4, UNIQUE (a, "Weird b"))`)
	pgExec(t, pool, `INSERT INTO t VALUES (1, 1), (1, 2), (2, NULL), (3, 1)`)
	type row struct {
		A int32  `db:"a"`
		B *int32 `db:"Weird b"`
	}
	for _, pages := range []bool{false, true} {
		cfg := keyset.Config[row]{DB: pool, Table: "t", Key: []string{"a", "Weird b"}, PageSize: 2}
		var err error
		if pages {
			var e enumerators.Enumerator[[]row, keyset.Cursor]
			e, err = keyset.Pages(t.Context(), cfg, nil)
			require.NoError(t, err)
			_, _, err = enumerators.Collect(t.Context(), e)
		} else {
			var e enumerators.Enumerator[row, keyset.Cursor]
			e, err = keyset.Rows(t.Context(), cfg, nil)
			require.NoError(t, err)
			_, _, err = enumerators.Collect(t.Context(), e)
		}
		require.ErrorIs(t, err, keyset.ErrNullKey)
		require.ErrorContains(t, err, `column "Weird b"`)
		require.ErrorContains(t, err, `keyset: page after ["1" "2"]`, "the error says where")
		require.Zero(t, pool.Stat().AcquiredConns())
	}
}

func TestInvalidCursor(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	pgExec(t, pool, `CREATE TABLE t (
		i int4 NOT NULL, n numeric NOT NULL, u uuid NOT NULL, ts timestamptz NOT NULL, d date NOT NULL, s text NOT NULL,
		PRIMARY KEY (i, n, u, ts, d, s))`)
	type row struct {
		I int32
		N string
		U string
		S string
	}
	good := []string{"1", "1.5", "01234567-89ab-cdef-0123-456789abcdef", "2024-01-02T03:04:05.123456Z", "2024-02-29", "ä"}
	cfg := keyset.Config[row]{DB: pool, Table: "t", Key: []string{"i", "n", "u", "ts", "d", "s"},
		Columns: []string{"i", "n", "u", "ts", "d", "s"}}
	_, err := keyset.Rows(t.Context(), cfg, &keyset.Cursor{Key: good})
	require.NoError(t, err)

	with := func(i int, v string) []string {
		k := slices.Clone(good)
		k[i] = v
		return k
	}
	for name, key := range map[string][]string{
		"empty":            nil,
		"too short":        good[:5],
		"too long":         append(slices.Clone(good), "x"),
		"int4 not number":  with(0, "one"),
		"int4 too big":     with(0, "2147483648"),
		"int4 fraction":    with(0, "1.0"),
		"numeric garbage":  with(1, "1.2.3"),
		"numeric empty":    with(1, ""),
		"uuid short":       with(2, "0123456789abcdef"),
		"uuid not hex":     with(2, "0123456z-89ab-cdef-0123-456789abcdef"),
		"timestamptz":      with(3, "2024-01-02 03:04:05"),
		"timestamptz nano": with(3, "2024-01-02T03:04:05.123456789Z"),
		"date":             with(4, "2024-02-30"),
		"text NUL":         with(5, "a\x00b"),
		"text bad UTF-8":   with(5, "\xff"),
	} {
		_, err := keyset.Rows(t.Context(), cfg, &keyset.Cursor{Key: key})
		require.ErrorIs(t, err, enumerators.ErrInvalidCursor, name)
	}

	// JSON of the wrong shape is refused by the cursor decoder already.
	for _, raw := range []string{`{"key":[1]}`, `{"key":"1"}`, `{"keys":["1"]}`, `["1"]`} {
		_, err := cursor.Decode[keyset.Cursor]([]byte(raw))
		require.ErrorIs(t, err, cursor.ErrInvalid, raw)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	pgExec(t, pool, `CREATE TABLE t (id int8 PRIMARY KEY, f float8 UNIQUE NOT NULL, b bool NOT NULL)`)
	type row struct {
		ID int64
		F  float64
		B  bool
	}
	for name, tc := range map[string]struct {
		cfg  keyset.Config[row]
		want string
	}{
		"no DB":          {keyset.Config[row]{Table: "t", Key: []string{"id"}}, "DB is nil"},
		"no source":      {keyset.Config[row]{DB: pool, Key: []string{"id"}}, "give Table or Query"},
		"both sources":   {keyset.Config[row]{DB: pool, Table: "t", Query: "SELECT 1", Key: []string{"id"}}, "not both"},
		"no key":         {keyset.Config[row]{DB: pool, Table: "t"}, "Key names no column"},
		"mixed order":    {keyset.Config[row]{DB: pool, Table: "t", Key: []string{"id DESC"}}, "mixed per-column directions"},
		"repeated key":   {keyset.Config[row]{DB: pool, Table: "t", Key: []string{"id", "id"}}, "appears twice"},
		"bad page size":  {keyset.Config[row]{DB: pool, Table: "t", Key: []string{"id"}, PageSize: -1}, "negative"},
		"missing column": {keyset.Config[row]{DB: pool, Table: "t", Key: []string{"ID"}}, `key column "ID" is not in the result (columns: id, f, b)`},
		"not selected":   {keyset.Config[row]{DB: pool, Table: "t", Columns: []string{"f"}, Key: []string{"id"}}, `key column "id" is not in the result`},
		"float key":      {keyset.Config[row]{DB: pool, Table: "t", Key: []string{"f"}}, `key column "f" has type double precision`},
		"bool key":       {keyset.Config[row]{DB: pool, Table: "t", Key: []string{"id", "b"}}, `key column "b" has type boolean`},
		"missing table":  {keyset.Config[row]{DB: pool, Table: "nope", AllowNonUnique: true, Key: []string{"id"}}, `"nope" does not exist`},
		"bad table name": {keyset.Config[row]{DB: pool, Table: "a.b.c", Key: []string{"id"}}, `want "table" or "schema.table"`},
		"bad count":      {keyset.Config[row]{DB: pool, Table: "t", Key: []string{"id"}, Count: 7}, "unknown Count"},
	} {
		_, err := keyset.Rows(t.Context(), tc.cfg, nil)
		require.ErrorContains(t, err, tc.want, name)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			require.ErrorIs(t, err, keyset.ErrConfig, name)
		}
	}
}

// A source that fails mid-enumeration surfaces its error, wrapped with the
// key it was reading after, and holds no connection.
func TestSourceErrors(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	itemsTable(t, pool, 30)
	cfg := keyset.Config[keysetItem]{DB: pool, Table: "items", Key: []string{"id"}, PageSize: 5}

	t.Run("table dropped", func(t *testing.T) {
		e, err := keyset.Rows(t.Context(), cfg, nil)
		require.NoError(t, err)
		n := 0
		err = e.Enumerate(t.Context(), func(keysetItem, keyset.Cursor) bool {
			n++
			if n == 2 {
				pgExec(t, pool, `DROP TABLE items`)
			}
			return true
		})
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "42P01", pgErr.Code, "undefined table")
		require.ErrorContains(t, err, `keyset: page after ["15"]`)
		require.Equal(t, 5, n, "the page read before the drop is yielded whole")
		require.Zero(t, pool.Stat().AcquiredConns())
	})

	t.Run("context cancelled", func(t *testing.T) {
		pool := testutil.Postgres(t)
		itemsTable(t, pool, 30)
		cfg := cfg
		cfg.DB = pool
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e, err := keyset.Rows(ctx, cfg, nil)
		require.NoError(t, err)
		n := 0
		err = e.Enumerate(ctx, func(keysetItem, keyset.Cursor) bool {
			n++
			if n == 7 {
				cancel()
			}
			return true
		})
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorContains(t, err, `keyset: page after ["30"]`)
		require.Equal(t, 10, n)
		require.Zero(t, pool.Stat().AcquiredConns())
	})
}

// Each page is one index range scan: no Sort, no OFFSET, the row-value
// comparison as the index condition.
func TestPageIsAnIndexRangeScan(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	pgExec(t, pool, `CREATE TABLE pairs (a int4 NOT NULL, b int8 NOT NULL, note text NOT NULL, PRIMARY KEY (a, b))`)
	pgExec(t, pool, `INSERT INTO pairs SELECT i % 100, i, 'x' FROM generate_series(1, 20000) i`)
	pgExec(t, pool, `ANALYZE pairs`)
	for _, desc := range []bool{false, true} {
		e, err := keyset.Rows(t.Context(), keyset.Config[keysetPair]{DB: pool, Table: "pairs", Key: []string{"a", "b"}, PageSize: 500, Descending: desc}, nil)
		require.NoError(t, err)
		first, next := keyset.Queries(e)
		require.NotContains(t, strings.ToUpper(first+next), "OFFSET")
		require.NotContains(t, next, " OR ", "a row-value comparison, not an OR expansion")

		rows, err := pool.Query(t.Context(), "EXPLAIN "+next, 50, "5000")
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		plan := strings.Join(lines, "\n")
		require.Contains(t, plan, "Index Scan", plan)
		require.NotContains(t, plan, "Sort", plan)
		require.Contains(t, plan, "Index Cond: (ROW(a, b) ", plan)
		if desc {
			require.Contains(t, plan, "Backward", plan)
		}
	}
}

func TestProgress(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	itemsTable(t, pool, 95)
	pgExec(t, pool, `ANALYZE items`)
	cfg := keyset.Config[keysetItem]{DB: pool, Table: "items", Key: []string{"id"}, PageSize: 10}

	e, err := keyset.Rows(t.Context(), cfg, nil)
	require.NoError(t, err)
	_, ok := e.(enumerators.ProgressReporter[keyset.Cursor])
	require.False(t, ok, "without Count the enumerator reports no progress")

	cfg.Count = keyset.CountExact
	e, err = keyset.Rows(t.Context(), cfg, nil)
	require.NoError(t, err)
	pr, ok := e.(enumerators.ProgressReporter[keyset.Cursor])
	require.True(t, ok)
	p, err := pr.Progress(t.Context(), nil)
	require.NoError(t, err)
	require.Equal(t, enumerators.Progress{Done: -1, Total: 95, Unit: "rows"}, p)
	pgExec(t, pool, `INSERT INTO items VALUES (100000, 'late')`)
	p, err = pr.Progress(t.Context(), &keyset.Cursor{Key: []string{"30"}})
	require.NoError(t, err)
	require.Equal(t, int64(95), p.Total, "the total is counted once and cached")

	pages, err := keyset.Pages(t.Context(), cfg, nil)
	require.NoError(t, err)
	p, err = pages.(enumerators.ProgressReporter[keyset.Cursor]).Progress(t.Context(), nil)
	require.NoError(t, err)
	require.Equal(t, enumerators.Progress{Done: -1, Total: 10, Unit: "pages"}, p, "96 rows in pages of 10")

	cfg.Filter = "id <= $1"
	cfg.Args = []any{150}
	e, err = keyset.Rows(t.Context(), cfg, nil)
	require.NoError(t, err)
	p, err = e.(enumerators.ProgressReporter[keyset.Cursor]).Progress(t.Context(), nil)
	require.NoError(t, err)
	require.Equal(t, int64(50), p.Total, "the count applies the filter")

	cfg.Filter, cfg.Args = "", nil
	cfg.Count = keyset.CountEstimate
	pgExec(t, pool, `ANALYZE items`)
	e, err = keyset.Rows(t.Context(), cfg, nil)
	require.NoError(t, err)
	p, err = e.(enumerators.ProgressReporter[keyset.Cursor]).Progress(t.Context(), nil)
	require.NoError(t, err)
	require.Equal(t, enumerators.Progress{Done: -1, Total: 96, Unit: "rows"}, p, "the planner's estimate of a freshly analyzed table")

	cfg.Filter, cfg.Args = "id <= $1", []any{150}
	e, err = keyset.Rows(t.Context(), cfg, nil)
	require.NoError(t, err)
	p, err = e.(enumerators.ProgressReporter[keyset.Cursor]).Progress(t.Context(), nil)
	require.NoError(t, err)
	require.InDelta(t, 50, p.Total, 25, "an estimate with a filter (EXPLAIN with bound arguments)")
}

// An error of the row function ends the enumeration with that error, and
// the page's rows are closed.
func TestScanErrorClosesRows(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	itemsTable(t, pool, 30)
	errScan := errors.New("bad row")
	e, err := keyset.Rows(t.Context(), keyset.Config[int64]{
		DB: pool, Table: "items", Key: []string{"id"}, PageSize: 10,
		Scan: func(row pgx.CollectableRow) (int64, error) {
			var id int64
			if err := row.Scan(&id, nil); err != nil {
				return 0, err
			}
			if id == 42 {
				return 0, errScan
			}
			return id, nil
		},
	}, nil)
	require.NoError(t, err)
	items, _, err := enumerators.Collect(t.Context(), e)
	require.ErrorIs(t, err, errScan)
	require.ErrorContains(t, err, `keyset: page after ["30"]`)
	require.Len(t, items, 10, "the first page, read before the bad row's page")
	require.Zero(t, pool.Stat().AcquiredConns())
}

// TestExampleRows runs ExampleRows, which needs PostgreSQL and so has no
// Output comment, and checks what it prints. It swaps os.Stdout, so it does
// not run in parallel: sequential tests run before any parallel one resumes.
func TestExampleRows(t *testing.T) {
	testutil.Postgres(t) // skips, or fails under CI, when PostgreSQL is unreachable
	r, w, err := os.Pipe()
	require.NoError(t, err)
	stdout := os.Stdout
	os.Stdout = w
	printed := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		printed <- string(b)
	}()
	func() {
		defer func() { os.Stdout = stdout; _ = w.Close() }()
		ExampleRows()
	}()
	require.Equal(t, `run 1: order 2 (Ada, 120.00)
run 1: order 3 (Zoë, 99.50)
saved cursor: {"key":["3"]}
run 2: order 5 (Zoë, 15.00)
run 2: order 8 (Ada, 1000.00)
run 2: done
`, <-printed)
}

// With Prefetch, the next page is read while the current one is yielded:
// the same rows, the same cursors, and no connection left in use once the
// enumeration ends, early or not.
func TestPrefetchConformance(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	want := pairsTable(t, pool)
	for _, desc := range []bool{false, true} {
		t.Run(fmt.Sprintf("descending=%v", desc), func(t *testing.T) {
			w := slices.Clone(want)
			if desc {
				slices.Reverse(w)
			}
			cfg := keyset.Config[keysetPair]{DB: pool, Table: "pairs", Key: []string{"a", "b"}, PageSize: 7, Descending: desc, Prefetch: true}
			enumtest.Run(t, enumtest.Case[keysetPair, keyset.Cursor]{
				Build: func(ctx context.Context, c *keyset.Cursor) (enumerators.Enumerator[keysetPair, keyset.Cursor], error) {
					return keyset.Rows(ctx, cfg, c)
				},
				Want:   w,
				Stride: 3,
				Open:   acquired(pool),
				Failing: func(ctx context.Context) (enumerators.Enumerator[keysetPair, keyset.Cursor], error) {
					return failingAfter(ctx, cfg)
				},
				FailErr: enumtest.ErrSource,
			})
		})
	}
	t.Run("pages", func(t *testing.T) {
		var pages [][]keysetPair
		for page := range slices.Chunk(want, 7) {
			pages = append(pages, page)
		}
		cfg := keyset.Config[keysetPair]{DB: pool, Table: "pairs", Key: []string{"a", "b"}, PageSize: 7, Prefetch: true}
		enumtest.Run(t, enumtest.Case[[]keysetPair, keyset.Cursor]{
			Build: func(ctx context.Context, c *keyset.Cursor) (enumerators.Enumerator[[]keysetPair, keyset.Cursor], error) {
				return keyset.Pages(ctx, cfg, c)
			},
			Want: pages,
			Open: acquired(pool),
		})
	})
}
