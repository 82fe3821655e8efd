package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/exampleutil"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/redact"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
)

// The scale mode (-cluster, -procs) runs the same work (n no-op jobs spread
// over several queues) with 1, 2, 4, ... runner processes on one Redis and,
// with -cluster, on a Redis Cluster. Each runner is an OS process of its own
// (this program re-executed with -child: see child.go).
//
// One measurement: the parent enqueues every job, starts the processes and
// waits until each has built its Runner and said "ready", then tells them
// "go" and times from there until the namespace's processed counter
// (queue.Client.Stats: acked jobs) reaches n. It polls that counter every
// pollInterval, which costs Redis a few commands per poll, not per job (the
// counter is kept by the ack script anyway), and it measures the time to the
// last ack, which counting Perform calls in the processes would not. Then it
// closes their standard input, they stop gracefully and report their job
// count and CPU.
//
// The cases alternate within each round, so that every case sees the same
// machine, and the summary takes medians over the rounds.

const pollInterval = 5 * time.Millisecond

type scaleCase struct {
	name  string
	addrs []string // nil: the one Redis
	procs int
}

// measure is one measurement.
type measure struct {
	rate     float64
	wall     time.Duration
	redisCPU map[string]float64 // server address → CPU seconds (user+sys) during the timed work
	// runnersCPU is the runner processes' CPU seconds (user+sys) from "go"
	// to the stop request; over their whole lives when whole is set
	// (no getrusage on this system).
	runnersCPU float64
	whole      bool
	split      string // queues per server, on a cluster
}

// redisCap, if positive, is the CPUs each Redis server may use while jobs
// run (-redis-cpu).
var redisCap float64

func scale(url string, addrs []string, procs []int, n, conc, nqueues, rounds int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var cases []scaleCase
	for _, p := range procs {
		cases = append(cases, scaleCase{"one Redis, " + processes(p), nil, p})
		if addrs != nil {
			cases = append(cases, scaleCase{"cluster, " + processes(p), addrs, p})
		}
	}
	target := "one Redis " + redact.URL(url)
	if addrs != nil {
		target += ", cluster " + strings.Join(addrs, ",")
	}
	fmt.Printf("iterjob scale: %d no-op jobs over %d queues, concurrency %d per runner process; %s; %d rounds%s\n",
		n, nqueues, conc, target, rounds, loadavg())
	if redisCap > 0 {
		fmt.Printf("each Redis server limited to %.2f CPU while the jobs run (cgroup)\n", redisCap)
	}
	results := make([][]measure, len(cases))
	for round := range rounds {
		for i, c := range cases {
			m, err := scaleRun(ctx, url, c, n, conc, nqueues)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			results[i] = append(results[i], m)
			var cpu []string
			for _, addr := range slices.Sorted(maps.Keys(m.redisCPU)) {
				cpu = append(cpu, fmt.Sprintf("%s %.2fs (%.0f%%)", addr, m.redisCPU[addr], 100*m.redisCPU[addr]/m.wall.Seconds()))
			}
			split := ""
			if m.split != "" {
				split = "; queues per shard " + m.split
			}
			fmt.Printf("round %d  %-22s %8.0f jobs/s  %6.2fs  Redis CPU: %s; runners' CPU %.2fs (%.2f cores)%s%s\n",
				round+1, c.name, m.rate, m.wall.Seconds(), strings.Join(cpu, ", "),
				m.runnersCPU, m.runnersCPU/m.wall.Seconds(), split, loadavg())
		}
	}
	summary(cases, results, n)
	return nil
}

func summary(cases []scaleCase, results [][]measure, n int) {
	per10k := func(sec float64) float64 { return sec / float64(n) * 10_000 }
	base := median(rates(results[0]))
	fmt.Printf("\nmedians over the rounds; ratio against %q measured in this run; CPU (user+sys) in seconds per 10,000 jobs,\n"+
		"with its share of the wall time in brackets (100%% = one core busy the whole time)\n", cases[0].name)
	fmt.Printf("  %-22s %-22s %6s  %-55s %s\n", "case", "jobs/s (range)", "ratio", "Redis CPU per server (port)", "runners' CPU")
	whole := false
	for i, c := range cases {
		ms := results[i]
		rs := rates(ms)
		m := median(rs)
		var servers []string
		for _, addr := range slices.Sorted(maps.Keys(ms[0].redisCPU)) {
			cpu := median(collect(ms, func(m measure) float64 { return m.redisCPU[addr] }))
			busy := median(collect(ms, func(m measure) float64 { return m.redisCPU[addr] / m.wall.Seconds() }))
			servers = append(servers, fmt.Sprintf("%s %.3f (%.0f%%)", addr[strings.LastIndex(addr, ":")+1:], per10k(cpu), 100*busy))
		}
		cpu := median(collect(ms, func(m measure) float64 { return m.runnersCPU }))
		cores := median(collect(ms, func(m measure) float64 { return m.runnersCPU / m.wall.Seconds() }))
		for _, m := range ms {
			whole = whole || m.whole
		}
		fmt.Printf("  %-22s %-22s %5.2fx  %-55s %.3f (%.2f cores)\n", c.name,
			fmt.Sprintf("%.0f (%.0f–%.0f)", m, slices.Min(rs), slices.Max(rs)), m/base,
			strings.Join(servers, " / "), per10k(cpu), cores)
	}
	if whole {
		fmt.Println("  (runners' CPU covers the processes' whole lives, start-up included: no getrusage here)")
	}
}

