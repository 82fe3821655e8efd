// Command throughput measures the queue: it enqueues N no-op jobs in
// batches, then runs them through one runner at concurrency 10 with
// crash-safe fetch (always on), and prints enqueue time, jobs per second,
// Redis round trips per job and pickup latency on an idle worker.
//
//	go run ./bench/throughput                # Redis at REDIS_URL or 127.0.0.1:6379
//	go run ./bench/throughput -n 200000 -c 10
//	go run ./bench/throughput -procs 1,2,4   # scale mode: runner processes on one Redis
//	go run ./bench/throughput -cluster 127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002
//
// With -procs or -cluster it measures scaling out instead: 1, 2, 4 runner
// processes (each an OS process of its own) on one Redis and, with
// -cluster, on a Redis Cluster (see scale.go).
//
// Figures to compare against, measured on the project's 2-core machines with
// Redis on the same host, no-op jobs at concurrency 10: asynq ≈ 9,000/s,
// Sidekiq ≈ 10,500/s, River ≈ 3,500/s, gocraft/work ≈ 28,000/s.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/redact"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

var (
	profile    string
	fetchAhead int
	eventsMax  int64
)

type noop struct {
	done    atomic.Int64
	started chan time.Time // for the latency phase; nil otherwise
}

func (n *noop) Perform(context.Context, struct{}) error {
	if n.started != nil {
		n.started <- time.Now()
	}
	n.done.Add(1)
	return nil
}

// counter counts round trips to Redis (a pipeline is one).
type counter struct {
	n  atomic.Int64
	mu sync.Mutex
	by map[string][2]int
}

var debugRT = os.Getenv("DEBUG_RT") != ""

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		if debugRT {
			k := cmd.Name()
			if k == "evalsha" {
				k = fmt.Sprint(cmd.Args()[1])[:8]
			}
			c.mu.Lock()
			if c.by == nil {
				c.by = map[string][2]int{}
			}
			v := c.by[k]
			v[0]++
			v[1] += len(cmd.Args())
			c.by[k] = v
			c.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}
func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

