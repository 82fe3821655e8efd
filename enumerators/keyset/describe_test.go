package keyset_test

import (
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/keyset"
	"github.com/iterjob/iterjob/internal/testutil"
)

// Building a keyset reads the key columns' types from a describe query. It
// once read them after releasing the connection, from a buffer pgx reuses
// for the connection's next query: with the race detector, keysets built at
// once on a pool of one connection reported a data race (and could read
// another query's column types).
func TestKeysetBuildsConcurrentlyOnOneConnection(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t)
	itemsTable(t, pool, 10)
	cfg := pool.Config()
	cfg.MaxConns = 1
	one, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(one.Close)

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			kcfg := keyset.Config[keysetItem]{DB: one, Table: "items", Key: []string{"id"}, PageSize: 3}
			e, err := keyset.Rows(t.Context(), kcfg, nil)
			if err == nil {
				_, _, err = enumerators.Collect(t.Context(), e)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
