package keyset_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iterjob/iterjob/enumerators/keyset"
	"github.com/iterjob/iterjob/internal/testutil"
)

// benchKeysetRows is the size of the benchmark table.
const benchKeysetRows = 1_000_000

type benchKeysetRow struct {
	ID        int64     `db:"id"`
	AccountID int32     `db:"account_id"`
	Name      string    `db:"name"`
	Amount    int64     `db:"amount"`
	CreatedAt time.Time `db:"created_at"`
}

var benchKeysetSink benchKeysetRow

// BenchmarkKeyset measures a keyset enumeration of 1,000,000 rows against
// one streaming SELECT of the same rows into the same struct (metric
// x_select: the ratio of their times; the design's target is at most 1.3),
// for several page sizes, with each side decoding rows its default way
// (keyset: by name, the mapping worked out once per page; the SELECT:
// pgx.RowToStructByName) and with both decoding by hand (paging alone), and the first page of an enumeration resumed at
// row 900,000 against one resumed at row 0 (metric x_row0; target: 1 within
// noise).
//
// The table is built once per run, with generate_series, in a schema of its
// own. Run with:
//
//	go test ./enumerators/keyset -run '^$' -bench Keyset -benchtime 5x
func BenchmarkKeyset(b *testing.B) {
	pool := testutil.Postgres(b)
	ctx := b.Context()
	for _, sql := range []string{
		`CREATE TABLE bench_items (
			id bigint PRIMARY KEY,
			account_id int4 NOT NULL,
			name text NOT NULL,
			amount int8 NOT NULL,
			created_at timestamptz NOT NULL)`,
		fmt.Sprintf(`INSERT INTO bench_items
			SELECT i, i %% 1000, 'item ' || i, (i * 7919) %% 100000, '2024-01-01'::timestamptz + i * interval '1 second'
			FROM generate_series(1::int8, %d) i`, benchKeysetRows),
		`VACUUM ANALYZE bench_items`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}

	// Each Scan benchmark alternates the streaming SELECT and the candidate
	// in every iteration, so that both see the same noise (other processes,
	// the server's caches), and reports the ratio of their total times.
	selectAll := func(b *testing.B) { benchStreamingSelect(b, pool, "SELECT * FROM bench_items") }
	// scanKeyset returns a run of the keyset enumerator over every row.
	scanKeyset := func(cfg keyset.Config[benchKeysetRow]) func(*testing.B) {
		return func(b *testing.B) {
			e, err := keyset.Rows(ctx, cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			err = e.Enumerate(ctx, func(r benchKeysetRow, _ keyset.Cursor) bool {
				benchKeysetSink = r
				n++
				return true
			})
			if err != nil || n != benchKeysetRows {
				b.Fatalf("%d rows, %v", n, err)
			}
		}
	}
	b.Run("Scan/select-ordered", func(b *testing.B) {
		benchPaired(b, selectAll, func(b *testing.B) { benchStreamingSelect(b, pool, "SELECT * FROM bench_items ORDER BY id") }, "x_select")
	})
	for _, size := range []int{500, 1000, 5000, 10000} {
		b.Run(fmt.Sprintf("Scan/keyset-page=%d", size), func(b *testing.B) {
			cfg := keyset.Config[benchKeysetRow]{DB: pool, Table: "bench_items", Key: []string{"id"}, PageSize: size}
			benchPaired(b, selectAll, scanKeyset(cfg), "x_select")
		})
	}
	// The same with a hand-written Scan on both sides: decoding costs the
	// same, so the ratio is what paging itself costs.
	b.Run("Scan/keyset-handscan-vs-select-handscan", func(b *testing.B) {
		cfg := keyset.Config[benchKeysetRow]{DB: pool, Table: "bench_items", Key: []string{"id"}, Scan: benchHandScan}
		benchPaired(b, func(b *testing.B) {
			benchStreamingSelectWith(b, pool, "SELECT * FROM bench_items", benchHandScan)
		}, scanKeyset(cfg), "x_select")
	})
	b.Run(fmt.Sprintf("Scan/keyset-page=%d-prefetch", keyset.PageSizeDefault), func(b *testing.B) {
		cfg := keyset.Config[benchKeysetRow]{DB: pool, Table: "bench_items", Key: []string{"id"}, Prefetch: true}
		benchPaired(b, selectAll, scanKeyset(cfg), "x_select")
	})
	b.Run(fmt.Sprintf("Scan/keyset-pages-page=%d", keyset.PageSizeDefault), func(b *testing.B) {
		cfg := keyset.Config[benchKeysetRow]{DB: pool, Table: "bench_items", Key: []string{"id"}}
		benchPaired(b, selectAll, func(b *testing.B) {
			e, err := keyset.Pages(ctx, cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			err = e.Enumerate(ctx, func(page []benchKeysetRow, _ keyset.Cursor) bool {
				benchKeysetSink = page[len(page)-1]
				n += len(page)
				return true
			})
			if err != nil || n != benchKeysetRows {
				b.Fatalf("%d rows, %v", n, err)
			}
		}, "x_select")
	})

	// The first page (PageSizeDefault rows) after a cursor near the
	// start and near the end: the same range scan, the same cost. Building
	// the enumerator (catalog reads) is outside the timing; see Build.
	firstPage := func(at *keyset.Cursor) func(b *testing.B) {
		cfg := keyset.Config[benchKeysetRow]{DB: pool, Table: "bench_items", Key: []string{"id"}}
		e, err := keyset.Rows(ctx, cfg, at)
		if err != nil {
			b.Fatal(err)
		}
		return func(b *testing.B) {
			n := 0
			err := e.Enumerate(ctx, func(r benchKeysetRow, _ keyset.Cursor) bool {
				benchKeysetSink = r
				n++
				return false
			})
			if err != nil || n != 1 {
				b.Fatalf("%d rows, %v", n, err)
			}
		}
	}
	row0 := firstPage(&keyset.Cursor{Key: []string{"0"}})
	b.Run("FirstPage/start", func(b *testing.B) {
		benchPaired(b, row0, firstPage(nil), "x_row0")
	})
	b.Run("FirstPage/row=900000", func(b *testing.B) {
		benchPaired(b, row0, firstPage(&keyset.Cursor{Key: []string{"900000"}}), "x_row0")
	})

	// Building an enumerator reads the catalog: what a resume costs before
	// its first page.
	b.Run("Build", func(b *testing.B) {
		cfg := keyset.Config[benchKeysetRow]{DB: pool, Table: "bench_items", Key: []string{"id"}}
		at := &keyset.Cursor{Key: []string{"900000"}}
		for b.Loop() {
			if _, err := keyset.Rows(ctx, cfg, at); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchHandScan decodes a bench_items row without reflection.
func benchHandScan(row pgx.CollectableRow) (benchKeysetRow, error) {
	var r benchKeysetRow
	err := row.Scan(&r.ID, &r.AccountID, &r.Name, &r.Amount, &r.CreatedAt)
	return r, err
}

// benchStreamingSelect reads every row of one query, each into the struct
// with pgx.RowToStructByName: the way a program without this package would.
func benchStreamingSelect(b *testing.B, pool *pgxpool.Pool, sql string) {
	benchStreamingSelectWith(b, pool, sql, pgx.RowToStructByName[benchKeysetRow])
}

func benchStreamingSelectWith(b *testing.B, pool *pgxpool.Pool, sql string, scan pgx.RowToFunc[benchKeysetRow]) {
	rows, err := pool.Query(b.Context(), sql)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			b.Fatal(err)
		}
		benchKeysetSink = r
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil || n != benchKeysetRows {
		b.Fatalf("%d rows, %v", n, err)
	}
}

// benchPaired runs base and candidate once each per iteration, alternating
// which goes first, and reports per iteration their wall times (base-ms,
// candidate-ms), the ratio of wall times candidate/base under the name
// ratio, and the ratio of the CPU time this process spent in each under
// "cpu-"+ratio (decoding, GC and the Go scheduler, but not the time spent
// waiting for the server).
func benchPaired(b *testing.B, base, candidate func(b *testing.B), ratio string) {
	var baseTime, candTime, baseCPU, candCPU time.Duration
	timed := func(f func(b *testing.B), wall, cpu *time.Duration) {
		start, cpu0 := time.Now(), processCPU()
		f(b)
		*wall += time.Since(start)
		*cpu += processCPU() - cpu0
	}
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			timed(base, &baseTime, &baseCPU)
			timed(candidate, &candTime, &candCPU)
		} else {
			timed(candidate, &candTime, &candCPU)
			timed(base, &baseTime, &baseCPU)
		}
		i++
	}
	n := float64(b.N)
	b.ReportMetric(baseTime.Seconds()*1000/n, "base-ms")
	b.ReportMetric(candTime.Seconds()*1000/n, "candidate-ms")
	b.ReportMetric(float64(candTime)/float64(baseTime), ratio)
	if baseCPU > 0 {
		b.ReportMetric(float64(candCPU)/float64(baseCPU), "cpu-"+ratio)
	}
}
