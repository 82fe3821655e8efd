package keyset

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/iterjob/iterjob/enumerators"
)

// PageSizeDefault is the number of rows an enumerator reads per query when
// Config.PageSize is zero. Each page costs a round trip and a wake-up of the
// server, so small pages are slow: on 1,000,000 rows (see
// BenchmarkKeyset, on a loaded 2-core machine) pages of 500 and 1000 rows
// took 1.6 to 1.8 times as long as one streaming SELECT, pages of 5000 1.4
// to 1.5 times, and pages of 10,000 no less.
// A page is held in memory while its rows are processed, and a row is
// processed as it was when its page was read: lower PageSize for large rows
// or slow items.
const PageSizeDefault = 5000

// Errors of Rows and Pages. Each is matched with errors.Is; the message of
// the returned error adds the table, column or key concerned.
var (
	// ErrConfig is matched by an error about a Config that cannot work: a
	// missing field, a key column not in the result, a key type cursors
	// cannot hold.
	ErrConfig = errors.New("keyset: invalid config")

	// ErrNotUnique is matched when the key columns are not known to be
	// unique: no primary key or unique index of the table has all its
	// columns among them. See Config.AllowNonUnique.
	ErrNotUnique = errors.New("keyset: key is not unique")

	// ErrNullKey is matched when a row has NULL in a key column.
	ErrNullKey = errors.New("keyset: key column is NULL")
)

// Querier runs queries. *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Count says whether and how an enumerator counts its rows to report
// progress (see enumerators.ProgressReporter).
type Count int

const (
	// CountNone counts nothing: the enumerator does not implement
	// enumerators.ProgressReporter. The default.
	CountNone Count = iota
	// CountEstimate takes the planner's row estimate of the query (EXPLAIN,
	// which reads the statistics of ANALYZE, not the rows). Cheap, and as
	// good as the table's statistics.
	CountEstimate
	// CountExact runs SELECT count(*) over the rows the enumerator visits,
	// once per enumerator (that is, once per run of the job): a full read of
	// the rows, so use it only where that is affordable.
	CountExact
)

// Config describes the rows an enumerator visits and the key that orders
// them. Give either Table or Query.
type Config[T any] struct {
	// DB runs the queries: a *pgxpool.Pool, *pgx.Conn or pgx.Tx. Required.
	// The enumerator never closes it.
	DB Querier

	// Table is the table to read, "table" or "schema.table", exactly as the
	// catalog spells it (names are quoted, so case matters). The key columns
	// are checked for uniqueness against its indexes.
	Table string
	// Columns are the columns to select from Table. Empty means all
	// columns (*). They must include the key columns.
	Columns []string

	// Query, instead of Table, is a SELECT whose rows are visited, for joins
	// and computed columns. It is wrapped as a subquery, so it must not
	// have its own ORDER BY, LIMIT, OFFSET or FETCH at its top level (an
	// error matching ErrConfig says so; inside parentheses, in a subquery,
	// a window or an aggregate, they are fine); its output must include the
	// key columns under the names in Key. Its $n placeholders bind Args.
	Query string
	// KeyTable names, in Query mode, the table whose primary key or unique
	// index makes the key unique; the key columns must carry that table's
	// column names in the query's output, and the query must return at most
	// one row per row of that table. Query mode needs KeyTable or
	// AllowNonUnique.
	KeyTable string

	// Key names the key columns, in order: the rows are visited in the
	// order of the row value (Key[0], Key[1], ...). Required. Each name is
	// a bare column name (quoted, so case matters), without ASC or DESC:
	// one row-value comparison cannot mix directions, so the direction is
	// Descending, for all columns alike.
	//
	// Supported column types: smallint, integer, bigint, numeric, text,
	// varchar, char(n), uuid, date, timestamp and timestamptz (years 1 to
	// 9999, and ±infinity). Key columns must never be NULL: declare them
	// NOT NULL.
	Key []string

	// Filter, if not empty, is an SQL condition the rows must meet, as in
	// a WHERE clause, for example "tenant_id = $1 AND NOT archived". It is
	// SQL written by the programmer: never build it from user input; put
	// values in Args and refer to them as $1, $2, ... The enumerator adds
	// its own parameters after those of Args.
	Filter string
	// Args are the values of the $n placeholders of Filter and Query.
	Args []any

	// PageSize is the number of rows read per query. Zero means
	// PageSizeDefault. A page is held in memory while its rows are
	// yielded.
	PageSize int
	// Descending visits the rows from the greatest key to the smallest.
	Descending bool

	// Scan turns a row into an item. Nil means T is a struct whose fields
	// match the selected columns by name, by the rules of
	// pgx.RowToStructByName (db tags, case-insensitive names, embedded
	// structs), worked out once per page rather than once per row.
	Scan pgx.RowToFunc[T]

	// AllowNonUnique skips the uniqueness check. Dangerous: with a key that
	// is not unique, rows that share the key of the last row of a page are
	// skipped when the next page starts after that key, and on resume.
	// Use it only for a key that is unique although no index says so.
	AllowNonUnique bool

	// Count makes the enumerator report progress: CountNone (the
	// default), CountEstimate or CountExact.
	Count Count

	// Prefetch reads the next page while the rows of the current one are
	// yielded, hiding a round trip per page. The read uses a connection of
	// its own while the caller works on the current page's rows (for the
	// time of one query, never longer), so give the pool one connection
	// more per running job. Off by default: without it no connection is in
	// use while the caller works.
	Prefetch bool
}