func processes(p int) string {
	if p == 1 {
		return "1 process"
	}
	return strconv.Itoa(p) + " processes"
}

func rates(ms []measure) []float64 { return collect(ms, func(m measure) float64 { return m.rate }) }

func collect(ms []measure, f func(measure) float64) []float64 {
	out := make([]float64, len(ms))
	for i, m := range ms {
		out[i] = f(m)
	}
	return out
}

// loadavg returns "; load average a b c" on systems with /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if err != nil || len(f) < 3 {
		return ""
	}
	return "; load average " + strings.Join(f[:3], " ")
}

// scaleRun runs one measurement in a namespace of its own.
func scaleRun(ctx context.Context, url string, sc scaleCase, n, conc, nqueues int) (measure, error) {
	var m measure
	c, err := connect(url, sc.addrs, 4)
	if err != nil {
		return m, err
	}
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		return m, fmt.Errorf("redis: %w", redact.Error(err, url))
	}
	ns := "bench-" + queue.NewID()[:8]
	defer testutil.DeleteNamespace(context.Background(), c, ns)
	queues, split, err := pickQueues(ctx, c, ns, nqueues)
	if err != nil {
		return m, err
	}
	m.split = split
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client, err := queue.NewClient(c, queue.Config{Namespace: ns, Logger: logger})
	if err != nil {
		return m, err
	}
	const batch = 1000
	params := make([]queue.Params, 0, batch)
	for left, i := n, 0; left > 0; i++ {
		params = params[:0]
		opts := &queue.EnqueueOpts{Queue: queues[i%len(queues)]}
		for range min(batch, left) {
			params = append(params, queue.Params{Kind: "noop", Args: struct{}{}, Opts: opts})
		}
		if _, err := client.EnqueueMany(ctx, params); err != nil {
			return m, err
		}
		left -= len(params)
	}

	ps, err := startProcs(url, sc.addrs, ns, queues, conc, sc.procs)
	if err != nil {
		return m, err
	}
	defer ps.stop()
	if redisCap > 0 {
		caps, err := capServers(ctx, c, redisCap)
		if err != nil {
			return m, err
		}
		defer caps.undo()
	}
	cpu0, err := serverCPU(ctx, c)
	if err != nil {
		return m, err
	}
	t0 := time.Now()
	if err := ps.start(); err != nil {
		return m, err
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		_, total, err := client.Stats(ctx, 0)
		if err != nil {
			return m, err
		}
		if total.Processed >= int64(n) {
			break
		}
		if err := ps.exited(); err != nil {
			return m, err
		}
		select {
		case <-ctx.Done():
			return m, ctx.Err()
		case <-tick.C:
		}
	}
	m.wall = time.Since(t0)
	m.rate = float64(n) / m.wall.Seconds()
	cpu1, err := serverCPU(ctx, c)
	if err != nil {
		return m, err
	}
	m.redisCPU = map[string]float64{}
	for addr, v := range cpu1 {
		m.redisCPU[addr] = v - cpu0[addr]
	}
	performed, err := ps.stop()
	if err != nil {
		return m, err
	}
	if performed < int64(n) {
		return m, fmt.Errorf("the runner processes performed %d jobs, want %d", performed, n)
	}
	m.runnersCPU, m.whole = ps.cpu, ps.whole
	return m, nil
}

// pickQueues names nqueues queues of namespace ns. On a cluster it picks
// names whose hash tags spread evenly over the primaries (a random
// namespace's q0..q5 would leave a shard without queues in about one run
// in four), and describes the split.
func pickQueues(ctx context.Context, c redis.UniversalClient, ns string, nqueues int) ([]string, string, error) {
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		var names []string
		for i := range nqueues {
			names = append(names, "q"+strconv.Itoa(i))
		}
		return names, "", nil
	}
	var primaries atomic.Int64
	if err := cc.ForEachMaster(ctx, func(context.Context, *redis.Client) error {
		primaries.Add(1)
		return nil
	}); err != nil {
		return nil, "", err
	}
	per := (nqueues + int(primaries.Load()) - 1) / int(primaries.Load())
	keys := rdb.NewKeys(ns)
	held := map[string]int{}
	var names []string
	for i := 0; len(names) < nqueues; i++ {
		if i == 10_000 {
			return nil, "", errors.New("could not spread the queues over the primaries")
		}
		q := "q" + strconv.Itoa(i)
		node, err := cc.MasterForKey(ctx, keys.Q(q).Jobs())
		if err != nil {
			return nil, "", err
		}
		if addr := node.Options().Addr; held[addr] < per {
			held[addr]++
			names = append(names, q)
		}
	}
	var split []string
	for _, addr := range slices.Sorted(maps.Keys(held)) {
		split = append(split, strconv.Itoa(held[addr]))
	}
	return names, strings.Join(split, "/"), nil
}

