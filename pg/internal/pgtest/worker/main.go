// Command worker is the process the pg crash tests kill. It connects to
// PostgreSQL with the test's schema as search_path and to Redis under the
// test's namespace, and runs, by -mode:
//
//   - drain: a pg.Drainer only;
//   - workflow: a pg.Drainer and a runner running the crash workflow of
//     package pgtest, its child jobs (through pg's middleware) and receipts;
//   - txrows: a runner (no drainer) running pgtest's rows job with
//     transactional checkpoints, with the runner's own signal handling:
//     SIGTSTP quiets it, SIGTERM stops it.
//
// It prints "ready" once started and runs until SIGTERM or SIGINT; the
// tests end it with SIGKILL at random instants. It logs JSON records to
// stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/pg/internal/pgtest"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
	"github.com/iterjob/iterjob/shutdown"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		dbURL    = flag.String("db", "", "PostgreSQL URL")
		schema   = flag.String("schema", "", "schema of the tables (also the search_path)")
		redisURL = flag.String("redis", "", "Redis URL")
		ns       = flag.String("ns", "", "Redis namespace")
		mode     = flag.String("mode", "drain", "drain or workflow")
		id       = flag.String("process-id", "", "runner process id")
		maxSleep = flag.Duration("max-sleep", 20*time.Millisecond, "longest random pause in a step or job")
		batch    = flag.Int("batch", 10, "txrows: rows per transaction")
	)
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if *mode == "txrows" {
		return runTxRows(log, *dbURL, *schema, *redisURL, *ns, *id, *maxSleep, *batch)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	cfg, err := pgxpool.ParseConfig(*dbURL)
	if err != nil {
		return err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = *schema
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	opts, err := redis.ParseURL(*redisURL)
	if err != nil {
		return err
	}
	opts.ClientName = *id
	rdb := redis.NewClient(opts)
	defer rdb.Close()

	client, err := queue.NewClient(rdb, queue.Config{Namespace: *ns, Logger: log})
	if err != nil {
		return err
	}
	drainer, err := pg.NewDrainer(pg.DrainerConfig{DB: pool, Client: client, Schema: *schema, Logger: log,
		StandbyInterval: 50 * time.Millisecond})
	if err != nil {
		return err
	}
	if err := drainer.Start(ctx); err != nil {
		return err
	}
	defer drainer.Stop(context.Background())

	if *mode == "workflow" {
		store, err := cursor.NewRedisStore(rdb, cursor.RedisConfig{Namespace: *ns})
		if err != nil {
			return err
		}
		mw, err := pg.NewMiddleware(pg.MiddlewareConfig{DB: pool, Schema: *schema, Store: store, Logger: log})
		if err != nil {
			return err
		}
		flow, err := pgtest.NewFlow(pool, *schema, *maxSleep)
		if err != nil {
			return err
		}
		reg := runner.NewRegistry()
		flow.Register(reg, nil)
		runner.Register(reg, pgtest.ChildKind, pgtest.Job{Pool: pool, Kind: pgtest.ChildKind, MaxSleep: *maxSleep}, nil)
		runner.Register(reg, pgtest.ReceiptKind, pgtest.Job{Pool: pool, Kind: pgtest.ReceiptKind}, nil)
		r, err := runner.New(runner.Config{
			Redis: rdb, Registry: reg, Namespace: *ns, Logger: log, ProcessID: *id,
			Concurrency: 8, Store: store, Middleware: []runner.Middleware{mw},
			HeartbeatInterval: 200 * time.Millisecond, DeadAfter: time.Second, MaxRecoveries: 1000,
			PollInterval: 100 * time.Millisecond,
			Backoff:      func(int) time.Duration { return 50 * time.Millisecond },
		})
		if err != nil {
			return err
		}
		if err := r.Start(ctx); err != nil {
			return err
		}
		fmt.Println("ready")
		<-ctx.Done()
		return r.Stop(context.Background())
	}
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}

// runTxRows runs pgtest's rows job with transactional checkpoints until a
// signal stops the runner.
func runTxRows(log *slog.Logger, dbURL, schema, redisURL, ns, id string, maxSleep time.Duration, batch int) error {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	opts.ClientName = id
	rdb := redis.NewClient(opts)
	defer rdb.Close()

	job, err := pg.TransactionalBatches(pgtest.RowsJob{Pool: pool, MaxSleep: maxSleep}, batch, pg.TxConfig{Pool: pool, Schema: schema})
	if err != nil {
		return err
	}
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, pgtest.RowsKind, job, nil)
	r, err := runner.New(runner.Config{
		Redis: rdb, Registry: reg, Namespace: ns, Logger: log, ProcessID: id,
		Concurrency: 4, ShutdownTimeout: 10 * time.Second,
		HeartbeatInterval: 200 * time.Millisecond, DeadAfter: time.Second, MaxRecoveries: 1000,
		PollInterval: 100 * time.Millisecond,
		Backoff:      func(int) time.Duration { return 50 * time.Millisecond },
	})
	if err != nil {
		return err
	}
	// What Run does, saying "ready" once started.
	unhandle := r.Shutdown().HandleSignals(ctx)
	defer unhandle()
	if err := r.Start(ctx); err != nil {
		return err
	}
	fmt.Println("ready")
	<-r.Shutdown().Reached(shutdown.Stopping)
	return r.Stop(context.Background())
}
