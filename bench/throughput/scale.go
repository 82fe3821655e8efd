package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/redact"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// scale is the -cluster mode: the same work (n no-op jobs spread over
// nqueues queues) on one Redis and on the cluster, then on one Redis with
// 1, 2 and 4 runners, alternating so every figure sees the same machine.
// Each runner is a Runner of its own (its own process id, fetch loops,
// heartbeats and connection pool) in this one OS process.
func scale(url string, addrs []string, n, conc, nqueues, rounds int) error {
	ctx := context.Background()
	opts, err := redis.ParseURL(url)
	if err != nil {
		return fmt.Errorf("redis URL %s: %w", redact.URL(url), redact.Error(err, url))
	}
	single := func() redis.UniversalClient {
		o := *opts
		o.PoolSize = 16 * conc
		return redis.NewClient(&o)
	}
	cluster := func() redis.UniversalClient {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: 16 * conc})
	}
	fmt.Printf("iterjob scale: %d no-op jobs over %d queues, concurrency %d per runner; one Redis %s, cluster %s\n",
		n, nqueues, conc, redact.URL(url), strings.Join(addrs, ","))
	type cfg struct {
		name    string
		client  func() redis.UniversalClient
		runners int
	}
	cases := []cfg{
		{"one Redis, 1 runner", single, 1},
		{"cluster, 1 runner", cluster, 1},
		{"one Redis, 2 runners", single, 2},
		{"one Redis, 4 runners", single, 4},
		{"cluster, 4 runners", cluster, 4},
	}
	rates := make([][]float64, len(cases))
	for round := range rounds {
		for i, c := range cases {
			rate, cpu, err := scaleRun(ctx, c.client(), n, conc, nqueues, c.runners)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			rates[i] = append(rates[i], rate)
			fmt.Printf("round %d  %-22s %8.0f jobs/s   Redis CPU by server: %s\n", round+1, c.name, rate, cpu)
		}
	}
	base := median(rates[0])
	fmt.Println("medians, and ratio to one Redis with 1 runner (measured in this run):")
	for i, c := range cases {
		m := median(rates[i])
		fmt.Printf("  %-22s %8.0f jobs/s  %.2fx\n", c.name, m, m/base)
	}
	return nil
}

// scaleRun runs one measurement; it returns jobs/s and each server's CPU
// seconds (user+sys) spent during processing.
func scaleRun(ctx context.Context, c redis.UniversalClient, n, conc, nqueues, nrunners int) (float64, string, error) {
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		return 0, "", err
	}
	ns := "bench-" + queue.NewID()[:8]
	defer testutil.DeleteNamespace(context.Background(), c, ns)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client, err := queue.NewClient(c, queue.Config{Namespace: ns, Logger: logger})
	if err != nil {
		return 0, "", err
	}
	var qs []queue.QueueWeight
	for i := range nqueues {
		qs = append(qs, queue.QueueWeight{Name: "q" + strconv.Itoa(i), Weight: 1})
	}
	const batch = 1000
	params := make([]queue.Params, 0, batch)
	for left, i := n, 0; left > 0; i++ {
		params = params[:0]
		opts := &queue.EnqueueOpts{Queue: qs[i%nqueues].Name}
		for range min(batch, left) {
			params = append(params, queue.Params{Kind: "noop", Args: struct{}{}, Opts: opts})
		}
		if _, err := client.EnqueueMany(ctx, params); err != nil {
			return 0, "", err
		}
		left -= len(params)
	}
	var done atomic.Int64
	job := &counted{done: &done}
	var runners []*runner.Runner
	for range nrunners {
		reg := runner.NewRegistry()
		runner.Register(reg, "noop", job, nil)
		r, err := runner.New(runner.Config{Redis: c, Registry: reg, Namespace: ns, Logger: logger, Concurrency: conc, Queues: qs})
		if err != nil {
			return 0, "", err
		}
		runners = append(runners, r)
	}
	cpu0, err := serverCPU(ctx, c)
	if err != nil {
		return 0, "", err
	}
	t0 := time.Now()
	for _, r := range runners {
		if err := r.Start(ctx); err != nil {
			return 0, "", err
		}
	}
	for done.Load() < int64(n) {
		time.Sleep(time.Millisecond)
	}
	work := time.Since(t0)
	cpu1, err := serverCPU(ctx, c)
	if err != nil {
		return 0, "", err
	}
	for _, r := range runners {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := r.Stop(stopCtx)
		cancel()
		if err != nil {
			return 0, "", err
		}
	}
	var parts []string
	for addr, v := range cpu1 {
		parts = append(parts, fmt.Sprintf("%s %.2fs", addr, v-cpu0[addr]))
	}
	sortStrings(parts)
	return float64(n) / work.Seconds(), strings.Join(parts, ", "), nil
}

type counted struct{ done *atomic.Int64 }

func (c *counted) Perform(context.Context, struct{}) error {
	c.done.Add(1)
	return nil
}

// serverCPU reads used_cpu_user + used_cpu_sys of each server (each primary
// of a cluster).
func serverCPU(ctx context.Context, c redis.UniversalClient) (map[string]float64, error) {
	out := map[string]float64{}
	read := func(ctx context.Context, n *redis.Client) error {
		info, err := n.Info(ctx, "cpu").Result()
		if err != nil {
			return err
		}
		var sum float64
		for line := range strings.Lines(info) {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
				f, _ := strconv.ParseFloat(v, 64)
				sum += f
			}
		}
		out[n.Options().Addr] = sum
		return nil
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		var mu = make(chan struct{}, 1)
		err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			mu <- struct{}{}
			defer func() { <-mu }()
			return read(ctx, n)
		})
		return out, err
	}
	return out, read(ctx, c.(*redis.Client))
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