// Cursor is the key of the last row processed. Its JSON form is
// {"key":["42","2024-05-01T10:00:00.123456Z"]}: one string per key column, in
// Config.Key order, each the column's value in a text form PostgreSQL reads
// back exactly: integers and numerics in decimal (no float rounding,
// even beyond 2^53), uuids in canonical form, timestamps in RFC 3339 with
// microseconds, timestamptz in UTC ("Z").
type Cursor struct {
	Key []string `json:"key"`
}

// Rows enumerates the rows of a table or query in the order of a unique
// key, one page per query, resuming after cursor (nil: from the start). The
// cursor after a row is that row's key.
//
// Each page is one range query on the key, never OFFSET:
//
//	SELECT cols FROM t WHERE (filter) AND (k1, k2) > ($1, $2) ORDER BY k1, k2 LIMIT n
//
// (with < and DESC when Descending), so resuming at row 10,000,000 costs
// what starting costs, provided PostgreSQL can read the range from an index.
// Give the table a btree index whose columns are the key columns in the
// order of Key (the primary key, when it is the key), preceded by any column
// the filter fixes by equality (for "tenant_id = $1", an index on
// (tenant_id, k1, k2)). Without one, each page scans and sorts the table.
//
// The key must be unique, or rows that share a key at a page boundary are
// skipped. Rows checks at build time that a primary key or a unique index
// (without predicate) of the table has all its columns among the key
// columns, and fails with ErrNotUnique otherwise, unless AllowNonUnique is
// set. A NULL key is an error matching ErrNullKey.
//
// A page is read whole (pgx.AppendRows) before its first row is yielded,
// so no connection is held while the caller works. A row is visited if it
// exists when its page is read: rows inserted behind the cursor during an
// enumeration are not visited, rows inserted beyond the page being yielded
// are, and rows deleted before their page is read are not. (A row inserted
// between the cursor and the end of the page already read is not visited.)
//
// Building reads the catalog (the key's types and the table's unique
// indexes) through cfg.DB with ctx. A cursor that does not fit the key (the
// wrong number of values, a value that does not parse as its column's
// type) is an error matching enumerators.ErrInvalidCursor.
//
// With Count set, the enumerator implements enumerators.ProgressReporter:
// Total is the row count (or estimate), computed once and cached, and Done
// is -1 (the runner counts the items processed).
func Rows[T any](ctx context.Context, cfg Config[T], cursor *Cursor) (enumerators.Enumerator[T, Cursor], error) {
	k, err := newPager(ctx, cfg, cursor)
	if err != nil {
		return nil, err
	}
	e := &rowsEnum[T]{k}
	if cfg.Count != CountNone {
		return &rowsCounted[T]{e}, nil
	}
	return e, nil
}

