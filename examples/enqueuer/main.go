// Command enqueuer enqueues jobs for the worker example from a separate
// process, as a web app or a cron-less script would, and shows the
// periodic schedules.
//
//	go run ./examples/enqueuer reindex acme 5000   # enqueue a reindex of acme's 5,000 documents
//	go run ./examples/enqueuer periodic            # list schedules: next run, last tick
//	go run ./examples/enqueuer job <id>            # where a job is, its progress
//
// It uses REDIS_URL (default redis://127.0.0.1:6379) and ITERJOB_NAMESPACE
// (default iterjob), as the worker does.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/examples/jobs"
	"github.com/iterjob/iterjob/queue"
)

const usage = `usage:
  enqueuer reindex <tenant> <docs>   enqueue a reindex job
  enqueuer periodic                  list the periodic schedules
  enqueuer job <id>                  show a job`

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "enqueuer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	url := env("REDIS_URL", "redis://127.0.0.1:6379")
	opts, err := redis.ParseURL(url)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ns := env("ITERJOB_NAMESPACE", queue.NamespaceDefault)
	// The cursor store lets Job show an iterable job's progress.
	store, err := cursor.NewRedisStore(rdb, cursor.RedisConfig{Namespace: ns})
	if err != nil {
		return err
	}
	client, err := queue.NewClient(rdb, queue.Config{Namespace: ns, JobData: store})
	if err != nil {
		return err
	}

	switch {
	case args[0] == "reindex" && len(args) == 3:
		docs, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil || docs < 0 {
			return fmt.Errorf("docs must be a count: %q", args[2])
		}
		res, err := client.Enqueue(ctx, jobs.KindReindex, jobs.ReindexArgs{Tenant: args[1], Docs: docs}, nil)
		if err != nil {
			return err
		}
		fmt.Println("enqueued", res.Job.Kind, res.Job.ID)
	case args[0] == "periodic" && len(args) == 1:
		list, err := client.PeriodicJobs(ctx)
		if err != nil {
			return err
		}
		for _, p := range list {
			last := "never"
			if !p.LastTick.IsZero() {
				last = p.LastTick.UTC().Format(time.RFC3339) + " as " + p.LastJobID
			}
			fmt.Printf("%s  %q  kind=%s  next=%s  last=%s\n", p.Name, p.Spec, p.Kind,
				p.NextRun.UTC().Format(time.RFC3339), last)
		}
	case args[0] == "job" && len(args) == 2:
		info, err := client.Job(ctx, args[1])
		if err != nil {
			return err
		}
		fmt.Println("state", info.State)
		if info.Progress != nil {
			fmt.Println("items", info.Progress.ItemsProcessed)
		}
	default:
		return errors.New(usage)
	}
	return nil
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
