package keyset_test

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/keyset"
	"github.com/iterjob/iterjob/internal/testutil"
)

// keyTypeCases are the key column types a cursor holds: values as
// PostgreSQL reads them, in ascending order, and the cursor string each must
// give.
var keyTypeCases = []struct {
	name    string
	sqlType string
	values  []string
	cursors []string // nil: the values themselves
}{
	{name: "int2", sqlType: "int2", values: []string{"-32768", "-1", "0", "32767"}},
	{name: "int4", sqlType: "int4", values: []string{"-2147483648", "-1", "0", "7", "2147483647"}},
	{name: "int8", sqlType: "int8", values: []string{
		"-9223372036854775808", "-9007199254740993", "0",
		"9007199254740992", "9007199254740993", "9223372036854775807",
	}},
	{name: "text", sqlType: `text COLLATE "C"`, values: []string{
		"", " ", "A", "a", "a\tb\nc", `a"b'c\d`, "ä", "ÿ", "日本語", "🎉",
	}},
	{name: "text default collation", sqlType: "text", values: []string{"apple", "banana", "cherry"}},
	{name: "varchar", sqlType: "varchar(20)", values: []string{"a", "ab", "b"}},
	{name: "char", sqlType: "char(4)", values: []string{"a", "ab", "b"}, cursors: []string{"a   ", "ab  ", "b   "}},
	{name: "uuid", sqlType: "uuid",
		values: []string{
			"00000000-0000-0000-0000-000000000000",
			"0123456789ABCDEF0123456789abcdef",
			"ffffffff-ffff-ffff-ffff-fffffffffffe",
			"ffffffff-ffff-ffff-ffff-ffffffffffff",
		},
		cursors: []string{
			"00000000-0000-0000-0000-000000000000",
			"01234567-89ab-cdef-0123-456789abcdef",
			"ffffffff-ffff-ffff-ffff-fffffffffffe",
			"ffffffff-ffff-ffff-ffff-ffffffffffff",
		}},
	{name: "numeric", sqlType: "numeric",
		values: []string{
			"-Infinity", "-12345678901234567890.123456789", "-0.000000000000000000001", "0",
			"1.50", "12345678901234567890.123456788", "12345678901234567890.123456789", "1e20", "Infinity", "NaN",
		},
		cursors: []string{
			"-Infinity", "-12345678901234567890.123456789", "-0.000000000000000000001", "0",
			"1.50", "12345678901234567890.123456788", "12345678901234567890.123456789", "100000000000000000000", "Infinity", "NaN",
		}},
	{name: "timestamptz", sqlType: "timestamptz",
		values: []string{
			"-infinity",
			"0001-01-01 00:00:00+00",
			"1999-12-31 23:59:59.999999-05",
			"2000-01-01 05:00:00.000001+00",
			"2024-06-01 12:00:00.123456+05:30",
			"2024-06-01 06:30:00.123457+00",
			"9999-12-31 23:59:59.999999+00",
			"infinity",
		},
		cursors: []string{
			"-infinity",
			"0001-01-01T00:00:00Z",
			"2000-01-01T04:59:59.999999Z",
			"2000-01-01T05:00:00.000001Z",
			"2024-06-01T06:30:00.123456Z",
			"2024-06-01T06:30:00.123457Z",
			"9999-12-31T23:59:59.999999Z",
			"infinity",
		}},
	{name: "timestamp", sqlType: "timestamp",
		values:  []string{"-infinity", "2024-01-02 03:04:05", "2024-01-02 03:04:05.000001", "2024-01-02 03:04:05.5", "infinity"},
		cursors: []string{"-infinity", "2024-01-02T03:04:05", "2024-01-02T03:04:05.000001", "2024-01-02T03:04:05.5", "infinity"}},
	{name: "date", sqlType: "date", values: []string{"-infinity", "0001-01-01", "2024-02-29", "9999-12-31", "infinity"}},
}

type keyTypeRow struct {
	Ord int32 `db:"ord"`
}