// Pages is Rows yielding whole pages: each item is one page of up to
// PageSize rows, and its cursor is the key of the page's last row. A page is
// never empty. With Count set, Total counts pages.
func Pages[T any](ctx context.Context, cfg Config[T], cursor *Cursor) (enumerators.Enumerator[[]T, Cursor], error) {
	k, err := newPager(ctx, cfg, cursor)
	if err != nil {
		return nil, err
	}
	e := &pagesEnum[T]{k}
	if cfg.Count != CountNone {
		return &pagesCounted[T]{e}, nil
	}
	return e, nil
}

// pager is what both enumerators share: the queries, the key and the start.
type pager[T any] struct {
	db       Querier
	scan     pgx.RowToFunc[T]
	args     []any
	keys     []keyColumn
	pageSize int
	prefetch bool
	start    []string // the cursor's key, nil from the start

	firstSQL string // the first page, from the start
	nextSQL  string // a page after a key
	countSQL string // count(*) or EXPLAIN, by cfg.Count

	countMode Count
	totalMu   sync.Mutex
	total     int64
	totalOK   bool
}

// keyColumn is one key column: its name and the type of its values.
type keyColumn struct {
	name string
	kind *keyKind
}

func (cfg *Config[T]) withDefaults() Config[T] {
	c := *cfg
	if c.PageSize == 0 {
		c.PageSize = PageSizeDefault
	}
	return c
}

func (cfg *Config[T]) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.DB == nil:
		return bad("DB is nil")
	case cfg.Table == "" && cfg.Query == "":
		return bad("give Table or Query")
	case cfg.Table != "" && cfg.Query != "":
		return bad("give Table or Query, not both")
	case cfg.Query != "" && len(cfg.Columns) > 0:
		return bad("Columns apply to Table; select the columns in Query")
	case cfg.Table != "" && cfg.KeyTable != "":
		return bad("KeyTable applies to Query; with Table the table itself is checked")
	case cfg.Query != "" && ownClause(cfg.Query) != "":
		return bad("Query has its own %s: it is wrapped as a subquery that the enumerator orders by Key and pages with LIMIT; remove it (one inside parentheses, in a subquery or a window, is fine)", ownClause(cfg.Query))
	case cfg.Query != "" && cfg.KeyTable == "" && !cfg.AllowNonUnique:
		return bad("with Query, name the table whose unique index makes the key unique (KeyTable), or set AllowNonUnique")
	case len(cfg.Key) == 0:
		return bad("Key names no column")
	case cfg.PageSize < 0:
		return bad("PageSize %d is negative", cfg.PageSize)
	case cfg.Count < CountNone || cfg.Count > CountExact:
		return bad("unknown Count %d", cfg.Count)
	}
	seen := make(map[string]bool, len(cfg.Key))
	for _, name := range cfg.Key {
		if name == "" {
			return bad("empty key column name")
		}
		if seen[name] {
			return bad("key column %q appears twice", name)
		}
		seen[name] = true
		if f := strings.Fields(name); len(f) > 1 {
			if d := strings.ToUpper(f[len(f)-1]); d == "ASC" || d == "DESC" {
				return bad("key column %q: give bare column names; the direction is Descending, for all columns alike (mixed per-column directions cannot use one row-value comparison and are not supported)", name)
			}
		}
	}
	for _, name := range cfg.Columns {
		if name == "" {
			return bad("empty name in Columns")
		}
	}
	return nil
}

// splitTable turns "schema.table" into a quoted, schema-qualified name.
func splitTable(name string) (pgx.Identifier, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("%w: table %q: want \"table\" or \"schema.table\"", ErrConfig, name)
	}
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("%w: table %q: empty name", ErrConfig, name)
		}
	}
	return pgx.Identifier(parts), nil
}

