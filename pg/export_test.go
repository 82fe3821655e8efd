package pg

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iterjob/iterjob/queue"
)

// PushStaged pushes every staged row of schema through client as a drainer
// does, without deleting them: what a drainer killed between its push and
// its delete leaves behind.
func PushStaged(ctx context.Context, pool *pgxpool.Pool, schema string, client *queue.Client) error {
	rows, err := pool.Query(ctx, queries(schema).drainSel, 0, 1<<30)
	if err != nil {
		return err
	}
	jobs, err := pgx.CollectRows(rows, scanStaged)
	if err != nil {
		return err
	}
	if len(jobs) == 0 {
		return fmt.Errorf("nothing staged")
	}
	p := &clientPusher{c: client, log: slog.Default()}
	return p.push(ctx, jobs)
}
