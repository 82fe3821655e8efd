// Command worker is the worker process of the crash tests in package
// crashtest: a runner with two job kinds whose every effect is recorded in
// Redis, so a test can stop or kill it at any instant and then count what
// was done.
//
// Kinds:
//
//   - "items" (iterable): enumerates enumerators.Range(0, n) and records each
//     item with HINCRBY <records>items:<jid> <item> 1, after sleeping
//     -item-sleep. With crash_at set, item crash_at kills the process (a job
//     that crashes its worker every time: a poison pill). With
//     -retry-records, a record that fails (Redis is down) is tried again for
//     up to a minute instead of failing the item.
//   - "plain": records its start (HINCRBY <records>starts <jid> 1 and
//     RPUSH <records>start-log:<jid> "<pid> <unix ms>"), sleeps
//     sleep_ms from its arguments, then records its completion (HINCRBY
//     <records>completions <jid> 1).
//
// <records> is the -records prefix, by default "{ns}:crashtest:" (the
// namespace's global hash-tag group).
//
// It runs runner.Run, so real signals drive it (SIGTSTP quiet, SIGTERM stop,
// a second SIGTERM hard stop), and exits 0 after a graceful stop, 1 on error.
// It logs JSON records to stderr.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/redact"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// ItemsArgs are the arguments of the "items" kind.
type ItemsArgs struct {
	N       int64  `json:"n"`
	CrashAt *int64 `json:"crash_at,omitempty"`
}

// PlainArgs are the arguments of the "plain" kind.
type PlainArgs struct {
	SleepMS int `json:"sleep_ms"`
}

// keys builds the keys the jobs record their effects in. They live under the
// runner's namespace (by default in its global hash-tag group) so that a
// test's namespace cleanup removes them.
type keys struct{ p string }

func (k keys) items(jid string) string    { return k.p + "items:" + jid }
func (k keys) starts() string             { return k.p + "starts" }
func (k keys) startLog(jid string) string { return k.p + "start-log:" + jid }
func (k keys) completions() string        { return k.p + "completions" }

// items is the iterable job.
type items struct {
	rdb   redis.UniversalClient
	k     keys
	sleep time.Duration
	retry bool
}

func (j *items) BuildEnumerator(_ context.Context, a ItemsArgs, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(0, a.N, c), nil
}