func newPager[T any](ctx context.Context, config Config[T], cursor *Cursor) (*pager[T], error) {
	if err := config.validate(); err != nil {
		return nil, err
	}
	cfg := config.withDefaults()

	// The rows, as a FROM item, and the select list.
	var from, selectList string
	if cfg.Table != "" {
		table, err := splitTable(cfg.Table)
		if err != nil {
			return nil, err
		}
		from = table.Sanitize()
		selectList = "*"
		if len(cfg.Columns) > 0 {
			cols := make([]string, len(cfg.Columns))
			for i, c := range cfg.Columns {
				cols[i] = pgx.Identifier{c}.Sanitize()
			}
			selectList = strings.Join(cols, ", ")
		}
	} else {
		// The newline ends a trailing -- comment in the query.
		from = "(" + cfg.Query + "\n) AS keyset_q"
		selectList = "*"
	}
	base := "SELECT " + selectList + " FROM " + from
	var where string
	if cfg.Filter != "" {
		where = "(" + cfg.Filter + "\n)"
	}

	if cfg.Scan == nil {
		if typ := reflect.TypeFor[T](); typ.Kind() != reflect.Struct {
			return nil, fmt.Errorf("%w: %s is not a struct: set Config.Scan to turn a row into it", ErrConfig, typ)
		}
	}
	k := &pager[T]{
		db:        cfg.DB,
		scan:      cfg.Scan,
		args:      slices.Clone(cfg.Args),
		pageSize:  cfg.PageSize,
		countMode: cfg.Count,
		prefetch:  cfg.Prefetch,
	}

	// The key's types, from the result of the query itself.
	kinds, err := describeKey(ctx, cfg.DB, withWhere(base, where)+" LIMIT 0", cfg.Args, cfg.Key)
	if err != nil {
		return nil, err
	}
	k.keys = make([]keyColumn, len(cfg.Key))
	for i, name := range cfg.Key {
		k.keys[i] = keyColumn{name: name, kind: kinds[i]}
	}

	// Uniqueness, from the catalog.
	if !cfg.AllowNonUnique {
		table := cfg.Table
		if table == "" {
			table = cfg.KeyTable
		}
		ident, err := splitTable(table)
		if err != nil {
			return nil, err
		}
		if err := checkUnique(ctx, cfg.DB, ident, cfg.Key); err != nil {
			return nil, err
		}
	}

	// The page queries.
	cols := make([]string, len(cfg.Key))
	params := make([]string, len(cfg.Key))
	order := make([]string, len(cfg.Key))
	for i, kc := range k.keys {
		cols[i] = pgx.Identifier{kc.name}.Sanitize()
		// An explicit CAST to the column's type: the parameter's type never
		// depends on inference or on the connection's exec mode.
		params[i] = "CAST($" + strconv.Itoa(len(cfg.Args)+i+1) + " AS " + kc.kind.sqlType + ")"
		order[i] = cols[i]
		if cfg.Descending {
			order[i] += " DESC"
		}
	}
	op := " > "
	if cfg.Descending {
		op = " < "
	}
	after := "(" + strings.Join(cols, ", ") + ")" + op + "(" + strings.Join(params, ", ") + ")"
	tail := " ORDER BY " + strings.Join(order, ", ") + " LIMIT " + strconv.Itoa(cfg.PageSize)
	k.firstSQL = withWhere(base, where) + tail
	if where != "" {
		k.nextSQL = withWhere(base, where+" AND "+after) + tail
	} else {
		k.nextSQL = withWhere(base, after) + tail
	}
	switch cfg.Count {
	case CountExact:
		k.countSQL = withWhere("SELECT count(*) FROM "+from, where)
	case CountEstimate:
		k.countSQL = "EXPLAIN (FORMAT JSON) " + withWhere(base, where)
	}

	if cursor != nil {
		if _, err := k.params(cursor.Key); err != nil {
			return nil, err
		}
		k.start = slices.Clone(cursor.Key)
	}
	return k, nil
}

func withWhere(sql, cond string) string {
	if cond == "" {
		return sql
	}
	return sql + " WHERE " + cond
}

// params turns a key into the values bound after Args, checking that it fits
// the key columns.
func (k *pager[T]) params(key []string) ([]any, error) {
	if len(key) != len(k.keys) {
		return nil, fmt.Errorf("keyset: cursor has %d values for %d key columns %q: %w", len(key), len(k.keys), k.keyNames(), enumerators.ErrInvalidCursor)
	}
	args := make([]any, len(k.args), len(k.args)+len(key))
	copy(args, k.args)
	for i, s := range key {
		v, err := k.keys[i].kind.parse(s)
		if err != nil {
			return nil, fmt.Errorf("keyset: cursor value %q for key column %q (%s): %v: %w", s, k.keys[i].name, k.keys[i].kind.sqlType, err, enumerators.ErrInvalidCursor)
		}
		args = append(args, v)
	}
	return args, nil
}

