// Command dashboard starts iterjob's web dashboard with a few iterable jobs
// iterating, so there is something to watch: progress bars on the busy page,
// jobs waiting in queues, a scheduled job, a retrying one and a dead one.
//
//	go run ./examples/dashboard          # then open the URL it prints
//
// It uses the Redis at REDIS_URL, or an embedded one when REDIS_URL is
// unset. -addr sets where it listens (default 127.0.0.1:8081). The
// dashboard is mounted under /jobs/, as an application would mount it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/exampleutil"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
	"github.com/iterjob/iterjob/shutdown"
	"github.com/iterjob/iterjob/web"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "address to listen on")
	flag.Parse()
	if err := run(context.Background(), *addr, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

// SweepArgs are the demo job's arguments.
type SweepArgs struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
	Fail  bool   `json:"fail,omitempty"`
}

// Sweep walks Rows rows of a table, a few milliseconds each.
type Sweep struct{ Item time.Duration }

// BuildEnumerator resumes at the next row.
func (s Sweep) BuildEnumerator(_ context.Context, a SweepArgs, next *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(0, a.Rows, next), nil
}

// EachIteration "processes" one row.
func (s Sweep) EachIteration(ctx context.Context, a SweepArgs, row int64) error {
	if a.Fail && row == a.Rows/3 {
		return fmt.Errorf("row %d of %s: constraint violation on column email", row, a.Table)
	}
	select {
	case <-time.After(s.Item):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// demo is the dashboard with its worker.
type demo struct {
	client  *queue.Client
	run     *runner.Runner
	handler http.Handler
}

// newDemo starts a runner for "sweep" jobs (each row taking item), enqueues
// a few jobs and returns the app's mux with the dashboard under /jobs/.
func newDemo(ctx context.Context, rdb redis.UniversalClient, ns string, sd *shutdown.Controller, log *slog.Logger, item time.Duration, dash web.Options) (*demo, error) {
	store, err := cursor.NewRedisStore(rdb, cursor.RedisConfig{Namespace: ns})
	if err != nil {
		return nil, err
	}
	client, err := queue.NewClient(rdb, queue.Config{Namespace: ns, Logger: log, PublishEvents: true, JobData: store})
	if err != nil {
		return nil, err
	}
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, "sweep", Sweep{Item: item}, nil)
	run, err := runner.New(runner.Config{
		Redis: rdb, Registry: reg, Namespace: ns, Logger: log, Shutdown: sd, Store: store,
		Concurrency: 3, PublishEvents: true, CheckpointInterval: 300 * time.Millisecond,
		Queues: []queue.QueueWeight{{Name: "default", Weight: 2}, {Name: "reports", Weight: 1}},
	})
	if err != nil {
		return nil, err
	}
	jobs := []queue.Params{
		{Kind: "sweep", Args: SweepArgs{Table: "accounts", Rows: 4000}},
		{Kind: "sweep", Args: SweepArgs{Table: "invoices", Rows: 2500}},
		{Kind: "sweep", Args: SweepArgs{Table: "events", Rows: 6000}},
		{Kind: "sweep", Args: SweepArgs{Table: "audit_log", Rows: 3000}, Opts: &queue.EnqueueOpts{Queue: "reports"}},
		{Kind: "sweep", Args: SweepArgs{Table: "sessions", Rows: 1000}, Opts: &queue.EnqueueOpts{In: time.Hour}},
		{Kind: "sweep", Args: SweepArgs{Table: "users", Rows: 300, Fail: true}, Opts: &queue.EnqueueOpts{MaxAttempts: 1}},
		{Kind: "sweep", Args: SweepArgs{Table: "orders", Rows: 300, Fail: true}, Opts: &queue.EnqueueOpts{MaxAttempts: 3}},
	}
	if _, err := client.EnqueueMany(ctx, jobs); err != nil {
		return nil, err
	}
	if err := run.Start(ctx); err != nil {
		return nil, err
	}
	dh, err := web.New(client, dash)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/jobs/", http.StripPrefix("/jobs", dh))
	mux.Handle("/{$}", http.RedirectHandler("/jobs/", http.StatusFound))
	return &demo{client: client, run: run, handler: mux}, nil
}

func run(ctx context.Context, addr string, out io.Writer) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rdb, where, closeRedis, err := exampleutil.Connect(ctx)
	if err != nil {
		return err
	}
	defer closeRedis()
	sd, err := shutdown.New(shutdown.Config{Logger: log})
	if err != nil {
		return err
	}
	stop := sd.HandleSignals(ctx)
	defer stop()
	d, err := newDemo(ctx, rdb, "dashboard-example", sd, log, 3*time.Millisecond, web.Options{})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = d.run.Stop(ctx)
		return err
	}
	fmt.Fprintf(out, "dashboard: using %s\ndashboard: open http://%s/jobs/\n", where, ln.Addr())
	return exampleutil.Serve(ln, d.handler, sd, d.run)
}
