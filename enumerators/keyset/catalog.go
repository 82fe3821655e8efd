package keyset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// describeKey runs query (a LIMIT 0 form of the page query) to learn the
// types of the key columns in its result.
func describeKey(ctx context.Context, db Querier, query string, args []any, key []string) ([]*keyKind, error) {
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		if rows != nil {
			rows.Close()
		}
		return nil, fmt.Errorf("keyset: describe query: %w", err)
	}
	// A copy, taken before the rows end: pgx reuses the slice for the
	// connection's next query, which a pool lets run as soon as the last
	// row is read.
	fds := slices.Clone(rows.FieldDescriptions())
	for rows.Next() {
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keyset: describe query: %w", err)
	}
	kinds := make([]*keyKind, len(key))
	for i, name := range key {
		j, err := findColumn(fds, name)
		if err != nil {
			return nil, err
		}
		kind := keyKinds[fds[j].DataTypeOID]
		if kind == nil {
			typ := fmt.Sprintf("OID %d", fds[j].DataTypeOID)
			var name string
			if db.QueryRow(ctx, "SELECT format_type($1, NULL)", fds[j].DataTypeOID).Scan(&name) == nil {
				typ = name
			}
			return nil, fmt.Errorf("%w: key column %q has type %s, which keyset cursors do not support (supported: %s)", ErrConfig, fds[j].Name, typ, supportedKeyTypes)
		}
		kinds[i] = kind
	}
	return kinds, nil
}

// findColumn returns the index of the one result column called name.
func findColumn(fds []pgconn.FieldDescription, name string) (int, error) {
	found := -1
	for j, fd := range fds {
		if fd.Name != name {
			continue
		}
		if found >= 0 {
			return 0, fmt.Errorf("%w: key column %q appears twice in the result", ErrConfig, name)
		}
		found = j
	}
	if found < 0 {
		names := make([]string, len(fds))
		for j, fd := range fds {
			names[j] = fd.Name
		}
		return 0, fmt.Errorf("%w: key column %q is not in the result (columns: %s)", ErrConfig, name, strings.Join(names, ", "))
	}
	return found, nil
}

// uniqueIndexesSQL lists the unique indexes of a table that guarantee
// uniqueness of their columns: valid, without predicate, on plain columns.
// INCLUDE columns (past indnkeyatts) are not part of the unique key.
const uniqueIndexesSQL = `
SELECT ic.relname::text, array_agg(a.attname::text ORDER BY k.ord)
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1
  AND i.indisunique AND i.indisvalid
  AND i.indpred IS NULL AND i.indexprs IS NULL
  AND k.ord <= i.indnkeyatts
GROUP BY ic.relname
ORDER BY ic.relname`

// checkUnique checks that some primary key or unique index of table has all
// its columns among key, so that no two rows share a key.
func checkUnique(ctx context.Context, db Querier, table pgx.Identifier, key []string) error {
	name := table.Sanitize()
	var oid *uint32
	if err := db.QueryRow(ctx, "SELECT to_regclass($1)::oid", name).Scan(&oid); err != nil {
		return fmt.Errorf("keyset: look up table %s: %w", name, err)
	}
	if oid == nil {
		return fmt.Errorf("%w: table %s not found", ErrConfig, name)
	}
	rows, err := db.Query(ctx, uniqueIndexesSQL, *oid)
	if err != nil {
		if rows != nil {
			rows.Close()
		}
		return fmt.Errorf("keyset: look up unique indexes of %s: %w", name, err)
	}
	type index struct {
		Name    string
		Columns []string
	}
	indexes, err := pgx.CollectRows(rows, pgx.RowToStructByPos[index])
	if err != nil {
		return fmt.Errorf("keyset: look up unique indexes of %s: %w", name, err)
	}
	inKey := make(map[string]bool, len(key))
	for _, k := range key {
		inKey[k] = true
	}
	var seen []string
	for _, ix := range indexes {
		covered := true
		for _, c := range ix.Columns {
			covered = covered && inKey[c]
		}
		if covered {
			return nil
		}
		seen = append(seen, fmt.Sprintf("%s (%s)", ix.Name, strings.Join(ix.Columns, ", ")))
	}
	found := "it has none"
	if len(seen) > 0 {
		found = "it has " + strings.Join(seen, ", ")
	}
	return fmt.Errorf("%w: no primary key or unique index of %s has all its columns among the key (%s); %s. Add the missing columns to the key, or set AllowNonUnique if the key is unique anyway (rows sharing a key would be skipped)",
		ErrNotUnique, name, strings.Join(key, ", "), found)
}

// countRows runs the count query of mode once.
func countRows(ctx context.Context, db Querier, mode Count, query string, args []any) (int64, error) {
	switch mode {
	case CountExact:
		var n int64
		if err := db.QueryRow(ctx, query, args...).Scan(&n); err != nil {
			return 0, err
		}
		return n, nil
	case CountEstimate:
		var plan []byte
		if err := db.QueryRow(ctx, query, args...).Scan(&plan); err != nil {
			return 0, err
		}
		var explained []struct {
			Plan struct {
				Rows *float64 `json:"Plan Rows"`
			} `json:"Plan"`
		}
		if err := json.Unmarshal(plan, &explained); err != nil {
			return 0, fmt.Errorf("read EXPLAIN output: %w", err)
		}
		if len(explained) == 0 || explained[0].Plan.Rows == nil {
			return -1, nil
		}
		return int64(math.Round(*explained[0].Plan.Rows)), nil
	}
	return 0, errors.New("no count asked")
}