func (k *pager[T]) keyNames() []string {
	names := make([]string, len(k.keys))
	for i, kc := range k.keys {
		names[i] = kc.name
	}
	return names
}

// page is one page read: its items, and the key of each row (all rows, or
// only the last one).
type page[T any] struct {
	items   []T
	cursors []Cursor // per row, when asked for
	last    []string // the key of the last row
}

// pageBuffers are reused from page to page of one enumeration.
type pageBuffers struct {
	m       *pgtype.Map
	keyText []byte   // the cursor strings of a page's keys, back to back
	keyEnds []int    // where each of them ends in keyText
	lastRaw [][]byte // the last row's raw key values, for pages
}

// maxPagePrealloc caps the items a page's slice is sized for before its rows
// arrive, so that a huge PageSize over a few rows does not allocate for rows
// that never come.
const maxPagePrealloc = 10_000

// fetch reads the page after key (nil: the first page). With perRow, it
// keeps the cursor of every row; otherwise only the last row's key.
func (k *pager[T]) fetch(ctx context.Context, buf *pageBuffers, after []string, items []T, perRow bool) (page[T], error) {
	sql, args := k.firstSQL, k.args
	if after != nil {
		var err error
		if args, err = k.params(after); err != nil {
			return page[T]{}, err
		}
		sql = k.nextSQL
	}
	rows, err := k.db.Query(ctx, sql, args...)
	if err != nil {
		if rows != nil {
			rows.Close()
		}
		return page[T]{}, err
	}
	// Also on a panic in a Scan function: the connection goes back to the
	// pool (Close is idempotent).
	defer rows.Close()

	if cap(items) == 0 {
		// A full page is the common case: size the slice for it once
		// rather than let append grow and copy it a dozen times.
		items = make([]T, 0, min(k.pageSize, maxPagePrealloc))
	}
	buf.keyText, buf.keyEnds = buf.keyText[:0], buf.keyEnds[:0]
	var last []string
	if items, last, err = k.scanRows(rows, buf, items, perRow); err != nil {
		rows.Close()
		return page[T]{}, err
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return page[T]{}, err
	}
	if len(items) == 0 {
		return page[T]{items: items}, nil
	}

	p := page[T]{items: items}
	nk := len(k.keys)
	if perRow {
		text := string(buf.keyText)
		values := make([]string, len(buf.keyEnds))
		start := 0
		for i, end := range buf.keyEnds {
			values[i] = text[start:end]
			start = end
		}
		p.cursors = make([]Cursor, len(items))
		for r := range p.cursors {
			p.cursors[r].Key = values[r*nk : (r+1)*nk : (r+1)*nk]
		}
		p.last = p.cursors[len(p.cursors)-1].Key
		return p, nil
	}
	p.last = last
	return p, nil
}