func (j *items) EachIteration(ctx context.Context, a ItemsArgs, item int64) error {
	if a.CrashAt != nil && item == *a.CrashAt {
		p, err := os.FindProcess(os.Getpid())
		if err == nil {
			err = p.Kill()
		}
		return fmt.Errorf("worker: could not kill itself at item %d: %v", item, err)
	}
	if j.sleep > 0 {
		time.Sleep(j.sleep)
	}
	info, _ := iterable.InfoFromContext(ctx)
	deadline := time.Now().Add(time.Minute)
	for {
		err := j.rdb.HIncrBy(ctx, j.k.items(info.JobID), strconv.FormatInt(item, 10), 1).Err()
		if err == nil || !j.retry || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// plain is the plain job.
type plain struct {
	rdb redis.UniversalClient
	k   keys
}

func (j *plain) Perform(ctx context.Context, a PlainArgs) error {
	info, _ := iterable.InfoFromContext(ctx)
	pipe := j.rdb.TxPipeline()
	pipe.HIncrBy(ctx, j.k.starts(), info.JobID, 1)
	pipe.RPush(ctx, j.k.startLog(info.JobID), fmt.Sprintf("%d %d", os.Getpid(), time.Now().UnixMilli()))
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	if a.SleepMS > 0 {
		t := time.NewTimer(time.Duration(a.SleepMS) * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
	}
	return j.rdb.HIncrBy(ctx, j.k.completions(), info.JobID, 1).Err()
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		url        = flag.String("redis", "", "Redis URL (default: $REDIS_URL, which keeps a password out of the process list, else redis://127.0.0.1:6379/0)")
		ns         = flag.String("ns", "", "namespace (required)")
		procID     = flag.String("process-id", "", "process id in Redis, also the Redis client name (default: the runner's)")
		conc       = flag.Int("concurrency", 10, "jobs run at once")
		checkpoint = flag.Duration("checkpoint", 100*time.Millisecond, "checkpoint interval")
		heartbeat  = flag.Duration("heartbeat", 200*time.Millisecond, "heartbeat interval (0: the library's default)")
		deadAfter  = flag.Duration("dead-after", time.Second, "a process silent this long is presumed dead (0: the library's default)")
		stopTO     = flag.Duration("shutdown-timeout", 10*time.Second, "shutdown timeout before a hard stop")
		itemSleep  = flag.Duration("item-sleep", 0, "work time of each item of the iterable job")
		maxRecov   = flag.Int("max-recoveries", 0, "recoveries from dead processes before a job is a poison pill (0: the default)")
		retryRec   = flag.Bool("retry-records", false, "retry an item's record while Redis is down instead of failing the item")
		backoff    = flag.Duration("backoff", 100*time.Millisecond, "wait before retrying a failed job")
		level      = flag.String("log-level", "info", "debug, info, warn or error")
		records    = flag.String("records", "", `prefix of the keys the jobs record into (default "{<ns>}:crashtest:")`)
		queues     = flag.String("queues", "", `queues to work, as "a:1,b:2" (default: the default queue)`)
		reload     = flag.Duration("cluster-reload", 0, "a Redis Cluster client's ClusterStateReloadInterval (0: go-redis's default)")
		hold       = flag.Bool("hold", false, "connect to Redis, then wait for SIGUSR1 before starting the runner")
	)
	flag.Parse()
	if *ns == "" {
		return fmt.Errorf("-ns is required")
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))

	*url = cmp.Or(*url, os.Getenv("REDIS_URL"), "redis://127.0.0.1:6379/0")
	var rdb redis.UniversalClient
	if addrs, ok := strings.CutPrefix(*url, "cluster:"); ok {
		// A Redis Cluster: "cluster:host:port,host:port".
		rdb = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: strings.Split(addrs, ","), ClientName: *procID, DialTimeout: time.Second,
			ClusterStateReloadInterval: *reload,
		})
	} else {
		opts, err := redis.ParseURL(*url)
		if err != nil {
			return fmt.Errorf("redis URL %s: %w", redact.URL(*url), redact.Error(err, *url))
		}
		if *procID != "" {
			opts.ClientName = *procID
		}
		// Fail fast while Redis is down, so the runner's own retries are what
		// the Redis tests exercise.
		opts.DialTimeout = time.Second
		rdb = redis.NewClient(opts)
	}
	defer rdb.Close()

	k := keys{p: cmp.Or(*records, "{"+*ns+"}:crashtest:")}
	var qs []queue.QueueWeight
	if *queues != "" {
		var err error
		if qs, err = queue.ParseQueues(*queues); err != nil {
			return fmt.Errorf("-queues: %w", err)
		}
	}
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, "items", &items{rdb: rdb, k: k, sleep: *itemSleep, retry: *retryRec}, nil)
	runner.Register(reg, "plain", &plain{rdb: rdb, k: k}, nil)

	b := *backoff
	r, err := runner.New(runner.Config{
		Redis: rdb, Registry: reg, Namespace: *ns, Logger: log, ProcessID: *procID,
		Concurrency: *conc, Queues: qs, CheckpointInterval: *checkpoint,
		HeartbeatInterval: *heartbeat, DeadAfter: *deadAfter, MaxRecoveries: *maxRecov,
		ShutdownTimeout: *stopTO, Backoff: func(int) time.Duration { return b },
		PollInterval: 100 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	if *hold {
		// Connected (a cluster client has its slot map and the commands'
		// routing), the runner starts at once when told.
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		if err := rdb.Exists(context.Background(), k.starts()).Err(); err != nil {
			return fmt.Errorf("first round trip: %w", err)
		}
		log.Info("worker: holding until SIGUSR1")
		<-usr1
		signal.Stop(usr1)
	}
	log.Info("worker: starting", slog.Int("pid", os.Getpid()), slog.String("process", r.ProcessID()))
	if err := r.Run(context.Background()); err != nil {
		return err
	}
	log.Info("worker: exiting after a graceful stop")
	return nil
}
