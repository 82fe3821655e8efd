// Command compare runs the same no-op workload through iterjob and asynq, in
// one run on the same Redis, and prints each one's throughput and the ratio.
// It is its own module so that iterjob itself does not depend on asynq.
//
//	cd bench/compare && go run . -n 100000
//
// Both use concurrency 10 and crash-safe fetch (asynq's is always on). The
// jobs are enqueued first (iterjob in batches, asynq one call per task, as
// its client offers), then one worker process runs them.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

func main() {
	n := flag.Int("n", 100_000, "jobs per system")
	conc := flag.Int("c", 10, "worker concurrency")
	addr := flag.String("addr", "127.0.0.1:6379", "Redis address")
	db := flag.Int("db", 14, "Redis database used by asynq (its asynq:* keys there are deleted after)")
	flag.Parse()
	ctx := context.Background()

	it, itEnq, err := runIterjob(ctx, *addr, *n, *conc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "iterjob:", err)
		os.Exit(1)
	}
	as, asEnq, err := runAsynq(ctx, *addr, *db, *n, *conc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "asynq:", err)
		os.Exit(1)
	}
	fmt.Printf("no-op jobs, concurrency %d, %d jobs each, Redis %s\n", *conc, *n, *addr)
	fmt.Printf("%-8s enqueue %9.0f jobs/s   process %9.0f jobs/s\n", "iterjob", itEnq, it)
	fmt.Printf("%-8s enqueue %9.0f jobs/s   process %9.0f jobs/s\n", "asynq", asEnq, as)
	fmt.Printf("iterjob/asynq: enqueue %.1fx, process %.1fx\n", itEnq/asEnq, it/as)
}

func runIterjob(ctx context.Context, addr string, n, conc int) (process, enqueue float64, err error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 4 * conc})
	defer rdb.Close()
	ns := "compare-" + queue.NewID()[:8]
	defer deleteKeys(ctx, rdb, "{"+ns+"}:*")
	logger := slog.New(slog.DiscardHandler)
	client, err := queue.NewClient(rdb, queue.Config{Namespace: ns, Logger: logger})
	if err != nil {
		return 0, 0, err
	}
	params := make([]queue.Params, 1000)
	for i := range params {
		params[i] = queue.Params{Kind: "noop", Args: struct{}{}}
	}
	t0 := time.Now()
	for left := n; left > 0; left -= len(params) {
		if _, err := client.EnqueueMany(ctx, params[:min(len(params), left)]); err != nil {
			return 0, 0, err
		}
	}
	enqueue = float64(n) / time.Since(t0).Seconds()

	var done atomic.Int64
	reg := runner.NewRegistry()
	runner.Register(reg, "noop", noop{&done}, nil)
	r, err := runner.New(runner.Config{Redis: rdb, Registry: reg, Namespace: ns, Logger: logger, Concurrency: conc})
	if err != nil {
		return 0, 0, err
	}
	t0 = time.Now()
	if err := r.Start(ctx); err != nil {
		return 0, 0, err
	}
	for done.Load() < int64(n) {
		time.Sleep(time.Millisecond)
	}
	for {
		v, _ := rdb.Get(ctx, "{"+ns+"}:stat:processed").Int64()
		if v >= int64(n) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	process = float64(n) / time.Since(t0).Seconds()
	return process, enqueue, r.Stop(ctx)
}

type noop struct{ done *atomic.Int64 }

func (j noop) Perform(context.Context, struct{}) error { j.done.Add(1); return nil }

func runAsynq(ctx context.Context, addr string, db, n, conc int) (process, enqueue float64, err error) {
	opt := asynq.RedisClientOpt{Addr: addr, DB: db}
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	defer rdb.Close()
	deleteKeys(ctx, rdb, "asynq:*")
	defer deleteKeys(ctx, rdb, "asynq:*")
	client := asynq.NewClient(opt)
	defer client.Close()
	t0 := time.Now()
	for range n {
		if _, err := client.EnqueueContext(ctx, asynq.NewTask("noop", nil), asynq.MaxRetry(25)); err != nil {
			return 0, 0, err
		}
	}
	enqueue = float64(n) / time.Since(t0).Seconds()

	var done atomic.Int64
	finished := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc("noop", func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(n) {
			close(finished)
		}
		return nil
	})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: conc, LogLevel: asynq.ErrorLevel})
	t0 = time.Now()
	if err := srv.Start(mux); err != nil {
		return 0, 0, err
	}
	<-finished
	process = float64(n) / time.Since(t0).Seconds()
	srv.Shutdown()
	return process, enqueue, nil
}

func deleteKeys(ctx context.Context, rdb *redis.Client, pattern string) {
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	for len(keys) > 0 {
		k := keys[:min(500, len(keys))]
		rdb.Del(ctx, k...)
		keys = keys[len(k):]
	}
}