// scanRows appends the rows of a page to items, each decoded in place. With
// perRow it keeps every row's cursor strings in buf; otherwise it returns
// the last row's key.
func (k *pager[T]) scanRows(rows pgx.Rows, buf *pageBuffers, items []T, perRow bool) ([]T, []string, error) {
	var index []int // the result column of each key column
	var fds []pgconn.FieldDescription
	var named *byName[T]
	for rows.Next() {
		if index == nil {
			fds = rows.FieldDescriptions()
			var err error
			if index, err = k.columnIndex(fds); err != nil {
				return items, nil, err
			}
			if k.scan == nil {
				if named, err = mapColumns[T](fds); err != nil {
					return items, nil, err
				}
			}
		}
		raw := rows.RawValues()
		for i, kc := range k.keys {
			if raw[index[i]] == nil {
				return items, nil, fmt.Errorf("%w: column %q", ErrNullKey, kc.name)
			}
		}
		var err error
		if named != nil {
			var zero T
			items = append(items, zero)
			err = named.scan(rows, &items[len(items)-1])
		} else {
			var item T
			if item, err = k.scan(rows); err == nil {
				items = append(items, item)
			}
		}
		if err != nil {
			return items, nil, err
		}
		if perRow {
			// Append the key's strings to one buffer: one allocation per
			// page, not per row.
			for i, kc := range k.keys {
				fd := &fds[index[i]]
				if buf.keyText, err = kc.kind.appendKey(buf.keyText, buf.m, fd.DataTypeOID, fd.Format, raw[index[i]]); err != nil {
					return items, nil, fmt.Errorf("keyset: key column %q: %w", kc.name, err)
				}
				buf.keyEnds = append(buf.keyEnds, len(buf.keyText))
			}
		} else {
			for i := range k.keys {
				buf.lastRaw[i] = append(buf.lastRaw[i][:0], raw[index[i]]...)
			}
		}
	}
	if perRow || len(items) == 0 {
		return items, nil, nil
	}
	// Only the last row's key is needed: format it now.
	last := make([]string, len(k.keys))
	for i, kc := range k.keys {
		fd := &fds[index[i]]
		text, err := kc.kind.appendKey(nil, buf.m, fd.DataTypeOID, fd.Format, buf.lastRaw[i])
		if err != nil {
			return items, nil, fmt.Errorf("keyset: key column %q: %w", kc.name, err)
		}
		last[i] = string(text)
	}
	return items, last, nil
}

// columnIndex finds the key columns in a result and checks their types.
func (k *pager[T]) columnIndex(fds []pgconn.FieldDescription) ([]int, error) {
	index := make([]int, len(k.keys))
	for i, kc := range k.keys {
		j, err := findColumn(fds, kc.name)
		if err != nil {
			return nil, err
		}
		if fds[j].DataTypeOID != kc.kind.oid {
			return nil, fmt.Errorf("%w: key column %q changed type (OID %d, was %s)", ErrConfig, kc.name, fds[j].DataTypeOID, kc.kind.sqlType)
		}
		index[i] = j
	}
	return index, nil
}

// describeAfter names a key in errors.
func describeAfter(after []string) string {
	if after == nil {
		return "first page"
	}
	return fmt.Sprintf("page after %q", after)
}

// each runs the pages from the start cursor, calling fn with each non-empty
// page until fn returns false or the rows run out.
func (k *pager[T]) each(ctx context.Context, perRow bool, fn func(p page[T]) bool) error {
	if k.prefetch {
		return k.eachPrefetched(ctx, perRow, fn)
	}
	buf := &pageBuffers{m: pgtype.NewMap(), lastRaw: make([][]byte, len(k.keys))}
	after := k.start
	var items []T
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("keyset: %s: %w", describeAfter(after), err)
		}
		p, err := k.fetch(ctx, buf, after, items, perRow)
		if err != nil {
			return fmt.Errorf("keyset: %s: %w", describeAfter(after), err)
		}
		if len(p.items) == 0 || !fn(p) || len(p.items) < k.pageSize {
			// Empty, stopped, or short: a short page is the last one.
			return nil
		}
		after = p.last
		if perRow {
			// The rows were yielded one by one (copied out): reuse the slice.
			clear(p.items)
			items = p.items[:0]
		}
	}
}

