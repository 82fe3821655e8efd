// Command exactlyonce shows transactional checkpoints surviving kill -9:
// a job credits interest to 10,000 accounts, and its worker is killed with
// SIGKILL twice while it runs. The same job runs twice side by side, on two
// copies of the accounts table:
//
//   - interest-tx commits each batch of 50 credits together with the
//     cursor after it, in one PostgreSQL transaction (pg.TransactionalBatches);
//   - interest-plain does the same work as a plain iterable job: each
//     batch's update commits on its own and the cursor is checkpointed to
//     Redis every 5 seconds (the default).
//
// After each kill a new worker (this program, re-executed as a child
// process) recovers both jobs. interest-tx resumes at the cursor its last
// committed batch wrote, so no account is credited twice; interest-plain
// resumes at its last Redis checkpoint and credits again every account
// since. The program prints, for each table, how many accounts were
// credited once, more than once and never, and fails unless every account
// of the transactional table was credited exactly once.
//
//	go run ./examples/exactlyonce
//	DATABASE_URL=postgres://user@host/db go run ./examples/exactlyonce
//
// It needs PostgreSQL: DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/test. Redis is REDIS_URL, or an
// embedded one when it is unset (the child processes reach it over TCP).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/keyset"
	"github.com/iterjob/iterjob/internal/exampleutil"
	"github.com/iterjob/iterjob/internal/redact"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

const (
	accounts = 10_000
	batch    = 50
)

// InterestArgs name the table whose accounts the job credits.
type InterestArgs struct {
	Table string `json:"table"`
	Cents int    `json:"cents"`
}

// Account is a row of an accounts table.
type Account struct {
	ID int64 `db:"id"`
}

// Interest credits every account of a table once. Its transactional form
// (EachBatchTx) runs under pg.TransactionalBatches; Plain is the same job
// without transactional checkpoints.
type Interest struct{ pool *pgxpool.Pool }

// BuildEnumerator walks the table's accounts in id order, from the cursor.
func (j Interest) BuildEnumerator(ctx context.Context, a InterestArgs, c *keyset.Cursor) (enumerators.Enumerator[Account, keyset.Cursor], error) {
	return keyset.Rows(ctx, keyset.Config[Account]{DB: j.pool, Table: a.Table, Columns: []string{"id"}, Key: []string{"id"}}, c)
}

// EachBatchTx credits a batch of accounts inside the transaction that also
// records the cursor after the batch.
func (j Interest) EachBatchTx(ctx context.Context, tx pgx.Tx, a InterestArgs, accts []Account) error {
	return credit(ctx, tx, a, accts)
}

// Plain is Interest as a plain iterable job over batches.
type Plain struct{ Interest }

// BuildEnumerator groups the accounts in batches.
func (j Plain) BuildEnumerator(ctx context.Context, a InterestArgs, c *keyset.Cursor) (enumerators.Enumerator[[]Account, keyset.Cursor], error) {
	e, err := j.Interest.BuildEnumerator(ctx, a, c)
	if err != nil {
		return nil, err
	}
	return enumerators.Batches(e, batch), nil
}

// EachIteration credits a batch of accounts; the update commits on its own.
func (j Plain) EachIteration(ctx context.Context, a InterestArgs, accts []Account) error {
	return credit(ctx, j.pool, a, accts)
}

// execer is a pgx.Tx or a pool.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// credit adds the interest to each account and counts the credit. The
// pause stands for slower work, and makes the kills land mid-job.
func credit(ctx context.Context, db execer, a InterestArgs, accts []Account) error {
	ids := make([]int64, len(accts))
	for i, acc := range accts {
		ids[i] = acc.ID
	}
	_, err := db.Exec(ctx, `UPDATE `+pgx.Identifier{a.Table}.Sanitize()+` SET cents = cents + $2, credits = credits + 1 WHERE id = ANY($1)`, ids, a.Cents)
	time.Sleep(4 * time.Millisecond)
	return err
}

func main() { exampleutil.Main("exactlyonce", runChild, run) }

// runChild is the worker. The parent passes its settings in the
// environment.
func runChild() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	schema, ns := os.Getenv("EXACTLYONCE_SCHEMA"), os.Getenv("EXACTLYONCE_NS")
	// Reaping a killed worker's jobs is logged as a warning: expected here.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	pool, err := exampleutil.ConnectSchema(ctx, os.Getenv("EXACTLYONCE_DB"), schema)
	if err != nil {
		return err
	}
	defer pool.Close()
	opts, err := redis.ParseURL(os.Getenv("EXACTLYONCE_REDIS"))
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()

	txJob, err := pg.TransactionalBatches(Interest{pool: pool}, batch, pg.TxConfig{Pool: pool, Schema: schema})
	if err != nil {
		return err
	}
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, "interest-tx", txJob, nil)
	runner.RegisterIterable(reg, "interest-plain", Plain{Interest{pool: pool}}, nil)
	r, err := runner.New(runner.Config{
		Redis: rdb, Registry: reg, Namespace: ns, Logger: log, Concurrency: 2,
		// Notice a dead worker within a second (the defaults say 30 s).
		HeartbeatInterval: 200 * time.Millisecond, DeadAfter: time.Second,
	})
	if err != nil {
		return err
	}
	return exampleutil.RunWorker(ctx, r)
}

