package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/redact"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// A runner process of the scale mode, started by startProcs as
//
//	throughput -child -ns NS -queues q0,q1,... -c 10 [-cluster host:port,...]
//
// with the Redis URL in $REDIS_URL (not on the command line, where its
// password would show). The protocol on its standard input and output:
//
//	child:  ready                          (connected, Runner built)
//	parent: go                             (start the Runner)
//	parent: end of file (or SIGTERM/SIGINT) (stop gracefully)
//	child:  done performed=N cpu=S          (S: its CPU seconds, user+sys,
//	                                         from go to the stop request;
//	                                         -1 where getrusage is missing)
const (
	readyLine = "ready"
	goLine    = "go"
)

// child runs one runner process; args are the arguments after -child.
func child(args []string) error {
	fs := flag.NewFlagSet("throughput -child", flag.ContinueOnError)
	ns := fs.String("ns", "", "namespace")
	queues := fs.String("queues", "", "queue names, comma-separated")
	conc := fs.Int("c", 10, "runner concurrency")
	addrs := fs.String("cluster", "", "cluster seed addresses; else $REDIS_URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ns == "" || *queues == "" {
		return errors.New("-ns and -queues are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	url := cmp.Or(os.Getenv("REDIS_URL"), "redis://127.0.0.1:6379/0")
	c, err := connect(url, splitList(*addrs), *conc)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := warm(ctx, c, *conc); err != nil {
		return fmt.Errorf("redis: %w", redact.Error(err, url))
	}
	var qs []queue.QueueWeight
	for _, q := range splitList(*queues) {
		qs = append(qs, queue.QueueWeight{Name: q, Weight: 1})
	}
	var performed atomic.Int64
	reg := runner.NewRegistry()
	runner.Register(reg, "noop", &counted{done: &performed}, nil)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := runner.New(runner.Config{Redis: c, Registry: reg, Namespace: *ns, Logger: logger, Concurrency: *conc, Queues: qs})
	if err != nil {
		return err
	}

	in := bufio.NewScanner(os.Stdin)
	fmt.Println(readyLine)
	if !in.Scan() || in.Text() != goLine {
		return nil // the parent gave up before the start
	}
	cpu0, cpuOK := selfCPU()
	if err := r.Start(ctx); err != nil {
		return err
	}
	// Stop at the end of standard input (the parent closed it, or died).
	go func() {
		for in.Scan() {
		}
		stop()
	}()
	<-ctx.Done()
	cpu1, _ := selfCPU()
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Stop(stopCtx); err != nil {
		return err
	}
	cpu := -1.0
	if cpuOK {
		cpu = (cpu1 - cpu0).Seconds()
	}
	fmt.Printf("done performed=%d cpu=%.3f\n", performed.Load(), cpu)
	return nil
}

// connect returns a client of the cluster at addrs, or of the Redis at url
// when addrs is empty, with a pool for one runner of concurrency conc.
func connect(url string, addrs []string, conc int) (redis.UniversalClient, error) {
	if len(addrs) > 0 {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: 4 * conc}), nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis URL %s: %w", redact.URL(url), redact.Error(err, url))
	}
	opts.PoolSize = 4 * conc
	if os.Getenv("RESP") == "2" {
		opts.Protocol = 2
	}
	return redis.NewClient(opts), nil
}

// warm opens conns connections to each server (each primary of a cluster),
// so that dialing is not timed.
func warm(ctx context.Context, c redis.UniversalClient, conns int) error {
	pings := func(ctx context.Context, n redis.Cmdable) error {
		var wg sync.WaitGroup
		errs := make([]error, conns)
		for i := range conns {
			wg.Go(func() { errs[i] = n.Ping(ctx).Err() })
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return pings(ctx, n) })
	}
	return pings(ctx, c)
}

type counted struct{ done *atomic.Int64 }

func (c *counted) Perform(context.Context, struct{}) error {
	c.done.Add(1)
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