// eachPrefetched is each with the next page read while the current one is
// handed to fn. Two sets of buffers and item slices alternate, so a fetch
// never touches what the page being yielded uses.
//
// An early stop waits for the fetch in flight to finish rather than
// cancelling it: a query cancelled mid-way makes pgxpool destroy its
// connection (in the background, so the pool still counts it as in use
// after Enumerate returns). The wait is normally one indexed range query,
// but it lasts as long as that query does: behind a lock, until the lock is
// released. Cancelling ctx (a hard stop does) ends the fetch at once.
//
// A panic in the fetch (a Scan function, a column type's scanner) is
// raised again in the caller's goroutine, where the runner recovers it, as
// it would be without Prefetch.
func (k *pager[T]) eachPrefetched(ctx context.Context, perRow bool, fn func(p page[T]) bool) error {
	type result struct {
		p     page[T]
		err   error
		panic error // non-nil: the fetch panicked
	}
	var bufs [2]*pageBuffers
	for i := range bufs {
		bufs[i] = &pageBuffers{m: pgtype.NewMap(), lastRaw: make([][]byte, len(k.keys))}
	}
	var spare [2][]T
	var inFlight chan result
	receive := func() result {
		r := <-inFlight
		inFlight = nil
		if r.panic != nil {
			panic(r.panic)
		}
		return r
	}
	defer func() {
		if inFlight != nil {
			receive()
		}
	}()
	start := func(slot int, after []string) {
		ch := make(chan result, 1)
		items := spare[slot]
		go func() {
			var r result
			defer func() {
				if v := recover(); v != nil {
					r = result{panic: fmt.Errorf("keyset: panic while prefetching a page: %v\n\n%s", v, debug.Stack())}
				}
				ch <- r
			}()
			r.p, r.err = k.fetch(ctx, bufs[slot], after, items, perRow)
		}()
		inFlight = ch
	}

	slot, after := 0, k.start
	p, err := k.fetch(ctx, bufs[slot], after, nil, perRow)
	for {
		if err != nil {
			return fmt.Errorf("keyset: %s: %w", describeAfter(after), err)
		}
		if len(p.items) == 0 {
			return nil
		}
		more := len(p.items) == k.pageSize // a short page is the last one
		if more {
			start(1-slot, p.last)
		}
		if !fn(p) || !more {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("keyset: %s: %w", describeAfter(p.last), err)
		}
		r := receive()
		if perRow {
			// The rows were yielded one by one (copied out): reuse the slice.
			clear(p.items)
			spare[slot] = p.items[:0]
		}
		slot, after = 1-slot, p.last
		p, err = r.p, r.err
	}
}

// totalRows counts the rows once, by k.countMode, and caches the count.
func (k *pager[T]) totalRows(ctx context.Context) (int64, error) {
	k.totalMu.Lock()
	defer k.totalMu.Unlock()
	if k.totalOK {
		return k.total, nil
	}
	n, err := countRows(ctx, k.db, k.countMode, k.countSQL, k.args)
	if err != nil {
		return 0, err
	}
	k.total, k.totalOK = n, true
	return n, nil
}

// rowsEnum yields one row at a time.
type rowsEnum[T any] struct{ k *pager[T] }

func (e *rowsEnum[T]) Enumerate(ctx context.Context, yield func(T, Cursor) bool) error {
	return e.k.each(ctx, true, func(p page[T]) bool {
		for i := range p.items {
			if !yield(p.items[i], p.cursors[i]) {
				return false
			}
		}
		return true
	})
}

// pagesEnum yields one page at a time.
type pagesEnum[T any] struct{ k *pager[T] }

func (e *pagesEnum[T]) Enumerate(ctx context.Context, yield func([]T, Cursor) bool) error {
	return e.k.each(ctx, false, func(p page[T]) bool {
		return yield(p.items, Cursor{Key: p.last})
	})
}

// rowsCounted is rowsEnum with progress.
type rowsCounted[T any] struct{ *rowsEnum[T] }

// Progress reports the row count (exact or estimated, computed once) as
// Total, and Done -1: the runner counts the rows processed.
func (e *rowsCounted[T]) Progress(ctx context.Context, _ *Cursor) (enumerators.Progress, error) {
	n, err := e.k.totalRows(ctx)
	if err != nil {
		return enumerators.Progress{}, fmt.Errorf("keyset: count: %w", err)
	}
	return enumerators.Progress{Done: -1, Total: n, Unit: "rows"}, nil
}

// pagesCounted is pagesEnum with progress.
type pagesCounted[T any] struct{ *pagesEnum[T] }

// Progress reports the number of pages (from the row count, computed once)
// as Total, and Done -1: the runner counts the pages processed.
func (e *pagesCounted[T]) Progress(ctx context.Context, _ *Cursor) (enumerators.Progress, error) {
	n, err := e.k.totalRows(ctx)
	if err != nil {
		return enumerators.Progress{}, fmt.Errorf("keyset: count: %w", err)
	}
	if n > 0 {
		size := int64(e.k.pageSize)
		n = (n + size - 1) / size
	}
	return enumerators.Progress{Done: -1, Total: n, Unit: "pages"}, nil
}
