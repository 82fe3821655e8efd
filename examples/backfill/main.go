// Command backfill backfills a column over a PostgreSQL table with an
// iterable job that walks the table by keyset pagination, survives a deploy
// part-way and resumes from the key of the last row it finished.
//
// It creates a schema with an accounts table of 20,000 rows, enqueues a job
// that fills accounts.email_domain page by page (500 rows per page, one
// UPDATE per page), quiets the worker after about 8,000 rows as a deploy
// would, and resumes the job on a second worker. Each UPDATE also counts
// its touches, so the program can check at the end that every row was
// updated exactly once. The schema is dropped on exit.
//
//	go run ./examples/backfill
//	DATABASE_URL=postgres://user@host/db go run ./examples/backfill
//
// It needs PostgreSQL: DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/test. Redis is REDIS_URL, or an
// embedded one when it is unset.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/keyset"
	"github.com/iterjob/iterjob/internal/exampleutil"
	"github.com/iterjob/iterjob/internal/redact"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// Account is the part of a row the job reads.
type Account struct {
	ID    int64  `db:"id"`
	Email string `db:"email"`
}

// BackfillArgs are the job's arguments.
type BackfillArgs struct {
	Table string `json:"table"`
}

// Backfill fills email_domain one page of accounts at a time. Items are
// whole pages, so the cursor (the key of a page's last row) moves only once
// the page's UPDATE has committed.
type Backfill struct {
	pool    *pgxpool.Pool
	reached chan struct{}
	once    sync.Once
}

// BuildEnumerator pages through the table in id order, after the cursor.
func (j *Backfill) BuildEnumerator(ctx context.Context, a BackfillArgs, c *keyset.Cursor) (enumerators.Enumerator[[]Account, keyset.Cursor], error) {
	if c != nil {
		fmt.Printf("  resuming after id %s: one indexed range query, no OFFSET\n", c.Key[0])
	}
	return keyset.Pages(ctx, keyset.Config[Account]{
		DB:       j.pool,
		Table:    a.Table,
		Columns:  []string{"id", "email"},
		Key:      []string{"id"},
		Filter:   "email_domain IS NULL",
		PageSize: 500,
	}, c)
}

// EachIteration updates one page in one statement. It is idempotent (the
// same page updated twice gives the same domains); touches only counts.
func (j *Backfill) EachIteration(ctx context.Context, a BackfillArgs, page []Account) error {
	ids := make([]int64, len(page))
	for i, acc := range page {
		ids[i] = acc.ID
	}
	_, err := j.pool.Exec(ctx, fmt.Sprintf(`UPDATE %s SET email_domain = split_part(email, '@', 2), touches = touches + 1
		WHERE id = ANY($1)`, pgx.Identifier{a.Table}.Sanitize()), ids)
	if err != nil {
		return err
	}
	if page[len(page)-1].ID >= 8000 {
		j.once.Do(func() { close(j.reached) })
	}
	return nil
}

// OnStop reports how each run ended.
func (j *Backfill) OnStop(ctx context.Context, _ BackfillArgs, reason iterable.StopReason) error {
	info, _ := iterable.InfoFromContext(ctx)
	fmt.Printf("  run %d stopped: %s\n", info.Executions, reason)
	return nil
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "backfill:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	schema := "backfill_" + queue.NewID()[:8]
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL at %s (set DATABASE_URL): %w", redact.URL(url), redact.Error(err, url))
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return err
	}
	defer admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return redact.Error(err, url)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return redact.Error(err, url)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE accounts (
			id bigint PRIMARY KEY, email text NOT NULL, email_domain text, touches int NOT NULL DEFAULT 0);
		INSERT INTO accounts (id, email)
			SELECT i, 'user' || i || '@' || (ARRAY['example.com','exemple.fr','例え.jp'])[1 + i % 3]
			FROM generate_series(1, 20000) i;
		ANALYZE accounts`); err != nil {
		return err
	}

	rdb, where, closeRedis, err := exampleutil.Connect(ctx)
	if err != nil {
		return err
	}
	defer closeRedis()
	ns := "backfill-" + queue.NewID()[:8]
	fmt.Printf("backfill on PostgreSQL schema %s and %s\ntable accounts: 20000 rows, email_domain empty\n\n", schema, where)

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	job := &Backfill{pool: pool, reached: make(chan struct{})}
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, "backfill-email-domain", job, nil)
	events := exampleutil.NewEvents()
	worker := func() (*runner.Runner, error) {
		r, err := runner.New(runner.Config{
			Redis: rdb, Registry: reg, Namespace: ns, Logger: logger, CheckpointInterval: 200 * time.Millisecond,
			OnEvent: events.Handle,
		})
		if err != nil {
			return nil, err
		}
		return r, r.Start(ctx)
	}

	client, err := queue.NewClient(rdb, queue.Config{Namespace: ns, Logger: logger})
	if err != nil {
		return err
	}
	if _, err := client.Enqueue(ctx, "backfill-email-domain", BackfillArgs{Table: "accounts"}, nil); err != nil {
		return err
	}
	w1, err := worker()
	if err != nil {
		return err
	}
	<-job.reached
	w1.Quiet()
	ev := events.Wait(jobtype.EventInterrupted)
	fmt.Printf("worker 1 quieted (a deploy): %d pages done, cursor %s\n", ev.Progress.ItemsProcessed, ev.Progress.Cursor)
	if err := w1.Stop(ctx); err != nil {
		return err
	}
	fmt.Println("worker 2 starts")
	w2, err := worker()
	if err != nil {
		return err
	}
	ev = events.Wait(jobtype.EventSucceeded)
	if err := w2.Stop(ctx); err != nil {
		return err
	}
	fmt.Printf("backfill finished: %d pages over %d runs\n\n", ev.Progress.ItemsProcessed, ev.Progress.Executions)

	var once, more, missing int
	err = pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE touches = 1),
			count(*) FILTER (WHERE touches > 1), count(*) FILTER (WHERE email_domain IS NULL)
		FROM accounts`).Scan(&once, &more, &missing)
	if err != nil {
		return err
	}
	fmt.Printf("check: %d rows updated exactly once, %d more than once, %d not backfilled\n", once, more, missing)
	if once != 20000 {
		return fmt.Errorf("the check failed")
	}
	return nil
}
