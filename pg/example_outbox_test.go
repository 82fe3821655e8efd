package pg_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

type welcomeArgs struct {
	User string `json:"user"`
}

// sender is a job that "sends" a welcome email.
type sender struct{ sent chan string }

func (s sender) Perform(_ context.Context, a welcomeArgs) error {
	s.sent <- a.User
	return nil
}

// A job staged in a transaction exists if and only if the transaction
// commits: the drainer moves it to Redis after the commit, and the job
// staged in the transaction that rolled back never runs.
//
// The example needs PostgreSQL (TEST_DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/test), so it has no Output comment and
// `go test` only compiles it; TestExampleEnqueueTx runs it and checks that
// it prints:
//
//	staged welcome email for ada, committed
//	staged welcome email for bob, rolled back
//	sent welcome email to ada
//	outbox rows left: 0
func ExampleEnqueueTx() {
	ctx := context.Background()
	pool, schema, rdb, cleanup := exampleEnv(ctx)
	defer cleanup()
	log := slog.New(slog.DiscardHandler)
	if _, err := pg.Migrate(ctx, pool, &pg.MigrateOpts{Schema: schema, Logger: log}); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE users (name text PRIMARY KEY)`); err != nil {
		fmt.Println(err)
		return
	}
	outbox := pg.Schema(schema)

	// Sign up two users, each in a transaction that inserts the user and
	// stages a welcome email. The second transaction rolls back.
	signUp := func(name string, commit bool) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `INSERT INTO users VALUES ($1)`, name); err != nil {
			return err
		}
		if _, err := outbox.EnqueueTx(ctx, tx, "welcome", welcomeArgs{User: name}, nil); err != nil {
			return err
		}
		if !commit {
			fmt.Printf("staged welcome email for %s, rolled back\n", name)
			return tx.Rollback(ctx)
		}
		fmt.Printf("staged welcome email for %s, committed\n", name)
		return tx.Commit(ctx)
	}
	if err := errors.Join(signUp("ada", true), signUp("bob", false)); err != nil {
		fmt.Println(err)
		return
	}

	// A drainer moves committed jobs to Redis; a runner runs them. Each
	// job keeps the id EnqueueTx returned.
	client, err := queue.NewClient(rdb, queue.Config{Namespace: "example", Logger: log})
	if err != nil {
		fmt.Println(err)
		return
	}
	drainer, err := pg.NewDrainer(pg.DrainerConfig{DB: pool, Client: client, Schema: schema, Logger: log})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := drainer.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer drainer.Stop(ctx)
	s := sender{sent: make(chan string, 2)}
	reg := runner.NewRegistry()
	runner.Register(reg, "welcome", s, nil)
	r, err := runner.New(runner.Config{Redis: rdb, Registry: reg, Namespace: "example", Logger: log})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := r.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("sent welcome email to", <-s.sent)
	if err := r.Stop(ctx); err != nil {
		fmt.Println(err)
		return
	}
	select {
	case u := <-s.sent:
		fmt.Println("also sent to", u, "(wrong)")
	default:
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&left); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("outbox rows left:", left)
}

// exampleEnv returns a pool on a new schema (the search_path), an embedded
// Redis, and a function that drops and closes them.
func exampleEnv(ctx context.Context) (*pgxpool.Pool, string, redis.UniversalClient, func()) {
	cfg, err := pgxpool.ParseConfig(testutil.DatabaseURL())
	if err != nil {
		panic(err)
	}
	schema := testutil.Unique("example_")
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		panic(err)
	}
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		pool.Close()
		panic(err)
	}
	m, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	return pool, schema, rdb, func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = pool.Exec(c, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		pool.Close()
		_ = rdb.Close()
		m.Close()
	}
}
