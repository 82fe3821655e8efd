package pg_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/queue"
)

type ExportArgs struct {
	Tenant string `json:"tenant"`
}

func (ExportArgs) Kind() string { return "export" }

// Staged jobs take their kind from typed arguments, as the client does, and
// keep a start cursor through the outbox: the job reaches the queue as
// queue.Client.EnqueueArgs would have added it.
func TestStagedTypedJobsKeepKindAndStartCursor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	s := pg.Schema(b.schema)
	var ids []string
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		id, err := s.EnqueueArgsTx(ctx, tx, ExportArgs{Tenant: "acme"},
			&queue.EnqueueOpts{StartCursor: []any{"2026-01-01", 4000}, Meta: map[string]string{"by": "ops"}})
		if err != nil {
			return err
		}
		more, err := s.EnqueueManyTx(ctx, tx, []queue.Params{{Args: ExportArgs{Tenant: "globex"}}})
		ids = append([]string{id}, more...)
		return err
	}))
	b.drainer(t, pg.DrainerConfig{})
	testutil.Eventually(t, 10*time.Second, func() bool { return b.outboxLen(t) == 0 }, "the outbox to drain")

	jobs, err := b.client.QueueJobs(ctx, queue.QueueDefault, 0, 10)
	require.NoError(t, err)
	require.Len(t, jobs, 2)
	byID := map[string]*jobtype.Job{jobs[0].ID: jobs[0], jobs[1].ID: jobs[1]}
	first, second := byID[ids[0]], byID[ids[1]]
	require.NotNil(t, first)
	require.NotNil(t, second)
	require.Equal(t, "export", first.Kind)
	require.JSONEq(t, `["2026-01-01",4000]`, first.Meta[jobtype.MetaStartCursor])
	require.Equal(t, "ops", first.Meta["by"])
	require.Equal(t, "export", second.Kind, "EnqueueManyTx takes the kind from typed args")
	require.JSONEq(t, `{"tenant":"globex"}`, string(second.Args))

	_, err = pg.Schema(b.schema).EnqueueManyTx(ctx, nil, []queue.Params{{Args: 1}})
	require.ErrorIs(t, err, pg.ErrInvalidJob, "untyped args still need a kind")
}