func run(ctx context.Context) error {
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		dbURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	schema := "exactlyonce_" + queue.NewID()[:8]
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pool, err := exampleutil.ConnectSchema(ctx, dbURL, schema)
	if err != nil {
		return fmt.Errorf("PostgreSQL at %s (set DATABASE_URL): %w", redact.URL(dbURL), redact.Error(err, dbURL))
	}
	defer pool.Close()
	if _, err := pg.Migrate(ctx, pool, &pg.MigrateOpts{Schema: schema, Logger: log}); err != nil {
		return fmt.Errorf("migrate PostgreSQL at %s (set DATABASE_URL): %w", redact.URL(dbURL), redact.Error(err, dbURL))
	}
	defer pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	for _, table := range []string{"accounts_tx", "accounts_plain"} {
		if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` (id bigint PRIMARY KEY, cents bigint NOT NULL DEFAULT 0, credits int NOT NULL DEFAULT 0);
			INSERT INTO `+table+` (id) SELECT generate_series(1, `+fmt.Sprint(accounts)+`)`); err != nil {
			return err
		}
	}
	rdb, where, closeRedis, err := exampleutil.Connect(ctx)
	if err != nil {
		return err
	}
	defer closeRedis()
	redisURL := os.Getenv("REDIS_URL")
	if redisURL == "" {
		redisURL = "redis://" + rdb.(*redis.Client).Options().Addr
	}
	ns := "exactlyonce-" + queue.NewID()[:8]
	defer exampleutil.DeleteNamespace(rdb, ns)
	fmt.Printf("exactlyonce on PostgreSQL schema %s and %s\n", schema, where)

	client, err := queue.NewClient(rdb, queue.Config{Namespace: ns, Logger: log})
	if err != nil {
		return err
	}
	jobs := map[string]string{} // kind → job id
	for kind, table := range map[string]string{"interest-tx": "accounts_tx", "interest-plain": "accounts_plain"} {
		res, err := client.Enqueue(ctx, kind, InterestArgs{Table: table, Cents: 125}, nil)
		if err != nil {
			return err
		}
		jobs[kind] = res.Job.ID
	}
	fmt.Printf("enqueued interest-tx and interest-plain: credit %d accounts each, in batches of %d\n\n", accounts, batch)

	store, err := cursor.NewRedisStore(rdb, cursor.RedisConfig{Namespace: ns})
	if err != nil {
		return err
	}
	progress := func() string {
		out := ""
		for _, kind := range []string{"interest-tx", "interest-plain"} {
			st, err := store.Load(ctx, jobs[kind])
			switch {
			case err != nil:
				out += fmt.Sprintf("  %s: not started\n", kind)
			case st.Cursor == nil:
				out += fmt.Sprintf("  %s: no cursor in Redis yet\n", kind)
			default:
				out += fmt.Sprintf("  %s: cursor in Redis at %s\n", kind, st.Cursor)
			}
		}
		return out
	}
	env := append(os.Environ(), "EXACTLYONCE_DB="+dbURL, "EXACTLYONCE_SCHEMA="+schema,
		"EXACTLYONCE_REDIS="+redisURL, "EXACTLYONCE_NS="+ns)
	for n := 1; n <= 2; n++ {
		w, err := exampleutil.StartChild(n, env)
		if err != nil {
			return err
		}
		time.Sleep(700 * time.Millisecond)
		_ = w.Cmd.Process.Kill()
		<-w.Exited
		fmt.Printf(">>> kill -9 worker %d\n%s", n, progress())
		if c, err := pg.LoadCursor(ctx, pool, schema, jobs["interest-tx"]); err == nil {
			fmt.Printf("  interest-tx: committed cursor in PostgreSQL at %s (%d batches)\n", c.Cursor, c.Items)
		}
		fmt.Println()
	}
	w, err := exampleutil.StartChild(3, env)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		done := 0
		for _, id := range jobs {
			if st, err := store.Load(ctx, id); err == nil && st.Status == cursor.StatusCompleted {
				done++
			}
		}
		if done == len(jobs) {
			break
		}
		if time.Now().After(deadline) {
			_ = w.Cmd.Process.Kill()
			return fmt.Errorf("jobs not done after 60s:%s", progress())
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = w.Cmd.Process.Signal(syscall.SIGTERM)
	<-w.Exited

	fmt.Printf("\ncheck: accounts credited once / more than once / never, of %d\n", accounts)
	var txOK bool
	for _, table := range []string{"accounts_tx", "accounts_plain"} {
		var once, more, never int
		if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE credits = 1), count(*) FILTER (WHERE credits > 1),
			count(*) FILTER (WHERE credits = 0) FROM `+table).Scan(&once, &more, &never); err != nil {
			return err
		}
		fmt.Printf("  %-15s %6d / %6d / %6d\n", table, once, more, never)
		if table == "accounts_tx" {
			txOK = once == accounts
		}
	}
	if !txOK {
		return errors.New("the check failed: the transactional job credited an account twice or missed one")
	}
	return nil
}