// Each key type round-trips through the cursor's JSON exactly, and resuming
// from that cursor continues at the next row. Cursors are written by a
// connection in binary format and time zone UTC, and read back by one in text
// format (simple protocol) and another time zone, and the other way round:
// the cursor does not depend on either.
func TestKeyTypesRoundTrip(t *testing.T) {
	t.Parallel()
	binary := testutil.Postgres(t)
	cfg := binary.Config().Copy()
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.ConnConfig.RuntimeParams["timezone"] = "Pacific/Chatham" // +12:45 or +13:45
	text, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(text.Close)
	pools := map[string]*pgxpool.Pool{"binary": binary, "text": text}

	for i, tc := range keyTypeCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := tc.cursors
			if want == nil {
				want = tc.values
			}
			table := fmt.Sprintf("keys_%d", i)
			pgExec(t, binary, fmt.Sprintf(`CREATE TABLE %s (k %s PRIMARY KEY, ord int4 NOT NULL)`, table, tc.sqlType))
			// Insert in reverse, so that the heap order is not the key order.
			for j := len(tc.values) - 1; j >= 0; j-- {
				pgExec(t, binary, fmt.Sprintf(`INSERT INTO %s VALUES ($1, $2)`, table), tc.values[j], j)
			}
			for _, writer := range []string{"binary", "text"} {
				reader := map[string]string{"binary": "text", "text": "binary"}[writer]
				kcfg := keyset.Config[keyTypeRow]{
					DB: pools[writer], Table: table, Key: []string{"k"}, PageSize: 2,
					// A row function that ignores the key: the cursor comes
					// from the row, not from the item.
					Scan: func(row pgx.CollectableRow) (keyTypeRow, error) {
						var r keyTypeRow
						err := row.Scan(nil, &r.Ord)
						return r, err
					},
				}
				e, err := keyset.Rows(t.Context(), kcfg, nil)
				require.NoError(t, err)
				items, cursors, err := enumerators.Collect(t.Context(), e)
				require.NoError(t, err, writer)
				require.Len(t, items, len(tc.values), writer)
				for j := range items {
					require.Equal(t, int32(j), items[j].Ord, "%s: rows in key order", writer)
					require.Equal(t, []string{want[j]}, cursors[j].Key, "%s: the cursor of %q", writer, tc.values[j])
				}

				for j, c := range cursors {
					raw, err := cursor.Encode(c)
					require.NoError(t, err)
					back, err := cursor.Decode[keyset.Cursor](raw)
					require.NoError(t, err, "%s", raw)
					require.Equal(t, c, *back, "%s: %s round-trips", writer, raw)

					kcfg.DB = pools[reader]
					e, err := keyset.Rows(t.Context(), kcfg, back)
					require.NoError(t, err, "%s", raw)
					rest, restCursors, err := enumerators.Collect(t.Context(), e)
					require.NoError(t, err, "%s: resume after %s", reader, raw)
					require.Len(t, rest, len(tc.values)-j-1, "%s: resume after %s", reader, raw)
					for n, r := range rest {
						require.Equal(t, int32(j+1+n), r.Ord, "%s: resume after %s", reader, raw)
						require.Equal(t, cursors[j+1+n], restCursors[n], "%s: the same cursors from either connection", reader)
					}
				}
			}
		})
	}
}

// The cursor's JSON is plain: strings, so no JSON number ever passes through
// a float64.
func TestCursorJSON(t *testing.T) {
	t.Parallel()
	raw, err := cursor.Encode(keyset.Cursor{Key: []string{"9007199254740993", "héllo \"x\"", "12345678901234567890.123456789"}})
	require.NoError(t, err)
	require.JSONEq(t, `{"key":["9007199254740993","héllo \"x\"","12345678901234567890.123456789"]}`, string(raw))
	back, err := cursor.Decode[keyset.Cursor](raw)
	require.NoError(t, err)
	require.Equal(t, []string{"9007199254740993", "héllo \"x\"", "12345678901234567890.123456789"}, back.Key)
}
