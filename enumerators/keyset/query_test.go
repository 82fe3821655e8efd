package keyset_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/keyset"
	"github.com/iterjob/iterjob/internal/testutil"
)

// unusedDB fails the test if a query reaches it.
type unusedDB struct{ t *testing.T }

func (u unusedDB) Query(context.Context, string, ...any) (pgx.Rows, error) {
	u.t.Error("the config was not refused before the first query")
	return nil, context.Canceled
}

func (u unusedDB) QueryRow(context.Context, string, ...any) pgx.Row {
	u.t.Error("the config was not refused before the first query")
	return nil
}

// A base Query with its own ORDER BY, LIMIT, OFFSET or FETCH at its top
// level is refused before any query runs, in any case of the key words.
func TestQueryWithItsOwnClauseIsRefused(t *testing.T) {
	t.Parallel()
	for query, clause := range map[string]string{
		"SELECT id FROM t ORDER BY id":                                "ORDER BY",
		"select id from t where note <> 'x' order by id desc":         "ORDER BY",
		"SELECT id FROM t Limit 10":                                   "LIMIT",
		"SELECT id FROM t WHERE id > $1 OFFSET 5":                     "OFFSET",
		"SELECT id FROM t FETCH FIRST 5 ROWS ONLY":                    "FETCH",
		"SELECT id FROM (SELECT id FROM t) s\n-- the newest\nLIMIT 1": "LIMIT",
	} {
		cfg := keyset.Config[int64]{DB: unusedDB{t}, Query: query, KeyTable: "t", Key: []string{"id"}, Args: []any{1}, Scan: pgx.RowTo[int64]}
		_, err := keyset.Rows(t.Context(), cfg, nil)
		require.ErrorIs(t, err, keyset.ErrConfig, query)
		require.ErrorContains(t, err, "keyset: invalid config: Query has its own "+clause+":", query)
		_, err = keyset.Pages(t.Context(), cfg, nil)
		require.ErrorIs(t, err, keyset.ErrConfig, query)
	}
}

// Key words inside identifiers, string constants, quoted identifiers,
// comments or parentheses are no clause of the query: these queries build
// and enumerate.
func TestQueryMentioningClauseWordsIsAccepted(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	pgExec(t, pool, `CREATE TABLE t (id bigint PRIMARY KEY, order_by_date date NOT NULL, note text NOT NULL, "ORDER BY" text, "limit" int)`)
	pgExec(t, pool, `INSERT INTO t VALUES (1, '2024-01-01', 'LIMIT 5', 'a', 1), (2, '2024-01-02', 'plain', 'b', 2), (3, '2024-01-03', 'LIMIT 5', 'c', 3)`)
	for _, tc := range []struct {
		query string
		want  []int64
	}{
		{"SELECT id, order_by_date FROM t", []int64{1, 2, 3}},
		{"SELECT id FROM t WHERE note = 'LIMIT 5'", []int64{1, 3}},
		{"SELECT id FROM t WHERE note = E'LIMIT\\' 5' OR note = $$ ORDER BY $$ OR note = 'plain'", []int64{2}},
		{`SELECT id, "ORDER BY", "limit" FROM t WHERE "limit" >= 2`, []int64{2, 3}},
		{"SELECT id FROM t -- ORDER BY id DESC", []int64{1, 2, 3}},
		{"SELECT id FROM t /* LIMIT 1 /* nested */ OFFSET 1 */ WHERE id > 1", []int64{2, 3}},
		{"SELECT id, row_number() OVER (ORDER BY id DESC) AS n FROM t", []int64{1, 2, 3}},
		{"SELECT id FROM t WHERE id IN (SELECT id FROM t ORDER BY id LIMIT 2 OFFSET 1)", []int64{2, 3}},
	} {
		e, err := keyset.Rows(t.Context(), keyset.Config[int64]{
			DB: pool, Query: tc.query, KeyTable: "t", Key: []string{"id"},
			Scan: func(r pgx.CollectableRow) (int64, error) {
				v, err := pgx.RowToMap(r)
				id, _ := v["id"].(int64)
				return id, err
			},
		}, nil)
		require.NoError(t, err, tc.query)
		got, _, err := enumerators.Collect(t.Context(), e)
		require.NoError(t, err, tc.query)
		require.Equal(t, tc.want, got, tc.query)
	}
}
