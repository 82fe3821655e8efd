package metrics_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/metrics"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

type countTo struct{}

func (countTo) BuildEnumerator(_ context.Context, n int64, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(0, n, c), nil
}

func (countTo) EachIteration(context.Context, int64, int64) error { return nil }

// Wire a collector to a runner's events and read what one job left in it.
// In a real program, serve reg with promhttp.HandlerFor (or register m with
// prometheus.MustRegister and serve promhttp.Handler()).
func Example() {
	ctx := context.Background()
	mr := miniredis.NewMiniRedis()
	_ = mr.Start()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	client, _ := queue.NewClient(rdb, queue.Config{})

	m := metrics.New(client, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)

	done := make(chan struct{})
	registry := runner.NewRegistry()
	runner.RegisterIterable(registry, "count", countTo{}, nil)
	r, _ := runner.New(runner.Config{
		Redis: rdb, Registry: registry,
		OnEvent: func(ctx context.Context, ev jobtype.Event) {
			m.OnEvent(ctx, ev) // the whole wiring: cfg.OnEvent = m.OnEvent
			if ev.Type == jobtype.EventSucceeded {
				close(done)
			}
		},
	})
	_ = r.Start(ctx)
	_, _ = client.Enqueue(ctx, "count", 250, nil)
	_, _ = client.Enqueue(ctx, "count", 1, &queue.EnqueueOpts{Queue: "reports"})
	<-done
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = r.Stop(stopCtx)

	fams, _ := reg.Gather()
	for _, f := range fams {
		switch f.GetName() {
		case "iterjob_jobs_processed_total", "iterjob_iteration_items_total", "iterjob_queue_size":
			for _, s := range f.GetMetric() {
				var labels []string
				for _, l := range s.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				v := s.GetCounter().GetValue() + s.GetGauge().GetValue()
				fmt.Printf("%s{%s} %g\n", f.GetName(), strings.Join(labels, ","), v)
			}
		}
	}
	// Output:
	// iterjob_iteration_items_total{kind=count} 250
	// iterjob_jobs_processed_total{kind=count} 1
	// iterjob_queue_size{queue=default} 0
	// iterjob_queue_size{queue=reports} 1
}
