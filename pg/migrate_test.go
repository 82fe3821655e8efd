package pg_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/pg"
)

func TestMigrateAppliesEachVersionOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testutil.Postgres(t)
	schema := testutil.Unique("mig_")
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })

	migs, err := pg.Migrations(schema)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(migs), 3)
	var want []int
	for i, m := range migs {
		require.Equal(t, i+1, m.Version, "versions are 1, 2, 3, ... in order")
		require.Contains(t, m.SQL, pgx.Identifier{schema}.Sanitize()+".")
		want = append(want, m.Version)
	}

	applied, err := pg.Migrate(ctx, pool, &pg.MigrateOpts{Schema: schema, Logger: quiet})
	require.NoError(t, err)
	require.Equal(t, want, applied)
	applied, err = pg.Migrate(ctx, pool, &pg.MigrateOpts{Schema: schema, Logger: quiet})
	require.NoError(t, err)
	require.Empty(t, applied, "a second Migrate has nothing to do")

	var versions []int32
	rows, err := pool.Query(ctx, "SELECT version FROM "+schema+".migrations ORDER BY version")
	require.NoError(t, err)
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	require.Len(t, versions, len(want))
	for _, table := range []string{"outbox", "workflows", "workflow_jobs", "job_cursors"} {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM "+schema+"."+table).Scan(&n), table)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testutil.Postgres(t)
	schema := testutil.Unique("mig_")
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })

	// Four processes start at once, each migrating.
	const n = 4
	var wg sync.WaitGroup
	results := make([][]int, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = pg.Migrate(ctx, pool, &pg.MigrateOpts{Schema: schema, Logger: quiet})
		})
	}
	close(start)
	wg.Wait()
	total := 0
	for i := range n {
		require.NoError(t, errs[i], "migration %d", i)
		total += len(results[i])
	}
	migs, err := pg.Migrations(schema)
	require.NoError(t, err)
	require.Equal(t, len(migs), total, "each version applied by exactly one caller")
}

func TestMigrateRefusesBadSchema(t *testing.T) {
	t.Parallel()
	_, err := pg.Migrations(`x"; DROP TABLE y; --`)
	require.ErrorIs(t, err, pg.ErrInvalidSchema)
	_, err = pg.NewDrainer(pg.DrainerConfig{Schema: "1abc"})
	require.ErrorIs(t, err, pg.ErrInvalidSchema)
}
