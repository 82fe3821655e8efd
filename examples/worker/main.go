// Command worker is a long-running iterjob worker process, the shape to
// deploy: it runs jobs until SIGTERM, quiets on SIGTSTP, and enqueues a
// periodic report, once per tick however many workers run.
//
//	REDIS_URL=redis://127.0.0.1:6379 go run ./examples/worker
//
// and, from another shell, enqueue with the separate enqueuer program:
//
//	go run ./examples/enqueuer reindex acme 5000
//
// Environment (all optional):
//
//	REDIS_URL          Redis to use (default redis://127.0.0.1:6379)
//	ITERJOB_NAMESPACE  key namespace (default iterjob)
//	CONCURRENCY        jobs run at once (default 10)
//	SHUTDOWN_TIMEOUT   how long SIGTERM waits for plain jobs (default 25s)
//	REPORT_SPEC        when the periodic report runs (default "@every 1m")
//	ITEM_DELAY         simulated work per reindexed document (default 1ms)
//
// Signals: SIGTSTP stops fetching and interrupts iterable jobs at their next
// item (they resume on another worker); SIGTERM or SIGINT does the same and
// exits once plain jobs finished or SHUTDOWN_TIMEOUT passed; a second one
// exits at once, iterable jobs resuming from their last checkpoint.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/examples/jobs"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// Reindex indexes a tenant's documents, one per item; its cursor is the
// next document id. The "index" is a Redis hash counting each document, so
// a run can be checked for documents skipped or indexed twice.
type Reindex struct {
	rdb   redis.UniversalClient
	ns    string
	delay time.Duration
	log   *slog.Logger
}

// BuildEnumerator resumes at the saved cursor (nil on the first run).
func (j *Reindex) BuildEnumerator(_ context.Context, a jobs.ReindexArgs, next *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(1, a.Docs+1, next), nil
}

// EachIteration indexes one document.
func (j *Reindex) EachIteration(ctx context.Context, a jobs.ReindexArgs, doc int64) error {
	time.Sleep(j.delay)
	return j.rdb.HIncrBy(ctx, j.ns+":index:"+a.Tenant, strconv.FormatInt(doc, 10), 1).Err()
}

// OnStop logs how each run ended (interrupted by a deploy, completed...).
func (j *Reindex) OnStop(ctx context.Context, a jobs.ReindexArgs, reason iterable.StopReason) error {
	info, _ := iterable.InfoFromContext(ctx)
	j.log.InfoContext(ctx, "reindex run ended", slog.String("tenant", a.Tenant),
		slog.String("job_id", info.JobID), slog.String("reason", string(reason)))
	return nil
}

// Report is the periodic job. Its id names its tick
// ("periodic:report:<unix seconds>"); it records that it ran.
type Report struct {
	rdb redis.UniversalClient
	ns  string
	log *slog.Logger
}

// Perform runs one report.
func (j *Report) Perform(ctx context.Context, a jobs.ReportArgs) error {
	info, _ := iterable.InfoFromContext(ctx)
	j.log.InfoContext(ctx, "report", slog.String("job_id", info.JobID), slog.String("period", a.Period))
	return j.rdb.HIncrBy(ctx, j.ns+":reports", info.JobID, 1).Err()
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("worker failed", slog.Any("error", err))
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	url := env("REDIS_URL", "redis://127.0.0.1:6379")
	opts, err := redis.ParseURL(url)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ns := env("ITERJOB_NAMESPACE", queue.NamespaceDefault)
	concurrency, err := strconv.Atoi(env("CONCURRENCY", "10"))
	if err != nil {
		return fmt.Errorf("CONCURRENCY: %w", err)
	}
	timeout, err := time.ParseDuration(env("SHUTDOWN_TIMEOUT", "25s"))
	if err != nil {
		return fmt.Errorf("SHUTDOWN_TIMEOUT: %w", err)
	}
	delay, err := time.ParseDuration(env("ITEM_DELAY", "1ms"))
	if err != nil {
		return fmt.Errorf("ITEM_DELAY: %w", err)
	}

	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, jobs.KindReindex, &Reindex{rdb: rdb, ns: ns, delay: delay, log: log}, nil)
	runner.Register(reg, jobs.KindReport, &Report{rdb: rdb, ns: ns, log: log}, nil)

	r, err := runner.New(runner.Config{
		Redis: rdb, Registry: reg, Namespace: ns, Logger: log,
		Concurrency: concurrency, ShutdownTimeout: timeout,
		CheckpointInterval: time.Second,
		Periodic: []queue.PeriodicJob{{
			Name: "report", Spec: env("REPORT_SPEC", "@every 1m"),
			Kind: jobs.KindReport, Args: jobs.ReportArgs{Period: "last minute"},
		}},
	})
	if err != nil {
		return err
	}
	log.Info("worker starting", slog.String("process", r.ProcessID()), slog.String("namespace", ns), slog.Int("pid", os.Getpid()))
	// Run installs the signal handlers and returns once the worker has
	// stopped: SIGTERM, SIGINT (twice: at once) or SIGTSTP then SIGTERM.
	if err := r.Run(context.Background()); err != nil {
		return err
	}
	log.Info("worker stopped")
	return nil
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
