package keyset

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// ownClause finds ORDER BY, LIMIT, OFFSET and FETCH at the top level of a
// query, in any case, and nowhere else: not in identifiers, string
// constants, quoted identifiers, comments or parentheses.
func TestOwnClause(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ query, want string }{
		// Top-level clauses, in any case and spacing.
		{"SELECT id FROM t ORDER BY id", "ORDER BY"},
		{"select id from t order by id desc", "ORDER BY"},
		{"SELECT id FROM t\nOrder\n\tBy id", "ORDER BY"},
		{"SELECT id FROM t ORDER/* why */BY id", "ORDER BY"},
		{"SELECT id FROM t ORDER -- why\n BY id", "ORDER BY"},
		{"SELECT id FROM t LIMIT 10", "LIMIT"},
		{"SELECT id FROM t limit all", "LIMIT"},
		{"SELECT id FROM t OFFSET 5", "OFFSET"},
		{"SELECT id FROM t FETCH FIRST 5 ROWS ONLY", "FETCH"},
		{"SELECT id FROM t WHERE x = $1 LIMIT $2", "LIMIT"},
		{"SELECT id FROM a UNION SELECT id FROM b ORDER BY id", "ORDER BY"},
		// After what is skipped, the top level is found again.
		{"SELECT id FROM (SELECT id FROM t ORDER BY id) s ORDER BY id", "ORDER BY"},
		{"SELECT id FROM t WHERE note = 'it''s (' LIMIT 1", "LIMIT"},
		{`SELECT id FROM t WHERE note = E'it\'s (' LIMIT 1`, "LIMIT"},
		{`SELECT id FROM t WHERE note = e'\\' LIMIT 1`, "LIMIT"},
		{`SELECT id FROM t WHERE note = 'a\' ORDER BY id`, "ORDER BY"}, // a backslash is plain in '...'
		{`SELECT "a "" (" AS x, id FROM t OFFSET 1`, "OFFSET"},
		{"SELECT $$)$$ AS x, id FROM t LIMIT 1", "LIMIT"},
		{"SELECT $q$ ) $ $$ $q$ AS x, id FROM t LIMIT 1", "LIMIT"},
		{"SELECT id FROM t /* a /* nested */ comment ( */ LIMIT 1", "LIMIT"},
		{"SELECT id FROM t WHERE note = 'x' -- a comment\nLIMIT 1", "LIMIT"},
		{`SELECT "order" FROM t ORDER BY 1`, "ORDER BY"},
		{"SELECT id FROM t WHERE a) LIMIT 1", "LIMIT"}, // a stray ) does not hide the rest

		// Words that contain a key word.
		{"SELECT id, order_by_date FROM t", ""},
		{"SELECT id, x AS order_by, limit_ AS y, t.offset_x, fetched FROM t", ""},
		{"SELECT id FROM orders WHERE by_date > now()", ""},
		{"SELECT id, foo$limit FROM t", ""},
		// String constants and quoted identifiers.
		{"SELECT id FROM t WHERE note = 'LIMIT 5'", ""},
		{"SELECT id FROM t WHERE note = 'x ORDER BY y' OR note = 'it''s OFFSET 3'", ""},
		{`SELECT id FROM t WHERE note = E'\' LIMIT 1'`, ""},
		{`SELECT id, "ORDER BY", "limit", "offset" FROM t`, ""},
		{`SELECT id, "a "" LIMIT" FROM t`, ""},
		{"SELECT id FROM t WHERE note = $$ ORDER BY $$", ""},
		{"SELECT id FROM t WHERE note = $tag$ LIMIT $$ 1 $tag$", ""},
		{"SELECT id FROM t WHERE note = $tag$ never closed LIMIT 1", ""},
		{"SELECT id FROM t WHERE note = 'never closed LIMIT 1", ""},
		// Comments.
		{"SELECT id FROM t -- ORDER BY id", ""},
		{"SELECT id FROM t /* LIMIT 1 */", ""},
		{"SELECT id FROM t /* outer /* inner */ LIMIT 1 */", ""},
		{"SELECT id FROM t /* never closed LIMIT 1", ""},
		// Parentheses: subqueries, windows, aggregates.
		{"SELECT id, row_number() OVER (ORDER BY id) FROM t", ""},
		{"SELECT id, array_agg(x ORDER BY x) FROM t GROUP BY id", ""},
		{"SELECT id FROM (SELECT id FROM t ORDER BY id LIMIT 10 OFFSET 2) s", ""},
		{"SELECT id FROM t WHERE id IN (SELECT id FROM u FETCH FIRST 3 ROWS ONLY)", ""},
		{"SELECT id, sum(x) OVER w FROM t WINDOW w AS (ORDER BY id)", ""},
		// ORDER not followed by BY is not the clause (nor valid SQL).
		{"SELECT id FROM t ORDER", ""},
		{"SELECT id FROM t ORDER x BY", ""},
		{"", ""},
	} {
		require.Equal(t, tc.want, ownClause(tc.query), "%s", tc.query)
	}
}
