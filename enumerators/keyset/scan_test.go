package keyset_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/keyset"
	"github.com/iterjob/iterjob/internal/testutil"
)

// The shapes of struct a user scans rows into without a Scan function.
type (
	// Untagged fields: names match without regard to case or underscores.
	scanUntagged struct {
		ID        int64
		AccountID int32
		Full_Name string
		//lint:ignore U1000 an unexported field is never scanned into
		created_at time.Time
	}
	// Tags, a skipped field, an option after the name, and a tag that
	// tells apart two columns differing only in case.
	scanTagged struct {
		Key     int64  `db:"id"`
		Account int32  `db:"account_id,omitempty"`
		Name    string `db:"full_name"`
		Upper   string `db:"Mixed"`
		Lower   string `db:"mixed"`
		Ignored string `db:"-"`
	}
	scanBase struct {
		ID        int64 `db:"id"`
		AccountID int32 `db:"account_id"`
	}
	// An embedded struct's fields are the outer struct's.
	scanEmbedded struct {
		scanBase
		FullName string `db:"full_name"`
		Mixed    string `db:"Mixed"`
		Mixed2   string `db:"mixed"`
	}
)

const scanTableSQL = `CREATE TABLE scan_rows (
	id bigint PRIMARY KEY,
	account_id int4 NOT NULL,
	full_name text NOT NULL,
	"Mixed" text NOT NULL,
	mixed text NOT NULL)`

// keysetScanAll enumerates the table with the default by-name scan.
func keysetScanAll[T any](t *testing.T, pool *pgxpool.Pool, columns ...string) ([]T, error) {
	t.Helper()
	cfg := keyset.Config[T]{DB: pool, Table: "scan_rows", Columns: columns, Key: []string{"id"}, PageSize: 3}
	e, err := keyset.Rows(t.Context(), cfg, nil)
	if err != nil {
		return nil, err
	}
	items, _, err := enumerators.Collect(t.Context(), e)
	return items, err
}

// pgxScanAll reads the same rows with pgx.RowToStructByName.
func pgxScanAll[T any](t *testing.T, pool *pgxpool.Pool, columns string) ([]T, error) {
	t.Helper()
	rows, err := pool.Query(t.Context(), "SELECT "+columns+" FROM scan_rows ORDER BY id")
	require.NoError(t, err)
	return pgx.CollectRows(rows, pgx.RowToStructByName[T])
}

// Without Config.Scan, rows decode into T by the rules of
// pgx.RowToStructByName, and a struct that does not fit the columns is a
// configuration error naming the column or field.
func TestDefaultScanMatchesPgx(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	pgExec(t, pool, scanTableSQL)
	pgExec(t, pool, `INSERT INTO scan_rows SELECT i, i % 7, 'name ' || i, 'M' || i, 'm' || i FROM generate_series(1, 10) i`)

	t.Run("untagged", func(t *testing.T) {
		cols := []string{"id", "account_id", "full_name"}
		got, err := keysetScanAll[scanUntagged](t, pool, cols...)
		require.NoError(t, err)
		want, err := pgxScanAll[scanUntagged](t, pool, "id, account_id, full_name")
		require.NoError(t, err)
		require.Len(t, got, 10)
		require.Equal(t, want, got)
		require.Equal(t, scanUntagged{ID: 4, AccountID: 4, Full_Name: "name 4"}, got[3])
	})
	t.Run("tagged", func(t *testing.T) {
		got, err := keysetScanAll[scanTagged](t, pool)
		require.NoError(t, err)
		want, err := pgxScanAll[scanTagged](t, pool, "*")
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.Equal(t, scanTagged{Key: 9, Account: 2, Name: "name 9", Upper: "M9", Lower: "m9"}, got[8])
	})
	t.Run("embedded", func(t *testing.T) {
		got, err := keysetScanAll[scanEmbedded](t, pool)
		require.NoError(t, err)
		want, err := pgxScanAll[scanEmbedded](t, pool, "*")
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.Equal(t, int64(10), got[9].ID)
		require.Equal(t, "M10", got[9].Mixed)
	})
	t.Run("column without a field", func(t *testing.T) {
		_, err := keysetScanAll[scanBase](t, pool)
		require.ErrorIs(t, err, keyset.ErrConfig)
		require.ErrorContains(t, err, `no field for column "full_name"`)
		_, err = pgxScanAll[scanBase](t, pool, "*")
		require.Error(t, err, "pgx refuses it too")
	})
	t.Run("field without a column", func(t *testing.T) {
		_, err := keysetScanAll[scanEmbedded](t, pool, "id", "account_id", "full_name")
		require.ErrorIs(t, err, keyset.ErrConfig)
		require.ErrorContains(t, err, "no column for field Mixed")
		_, err = pgxScanAll[scanEmbedded](t, pool, "id, account_id, full_name")
		require.Error(t, err, "pgx refuses it too")
	})
	t.Run("not a struct", func(t *testing.T) {
		_, err := keyset.Rows(t.Context(), keyset.Config[int64]{DB: pool, Table: "scan_rows", Key: []string{"id"}}, nil)
		require.ErrorIs(t, err, keyset.ErrConfig)
		require.ErrorContains(t, err, "int64 is not a struct")
	})
	t.Run("a Scan function is used as given", func(t *testing.T) {
		cfg := keyset.Config[int64]{DB: pool, Table: "scan_rows", Key: []string{"id"}, PageSize: 4,
			Scan: func(row pgx.CollectableRow) (int64, error) {
				var id, account int64
				var a, b, c string
				err := row.Scan(&id, &account, &a, &b, &c)
				return id * 100, err
			}}
		e, err := keyset.Rows(context.Background(), cfg, nil)
		require.NoError(t, err)
		items, _, err := enumerators.Collect(t.Context(), e)
		require.NoError(t, err)
		require.Equal(t, []int64{100, 200, 300, 400, 500, 600, 700, 800, 900, 1000}, items)
	})
}

// A panic in a Scan function is raised in the goroutine that called
// Enumerate, where a runner recovers it (with Prefetch too, where the page is
// read by another goroutine in which the panic would crash the process), and
// the page's connection goes back to the pool.
func TestScanPanicReachesTheCaller(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	pgExec(t, pool, `CREATE TABLE nums (id bigint PRIMARY KEY)`)
	pgExec(t, pool, `INSERT INTO nums SELECT generate_series(1, 10)`)
	for _, prefetch := range []bool{false, true} {
		t.Run(fmt.Sprintf("prefetch=%v", prefetch), func(t *testing.T) {
			cfg := keyset.Config[int64]{DB: pool, Table: "nums", Key: []string{"id"}, PageSize: 3, Prefetch: prefetch,
				Scan: func(row pgx.CollectableRow) (int64, error) {
					var id int64
					err := row.Scan(&id)
					if id == 5 {
						panic("bad row 5")
					}
					return id, err
				}}
			e, err := keyset.Rows(t.Context(), cfg, nil)
			require.NoError(t, err)
			var got []int64
			recovered := func() (v any) {
				defer func() { v = recover() }()
				_ = e.Enumerate(t.Context(), func(id int64, _ keyset.Cursor) bool {
					got = append(got, id)
					return true
				})
				return nil
			}()
			require.NotNil(t, recovered, "the panic reaches the caller")
			require.Contains(t, fmt.Sprint(recovered), "bad row 5")
			require.Equal(t, []int64{1, 2, 3}, got, "the page before the bad row was yielded")
			require.Eventually(t, func() bool { return acquired(pool)() == 0 }, 5*time.Second, 10*time.Millisecond, "no connection is left in use")
		})
	}
}
