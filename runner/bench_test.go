package runner_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// work is an iterable job over Range(0, N) whose items spin for spin.
type work struct {
	spin time.Duration
	sink int64
}

func (w *work) BuildEnumerator(_ context.Context, a countArgs, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(0, int64(a.N), c), nil
}

func (w *work) EachIteration(_ context.Context, _ countArgs, i int64) error {
	if w.spin > 0 {
		for end := time.Now().Add(w.spin); time.Now().Before(end); {
			w.sink++
		}
	}
	w.sink += i
	return nil
}

// benchOverhead runs b.N items through the runner (one job, checkpoint
// interval at its default) and the same items through a plain loop over the
// same enumerator calling the same EachIteration, and reports both and
// their ratio. The runner's fixed cost per job (fetch, state claim, the
// saves at start and end, ack) is spread over b.N items.
func benchOverhead(b *testing.B, spin time.Duration) {
	ctx := context.Background()
	job := &work{spin: spin}

	// Plain loop, the baseline.
	t0 := time.Now()
	e := enumerators.Range(0, int64(b.N), nil)
	_ = e.Enumerate(ctx, func(i, _ int64) bool {
		_ = job.EachIteration(ctx, countArgs{}, i)
		return true
	})
	plain := time.Since(t0)

	r := testutil.Miniredis(b)
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, "work", job, nil)
	done := make(chan struct{})
	run, err := runner.New(runner.Config{
		Redis: r.Client, Registry: reg, Namespace: r.Namespace, Logger: quiet, Concurrency: 1,
		Store: cursor.NewMemoryStore(),
		OnEvent: func(_ context.Context, ev jobtype.Event) {
			if ev.Type == jobtype.EventSucceeded {
				close(done)
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	if err := run.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer run.Stop(ctx)
	b.ResetTimer()
	t0 = time.Now()
	if _, err := client.Enqueue(ctx, "work", countArgs{N: b.N}, nil); err != nil {
		b.Fatal(err)
	}
	<-done
	through := time.Since(t0)
	b.StopTimer()

	n := float64(b.N)
	b.ReportMetric(float64(plain.Nanoseconds())/n, "plain_ns/item")
	b.ReportMetric(float64(through.Nanoseconds())/n, "runner_ns/item")
	b.ReportMetric(float64(through-plain)/n, "overhead_ns/item")
	b.ReportMetric(float64(through)/float64(plain), "x_plain")
}

// BenchmarkPerItemOverhead measures what the runner adds to each item of an
// iterable job whose items do nothing: target under 50 ns.
//
//	go test ./runner -run '^$' -bench PerItem -benchtime 10000000x
func BenchmarkPerItemOverhead(b *testing.B) { benchOverhead(b, 0) }

// BenchmarkOneMicrosecondItems compares items of 1 µs of work through the
// runner and a plain loop: target within 5%.
//
//	go test ./runner -run '^$' -bench OneMicro -benchtime 2000000x
func BenchmarkOneMicrosecondItems(b *testing.B) { benchOverhead(b, time.Microsecond) }

// napper is an iterable job over Range(0, N) whose items each take item.
type napper struct{ item time.Duration }

func (n napper) BuildEnumerator(_ context.Context, a countArgs, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(0, int64(a.N), c), nil
}

func (n napper) EachIteration(context.Context, countArgs, int64) error {
	time.Sleep(n.item)
	return nil
}

// BenchmarkStopLatency measures the design's stop latency: from Stop (what
// SIGTERM calls) until the running iterable job's checkpoint is written and
// the job is back in its queue, both in Redis (the interrupted event fires
// once they are). Items take 2 ms. Every iteration starts a runner, which
// resumes the one job, lets it work for 20 ms, and stops it. It reports the
// median and worst latency and what the worst adds to one item: the target
// is at most one item plus 10 ms. Real Redis when reachable.
//
//	go test ./runner -run '^$' -bench StopLatency -benchtime 50x
func BenchmarkStopLatency(b *testing.B) {
	const item = 2 * time.Millisecond
	r := testutil.RealRedis(b)
	ctx := context.Background()
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, "nap", napper{item: item}, nil)
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := client.Enqueue(ctx, "nap", countArgs{N: 1 << 30}, nil); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	for b.Loop() {
		running := make(chan struct{}, 1)
		interrupted := make(chan struct{}, 1)
		run, err := runner.New(runner.Config{
			Redis: r.Client, Registry: reg, Namespace: r.Namespace, Logger: quiet, Concurrency: 1,
			OnEvent: func(_ context.Context, ev jobtype.Event) {
				switch ev.Type {
				case jobtype.EventStarted, jobtype.EventResumed:
					running <- struct{}{}
				case jobtype.EventInterrupted:
					interrupted <- struct{}{}
				}
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := run.Start(ctx); err != nil {
			b.Fatal(err)
		}
		<-running
		time.Sleep(20 * time.Millisecond)
		t0 := time.Now()
		stopped := make(chan error, 1)
		go func() { stopped <- run.Stop(ctx) }()
		<-interrupted
		lat = append(lat, time.Since(t0))
		if err := <-stopped; err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(lat)
	worst := lat[len(lat)-1]
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
	b.ReportMetric(float64((worst-item).Microseconds())/1000, "max-over-item-ms")
}
