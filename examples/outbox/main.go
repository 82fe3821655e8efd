// Command outbox shows jobs staged inside database transactions: a job
// exists if and only if its transaction commits.
//
// It signs up six users. Each sign-up is one transaction that inserts the
// user and stages a welcome email with pg.EnqueueTx; the fourth transaction
// fails after staging its email and rolls back. A drainer moves the
// committed emails from the outbox table to Redis and a runner sends them.
// At the end the program checks that every committed user got exactly one
// email, the rolled-back user got none, and the outbox is empty.
//
//	go run ./examples/outbox
//	DATABASE_URL=postgres://user@host/db go run ./examples/outbox
//
// It needs PostgreSQL: DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/test. Redis is REDIS_URL, or an
// embedded one when it is unset.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/exampleutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// WelcomeArgs are the welcome email job's arguments.
type WelcomeArgs struct {
	User string `json:"user"`
}

// Welcome "sends" a welcome email by recording it.
type Welcome struct {
	mu   sync.Mutex
	sent map[string]int // user → emails sent
	done chan struct{}  // receives one value per email
}

// Perform sends one email.
func (w *Welcome) Perform(_ context.Context, a WelcomeArgs) error {
	w.mu.Lock()
	w.sent[a.User]++
	w.mu.Unlock()
	fmt.Printf("  sent a welcome email to %s\n", a.User)
	w.done <- struct{}{}
	return nil
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "outbox:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	// The example's own schema, for its tables and pg's: dropped on exit.
	schema := "outbox_" + queue.NewID()[:8]
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if _, err := pg.Migrate(ctx, pool, &pg.MigrateOpts{Schema: schema, Logger: logger}); err != nil {
		return fmt.Errorf("migrate PostgreSQL at %s (set DATABASE_URL): %w", url, err)
	}
	defer pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	if _, err := pool.Exec(ctx, `CREATE TABLE users (name text PRIMARY KEY, signed_up_at timestamptz DEFAULT now())`); err != nil {
		return err
	}

	rdb, where, closeRedis, err := exampleutil.Connect(ctx)
	if err != nil {
		return err
	}
	defer closeRedis()
	ns := "outbox-" + queue.NewID()[:8]
	defer cleanup(rdb, ns)
	fmt.Printf("outbox on PostgreSQL schema %s and %s\n\n", schema, where)

	users := []string{"ada", "grace", "edsger", "mallory", "barbara", "ken"}
	const failing = "mallory"
	outbox := pg.Schema(schema)
	staged := map[string]string{} // user → job id
	fmt.Println("signing up users, one transaction each (user row + staged welcome email):")
	for _, u := range users {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO users (name) VALUES ($1)`, u); err != nil {
				return err
			}
			jid, err := outbox.EnqueueTx(ctx, tx, "welcome", WelcomeArgs{User: u}, nil)
			if err != nil {
				return err
			}
			staged[u] = jid
			if u == failing {
				return errors.New("the fraud check rejected the sign-up")
			}
			return nil
		})
		if err != nil {
			fmt.Printf("  %-8s rolled back (%v); its email job %s was staged in the same transaction\n", u, err, staged[u])
			continue
		}
		fmt.Printf("  %-8s committed; email job %s staged\n", u, staged[u])
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&rows); err != nil {
		return err
	}
	fmt.Printf("\noutbox rows: %d (the rolled-back one never existed for anyone else)\n", rows)

	// The drainer pushes committed rows to Redis under the ids EnqueueTx
	// returned; the runner runs them.
	client, err := queue.NewClient(rdb, queue.Config{Namespace: ns, Logger: logger})
	if err != nil {
		return err
	}
	drainer, err := pg.NewDrainer(pg.DrainerConfig{DB: pool, Client: client, Schema: schema, Logger: logger})
	if err != nil {
		return err
	}
	if err := drainer.Start(ctx); err != nil {
		return err
	}
	defer drainer.Stop(ctx)
	welcome := &Welcome{sent: map[string]int{}, done: make(chan struct{}, len(users))}
	reg := runner.NewRegistry()
	runner.Register(reg, "welcome", welcome, nil)
	ran := map[string]bool{} // job ids that succeeded
	var ranMu sync.Mutex
	r, err := runner.New(runner.Config{Redis: rdb, Registry: reg, Namespace: ns, Logger: logger, Concurrency: 2,
		OnEvent: func(_ context.Context, ev jobtype.Event) {
			if ev.Type == jobtype.EventSucceeded {
				ranMu.Lock()
				ran[ev.JobID] = true
				ranMu.Unlock()
			}
		}})
	if err != nil {
		return err
	}
	fmt.Println("\ndrainer and runner start:")
	if err := r.Start(ctx); err != nil {
		return err
	}
	for range len(users) - 1 {
		<-welcome.done
	}
	// Let the outbox and the queue settle, then stop the runner.
	deadline := time.Now().Add(5 * time.Second)
	for drainer.Pushed() < int64(len(users)-1) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.Stop(ctx); err != nil {
		return err
	}

	fmt.Println("\ncheck:")
	ok := true
	for _, u := range users {
		welcome.mu.Lock()
		n := welcome.sent[u]
		welcome.mu.Unlock()
		ranMu.Lock()
		jobRan := ran[staged[u]]
		ranMu.Unlock()
		want := 1
		if u == failing {
			want = 0
		}
		fmt.Printf("  %-8s emails sent: %d (want %d); job %s ran: %v\n", u, n, want, staged[u], jobRan)
		ok = ok && n == want && jobRan == (want == 1)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&rows); err != nil {
		return err
	}
	queues, err := client.Queues(ctx)
	if err != nil {
		return err
	}
	waiting := slices.IndexFunc(queues, func(q queue.QueueInfo) bool { return q.Size > 0 }) >= 0
	fmt.Printf("  outbox rows left: %d; jobs left in Redis queues: %v\n", rows, waiting)
	if !ok || rows != 0 || waiting {
		return errors.New("the check failed")
	}
	return nil
}

func cleanup(rdb redis.UniversalClient, ns string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, "{"+ns+"}:*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}