// runnerProcs are the runner processes of one measurement.
type runnerProcs struct {
	kids  []*exampleutil.Child
	ready []bool   // the first line was readyLine; set before StartChildWith returns
	done  []string // the "done ..." line; read after Exited
	once  sync.Once
	// Set by stop.
	performed int64
	cpu       float64
	whole     bool
	err       error
}

// startProcs starts count runner processes and returns once each is ready.
func startProcs(url string, addrs []string, ns string, queues []string, conc, count int) (*runnerProcs, error) {
	args := []string{"-ns", ns, "-queues", strings.Join(queues, ","), "-c", strconv.Itoa(conc)}
	if addrs != nil {
		args = append(args, "-cluster", strings.Join(addrs, ","))
	}
	env := append(os.Environ(), "REDIS_URL="+url) // not in args, where its password would show
	ps := &runnerProcs{ready: make([]bool, count), done: make([]string, count)}
	for i := range count {
		first := true
		k, err := exampleutil.StartChildWith(exampleutil.ChildConfig{
			Args:  args,
			Env:   env,
			Stdin: true,
			Line: func(s string) {
				switch {
				case first:
					ps.ready[i], first = s == readyLine, false
				case strings.HasPrefix(s, "done "):
					ps.done[i] = s
					return
				}
				if s != readyLine {
					fmt.Printf("  runner %d | %s\n", i+1, s)
				}
			},
		})
		if err != nil {
			_, _ = ps.stop()
			return nil, err
		}
		ps.kids = append(ps.kids, k)
		if !ps.ready[i] {
			_, _ = ps.stop()
			return nil, fmt.Errorf("runner process %d did not start", i+1)
		}
	}
	return ps, nil
}

// start tells every process to start its runner.
func (ps *runnerProcs) start() error {
	for i, k := range ps.kids {
		if _, err := fmt.Fprintln(k.Stdin, goLine); err != nil {
			return fmt.Errorf("runner process %d: %w", i+1, err)
		}
	}
	return nil
}

// exited returns an error if a process has exited.
func (ps *runnerProcs) exited() error {
	for i, k := range ps.kids {
		select {
		case <-k.Exited:
			return fmt.Errorf("runner process %d exited early (%s)", i+1, k.Cmd.ProcessState)
		default:
		}
	}
	return nil
}

// stop closes the processes' standard input, so that they stop gracefully,
// waits for them (killing one that has not exited after 30s) and returns
// the jobs they performed; it sums their CPU into ps.cpu. Calls after the
// first return the first's results.
func (ps *runnerProcs) stop() (int64, error) {
	ps.once.Do(func() {
		for _, k := range ps.kids {
			_ = k.Stdin.Close()
		}
		var errs []error
		for i, k := range ps.kids {
			select {
			case <-k.Exited:
			case <-time.After(30 * time.Second):
				_ = k.Cmd.Process.Kill()
				<-k.Exited
				errs = append(errs, fmt.Errorf("runner process %d did not stop within 30s; killed", i+1))
			}
			st := k.Cmd.ProcessState
			if !st.Success() {
				errs = append(errs, fmt.Errorf("runner process %d: %s", i+1, st))
				continue
			}
			var performed int64
			var cpu float64
			if _, err := fmt.Sscanf(ps.done[i], "done performed=%d cpu=%g", &performed, &cpu); err != nil {
				errs = append(errs, fmt.Errorf("runner process %d: report %q: %w", i+1, ps.done[i], err))
				continue
			}
			if cpu < 0 {
				cpu, ps.whole = (st.UserTime() + st.SystemTime()).Seconds(), true
			}
			ps.performed += performed
			ps.cpu += cpu
		}
		ps.err = errors.Join(errs...)
	})
	return ps.performed, ps.err
}

// serverCPU reads used_cpu_user + used_cpu_sys of each server (each primary
// of a cluster).
func serverCPU(ctx context.Context, c redis.UniversalClient) (map[string]float64, error) {
	out := map[string]float64{}
	err := exampleutil.EachServer(ctx, c, func(ctx context.Context, n *redis.Client) error {
		info, err := n.Info(ctx, "cpu").Result()
		if err != nil {
			return err
		}
		user, _ := strconv.ParseFloat(exampleutil.InfoValue(info, "used_cpu_user"), 64)
		sys, _ := strconv.ParseFloat(exampleutil.InfoValue(info, "used_cpu_sys"), 64)
		out[n.Options().Addr] = user + sys
		return nil
	})
	return out, err
}