func main() {
	// A runner process of the scale mode (see child.go); its flags are not
	// the user's, so they stay out of -h.
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		if err := child(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "throughput -child:", err)
			os.Exit(1)
		}
		return
	}
	n := flag.Int("n", 100_000, "jobs to run")
	conc := flag.Int("c", 10, "runner concurrency")
	batch := flag.Int("batch", 1000, "jobs per EnqueueMany call")
	latencyJobs := flag.Int("latency", 1000, "jobs for the pickup-latency phase (0 to skip)")
	ahead := flag.Int("ahead", 0, "runner FetchAhead (0 = the default, Concurrency)")
	events := flag.Bool("events", false, "also measure with lifecycle events on: runs off and on alternately (-rounds times) and prints the ratio")
	evMax := flag.Int64("events-max", 0, "events the stream keeps (0 = queue.EventsMaxDefault)")
	rounds := flag.Int("rounds", 3, "with -events: rounds of off and on; in scale mode: rounds of all cases")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the processing phase to this file")
	// The default is not given to flag, which would print it (password
	// and all) in -h.
	url := flag.String("redis", "", "Redis URL (default: $REDIS_URL, else redis://127.0.0.1:6379/0)")
	clusterAddrs := flag.String("cluster", "", "scale mode: a Redis Cluster's seed addresses (host:port,...; .ci/cluster-up starts 127.0.0.1:7000-7002); measures runner processes on one Redis and on the cluster")
	procsList := flag.String("procs", "", "scale mode: numbers of runner processes to compare, e.g. 1,2,4 (the default with -cluster); without -cluster, on one Redis only")
	nqueues := flag.Int("queues", 6, "scale mode: queues the jobs are spread over")
	flag.Float64Var(&redisCap, "redis-cpu", 0, "scale mode: limit each Redis server (each primary) to this many CPUs while jobs run, with a Linux cgroup (needs root and local servers), so that Redis, not this machine's runners, is the limit, as when each shard is a host of its own")
	flag.Parse()
	*url = cmp.Or(*url, os.Getenv("REDIS_URL"), "redis://127.0.0.1:6379/0")
	if *clusterAddrs != "" || *procsList != "" {
		var addrs []string
		if *clusterAddrs != "" {
			addrs = strings.Split(*clusterAddrs, ",")
		}
		var procs []int
		for _, f := range strings.Split(cmp.Or(*procsList, "1,2,4"), ",") {
			p, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || p < 1 {
				fmt.Fprintf(os.Stderr, "throughput: -procs %q: want positive numbers separated by commas\n", *procsList)
				os.Exit(2)
			}
			procs = append(procs, p)
		}
		if err := scale(*url, addrs, procs, *n, *conc, *nqueues, *rounds); err != nil {
			fmt.Fprintln(os.Stderr, "throughput:", err)
			os.Exit(1)
		}
		return
	}
	profile, fetchAhead, eventsMax = *cpuprofile, *ahead, *evMax
	if !*events {
		if _, err := run(*url, *n, *conc, *batch, *latencyJobs, false); err != nil {
			fmt.Fprintln(os.Stderr, "throughput:", err)
			os.Exit(1)
		}
		return
	}
	// Events off and on, alternately, so both see the same machine.
	var off, on []float64
	for range *rounds {
		for _, ev := range []bool{false, true} {
			rate, err := run(*url, *n, *conc, *batch, 0, ev)
			if err != nil {
				fmt.Fprintln(os.Stderr, "throughput:", err)
				os.Exit(1)
			}
			if ev {
				on = append(on, rate)
			} else {
				off = append(off, rate)
			}
		}
	}
	mOff, mOn := median(off), median(on)
	fmt.Printf("\nevents off: median %.0f jobs/s; events on: median %.0f jobs/s; on/off %.2f (events cost %.0f %%; target: at most 25 %%)\n",
		mOff, mOn, mOn/mOff, 100*(1-mOn/mOff))
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// run measures enqueue and processing of n no-op jobs in a namespace of its
// own, and returns the processing rate (jobs/s).
func run(url string, n, conc, batch, latencyJobs int, events bool) (float64, error) {
	ctx := context.Background()
	opts, err := redis.ParseURL(url)
	if err != nil {
		return 0, fmt.Errorf("redis URL %s: %w", redact.URL(url), redact.Error(err, url))
	}
	opts.PoolSize = 4 * conc
	if os.Getenv("RESP") == "2" {
		opts.Protocol = 2
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return 0, fmt.Errorf("redis at %s: %w (start one: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no)", redact.URL(url), redact.Error(err, url))
	}
	rt := &counter{}
	rdb.AddHook(rt)
	ns := "bench-" + queue.NewID()[:8]
	defer deleteNamespace(rdb, ns)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	client, err := queue.NewClient(rdb, queue.Config{Namespace: ns, Logger: logger, PublishEvents: events, EventsMax: eventsMax})
	if err != nil {
		return 0, err
	}
	fmt.Printf("iterjob throughput: %d no-op jobs, concurrency %d, Redis %s, events %v\n", n, conc, redact.URL(url), events)

	params := make([]queue.Params, batch)
	for i := range params {
		params[i] = queue.Params{Kind: "noop", Args: struct{}{}}
	}
	rt.n.Store(0)
	t0 := time.Now()
	for left := n; left > 0; left -= batch {
		if _, err := client.EnqueueMany(ctx, params[:min(batch, left)]); err != nil {
			return 0, err
		}
	}
	enq := time.Since(t0)
	fmt.Printf("enqueue:  %8.0f jobs/s  (%s for %d jobs in batches of %d, %.4f round trips/job)\n",
		float64(n)/enq.Seconds(), enq.Round(time.Millisecond), n, batch, float64(rt.n.Load())/float64(n))

	job := &noop{}
	reg := runner.NewRegistry()
	runner.Register(reg, "noop", job, nil)
	r, err := runner.New(runner.Config{Redis: rdb, Registry: reg, Namespace: ns, Logger: logger, Concurrency: conc, FetchAhead: fetchAhead, PublishEvents: events, EventsMax: eventsMax})
	if err != nil {
		return 0, err
	}
	processed := func() int64 {
		v, _ := rdb.HGet(ctx, "{"+ns+"/default}:stats", "processed").Int64() // see internal/rdb/keys.go
		return v
	}
	rt.n.Store(0)
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, err
		}
	}
	t0 = time.Now()
	if err := r.Start(ctx); err != nil {
		return 0, err
	}
	for job.done.Load() < int64(n) {
		time.Sleep(time.Millisecond)
	}
	for processed() < int64(n) {
		time.Sleep(time.Millisecond)
	}
	work := time.Since(t0)
	if profile != "" {
		pprof.StopCPUProfile()
	}
	trips := rt.n.Load()
	if debugRT {
		for k, v := range rt.by {
			fmt.Printf("  %s: %d calls, %.1f args/call\n", k, v[0], float64(v[1])/float64(v[0]))
		}
	}
	fmt.Printf("process:  %8.0f jobs/s  (%s for %d jobs, fetch+ack+heartbeat: %.4f round trips/job)\n",
		float64(n)/work.Seconds(), work.Round(time.Millisecond), n, float64(trips)/float64(n))

	if latencyJobs > 0 {
		if err := latency(ctx, client, r, job, latencyJobs); err != nil {
			return 0, err
		}
	}
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return float64(n) / work.Seconds(), r.Stop(stopCtx)
}

// latency enqueues jobs one at a time on an idle runner and measures
// enqueue → Perform start.
func latency(ctx context.Context, client *queue.Client, r *runner.Runner, job *noop, count int) error {
	_ = r
	ch := make(chan time.Time, 1)
	job.started = ch
	lat := make([]time.Duration, 0, count)
	for range count {
		time.Sleep(2 * time.Millisecond) // let the worker go idle: it must be woken by the enqueue
		t0 := time.Now()
		if _, err := client.Enqueue(ctx, "noop", struct{}{}, nil); err != nil {
			return err
		}
		select {
		case at := <-ch:
			lat = append(lat, at.Sub(t0))
		case <-time.After(10 * time.Second):
			return fmt.Errorf("a job was not picked up within 10s")
		}
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	fmt.Printf("pickup latency on an idle worker over %d jobs: p50 %s  p99 %s  max %s\n",
		count, p(0.50).Round(time.Microsecond), p(0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	return nil
}

func deleteNamespace(rdb *redis.Client, ns string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, "{"+ns+"[}/]*", 1000).Iterator()
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
