package pg_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/iterjobtest"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/pg/internal/pgtest"
)

// BenchmarkTxCheckpoints compares, in one run and over the same table, the
// rows per second of a job that adds one to a counter of each row in
// batches of 100, with transactional checkpoints (one transaction per batch
// holding the batch's update and the cursor's) and without (each batch's
// update commits on its own; the cursor goes to the cursor store). Target:
// the transactional mode at least 0.75× the other. The modes alternate,
// several rounds each, and the median of each is reported.
//
//	go test ./pg -run '^$' -bench TxCheckpoints -benchtime 1x
func BenchmarkTxCheckpoints(b *testing.B) {
	const (
		rows   = 50_000
		batch  = 100
		rounds = 5
	)
	ctx := context.Background()
	for b.Loop() {
		bu := setup(b, testutil.Miniredis(b))
		bu.rowsTable(b, rows)
		_, err := bu.pool.Exec(ctx, `VACUUM ANALYZE tx_rows`)
		require.NoError(b, err)
		txJob, err := pg.TransactionalBatches(pgtest.RowsJob{Pool: bu.pool}, batch, pg.TxConfig{Pool: bu.pool, Schema: bu.schema})
		require.NoError(b, err)
		plainJob := pgtest.PlainRowsJob{Pool: bu.pool, Batch: batch}
		args := pgtest.RowsArgs{Page: 1000}

		var plain, tx []float64
		for i := range 2 * rounds {
			_, err := bu.pool.Exec(ctx, `UPDATE tx_rows SET n = 0`)
			require.NoError(b, err)
			_, err = bu.pool.Exec(ctx, `VACUUM tx_rows`)
			require.NoError(b, err)
			start := time.Now()
			var run *iterjobtest.Run
			if i%2 == 0 {
				run, err = iterjobtest.Iterate(ctx, plainJob, args, nil, 0)
			} else {
				run, err = iterjobtest.Iterate(ctx, txJob, args, nil, 0)
			}
			took := time.Since(start)
			require.NoError(b, err)
			require.Equal(b, iterable.Completed, run.Stop)
			require.Equal(b, map[int]int{1: rows}, bu.counts(b))
			rate := rows / took.Seconds()
			if i%2 == 0 {
				plain = append(plain, rate)
			} else {
				tx = append(tx, rate)
			}
		}
		slices.Sort(plain)
		slices.Sort(tx)
		p, t := plain[rounds/2], tx[rounds/2]
		b.ReportMetric(p, "plain_rows/s")
		b.ReportMetric(t, "tx_rows/s")
		b.ReportMetric(t/p, "tx/plain")
		fmt.Printf("batches of %d over %d rows, median of %d rounds: plain %.0f rows/s, transactional %.0f rows/s: %.2f× (target ≥ 0.75×)\n",
			batch, rows, rounds, p, t, t/p)
		fmt.Printf("  plain rounds: %.0f\n  tx rounds:    %.0f\n", plain, tx)
	}
}
