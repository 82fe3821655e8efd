package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/metrics"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// recorder keeps the events a runner delivered, after the collector saw them.
type recorder struct {
	mu     sync.Mutex
	all    []jobtype.Event
	change chan struct{}
}

func (rec *recorder) add(ev jobtype.Event) {
	rec.mu.Lock()
	rec.all = append(rec.all, ev)
	rec.mu.Unlock()
	select {
	case rec.change <- struct{}{}:
	default:
	}
}

func (rec *recorder) count(typ jobtype.EventType) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	n := 0
	for _, ev := range rec.all {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// wait waits until n events of type typ were seen.
func (rec *recorder) wait(t *testing.T, typ jobtype.EventType, n int) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for rec.count(typ) < n {
		select {
		case <-rec.change:
		case <-timeout:
			t.Fatalf("saw %d %s events, want %d", rec.count(typ), typ, n)
		}
	}
}

type bundle struct {
	r      testutil.Redis
	client *queue.Client
	reg    *runner.Registry
	m      *metrics.Metrics
	prom   *prometheus.Registry
	rec    *recorder
}

func setup(t *testing.T, r testutil.Redis) *bundle {
	t.Helper()
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
	require.NoError(t, err)
	m := metrics.New(client, &metrics.Opts{Logger: quiet})
	prom := prometheus.NewPedanticRegistry()
	prom.MustRegister(m)
	return &bundle{r: r, client: client, reg: runner.NewRegistry(), m: m, prom: prom, rec: &recorder{change: make(chan struct{}, 1)}}
}

func (b *bundle) start(t *testing.T, mod func(*runner.Config)) *runner.Runner {
	t.Helper()
	cfg := runner.Config{
		Redis: b.r.Client, Registry: b.reg, Namespace: b.r.Namespace, Logger: quiet,
		Concurrency: 2, CheckpointInterval: time.Hour,
		OnEvent: func(ctx context.Context, ev jobtype.Event) {
			b.m.OnEvent(ctx, ev)
			b.rec.add(ev)
		},
		HeartbeatInterval: 50 * time.Millisecond, DeadAfter: time.Second,
		PollInterval: 20 * time.Millisecond, CancelCheckInterval: 20 * time.Millisecond,
		Backoff: func(int) time.Duration { return time.Millisecond },
	}
	if mod != nil {
		mod(&cfg)
	}
	run, err := runner.New(cfg)
	require.NoError(t, err)
	require.NoError(t, run.Start(t.Context()))
	t.Cleanup(func() { stop(t, run) })
	return run
}

func stop(t *testing.T, run *runner.Runner) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := run.Stop(ctx); err != nil && !errors.Is(err, runner.ErrNotStarted) {
		t.Errorf("stop runner: %v", err)
	}
}

// compare checks the named metrics against the exposition text want.
func (b *bundle) compare(t *testing.T, want string, names ...string) {
	t.Helper()
	require.NoError(t, promtest.GatherAndCompare(b.prom, strings.NewReader(want), names...))
}

// value returns the value of the one series of name with labels, or fails.
func (b *bundle) value(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := b.find(t, name, labels)
	require.True(t, ok, "no series %s%v", name, labels)
	return v
}

func (b *bundle) find(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	return find(t, b.prom, name, labels)
}

func find(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	fams, err := g.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, mt := range f.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return metricValue(mt), true
		}
	}
	return 0, false
}

func metricValue(mt *dto.Metric) float64 {
	switch {
	case mt.Gauge != nil:
		return mt.GetGauge().GetValue()
	case mt.Counter != nil:
		return mt.GetCounter().GetValue()
	case mt.Histogram != nil:
		return float64(mt.GetHistogram().GetSampleCount())
	}
	return 0
}

// walk iterates n items; the item at gate (if any) signals reached and
// waits for release.
type walk struct {
	n        int64
	gate     int64
	reached  chan struct{}
	release  chan struct{}
	itemWait func()
}

func (w walk) BuildEnumerator(_ context.Context, _ struct{}, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(0, w.n, c), nil
}

func (w walk) EachIteration(_ context.Context, _ struct{}, i int64) error {
	if w.reached != nil && i == w.gate {
		close(w.reached)
		<-w.release
	}
	if w.itemWait != nil {
		w.itemWait()
	}
	return nil
}

type failing struct{}

func (failing) Perform(context.Context, struct{}) error { return errors.New("boom") }

// An iterable job interrupted by a quiet runner and resumed by another: one
// interruption and one success, two timed runs, and every item counted
// once across both runs.
func TestInterruptedAndResumedJob(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		w := walk{n: 10, gate: 5, reached: make(chan struct{}), release: make(chan struct{})}
		runner.RegisterIterable(b.reg, "walk", w, nil)
		first := b.start(t, nil)
		_, err := b.client.Enqueue(t.Context(), "walk", struct{}{}, nil)
		require.NoError(t, err)
		<-w.reached
		require.Equal(t, 1.0, b.value(t, "iterjob_jobs_in_flight", map[string]string{"kind": "walk"}))
		first.Quiet()
		close(w.release)
		b.rec.wait(t, jobtype.EventInterrupted, 1)
		stop(t, first)
		_, ok := b.find(t, "iterjob_jobs_in_flight", map[string]string{"kind": "walk"})
		require.False(t, ok, "no run is in flight between the runs")

		b.start(t, nil)
		b.rec.wait(t, jobtype.EventSucceeded, 1)
		b.compare(t, `
# HELP iterjob_jobs_interrupted_total Runs interrupted and re-enqueued (quiet, shutdown, maximum runtime).
# TYPE iterjob_jobs_interrupted_total counter
iterjob_jobs_interrupted_total{kind="walk"} 1
# HELP iterjob_jobs_processed_total Jobs that succeeded.
# TYPE iterjob_jobs_processed_total counter
iterjob_jobs_processed_total{kind="walk"} 1
# HELP iterjob_iteration_items_total Items iterable jobs finished, counted at their checkpoints.
# TYPE iterjob_iteration_items_total counter
iterjob_iteration_items_total{kind="walk"} 10
# HELP iterjob_jobs_failed_total Attempts that failed.
# TYPE iterjob_jobs_failed_total counter
iterjob_jobs_failed_total{kind="walk"} 0
`, "iterjob_jobs_interrupted_total", "iterjob_jobs_processed_total", "iterjob_iteration_items_total", "iterjob_jobs_failed_total")
		for _, outcome := range []string{"interrupted", "succeeded"} {
			require.Equal(t, 1.0, b.value(t, "iterjob_job_run_duration_seconds", map[string]string{"kind": "walk", "outcome": outcome}), outcome)
		}
		require.Equal(t, 0.0, b.value(t, "iterjob_job_run_duration_seconds", map[string]string{"kind": "walk", "outcome": "failed"}))
		require.Equal(t, 1.0, b.value(t, "iterjob_fleet_processed_total", nil))
	})
}

// A plain job that always fails, with two attempts: two failed attempts (each
// a timed run), one retry, one death; the dead set holds it.
func TestFailuresRetriesAndDeath(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		runner.Register(b.reg, "flaky", failing{}, &runner.KindOpts{MaxAttempts: 2})
		b.start(t, nil)
		_, err := b.client.Enqueue(t.Context(), "flaky", struct{}{}, nil)
		require.NoError(t, err)
		b.rec.wait(t, jobtype.EventDead, 1)
		b.compare(t, `
# HELP iterjob_jobs_failed_total Attempts that failed.
# TYPE iterjob_jobs_failed_total counter
iterjob_jobs_failed_total{kind="flaky"} 2
# HELP iterjob_jobs_retried_total Failed jobs put in the retry set.
# TYPE iterjob_jobs_retried_total counter
iterjob_jobs_retried_total{kind="flaky"} 1
# HELP iterjob_jobs_dead_total Jobs moved to the dead set.
# TYPE iterjob_jobs_dead_total counter
iterjob_jobs_dead_total{kind="flaky"} 1
# HELP iterjob_jobs_processed_total Jobs that succeeded.
# TYPE iterjob_jobs_processed_total counter
iterjob_jobs_processed_total{kind="flaky"} 0
# HELP iterjob_set_size Jobs in the scheduled, retry and dead sets.
# TYPE iterjob_set_size gauge
iterjob_set_size{set="dead"} 1
iterjob_set_size{set="retry"} 0
iterjob_set_size{set="scheduled"} 0
# HELP iterjob_fleet_failed_total Failed attempts in the namespace, all time, as counted in Redis.
# TYPE iterjob_fleet_failed_total counter
iterjob_fleet_failed_total 2
`, "iterjob_jobs_failed_total", "iterjob_jobs_retried_total", "iterjob_jobs_dead_total", "iterjob_jobs_processed_total", "iterjob_set_size", "iterjob_fleet_failed_total")
		require.Equal(t, 2.0, b.value(t, "iterjob_job_run_duration_seconds", map[string]string{"kind": "flaky", "outcome": "failed"}))
		_, ok := b.find(t, "iterjob_iteration_items_total", map[string]string{"kind": "flaky"})
		require.True(t, ok)
		require.Equal(t, 0.0, b.value(t, "iterjob_iteration_items_total", map[string]string{"kind": "flaky"}))
	})
}

// A running iterable job is in flight in this process and busy in its
// heartbeat; cancelled, it is counted and timed as cancelled and in flight
// no more.
func TestCancelledRunningJob(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		reached := make(chan struct{})
		var once sync.Once
		w := walk{n: 1 << 40, itemWait: func() {
			once.Do(func() { close(reached) })
			time.Sleep(time.Millisecond)
		}}
		runner.RegisterIterable(b.reg, "endless", w, nil)
		b.start(t, nil)
		res, err := b.client.Enqueue(t.Context(), "endless", struct{}{}, nil)
		require.NoError(t, err)
		<-reached
		require.Equal(t, 1.0, b.value(t, "iterjob_jobs_in_flight", map[string]string{"kind": "endless"}))
		testutil.Eventually(t, 10*time.Second, func() bool {
			v, ok := b.find(t, "iterjob_busy_jobs", map[string]string{"kind": "endless"})
			return ok && v == 1
		}, "the heartbeat shows the job running")
		require.Equal(t, 1.0, b.value(t, "iterjob_processes", nil))

		_, err = b.client.Cancel(t.Context(), res.Job.ID)
		require.NoError(t, err)
		b.rec.wait(t, jobtype.EventCancelled, 1)
		require.Equal(t, 1.0, b.value(t, "iterjob_jobs_cancelled_total", map[string]string{"kind": "endless"}))
		require.Equal(t, 1.0, b.value(t, "iterjob_job_run_duration_seconds", map[string]string{"kind": "endless", "outcome": "cancelled"}))
		_, ok := b.find(t, "iterjob_jobs_in_flight", map[string]string{"kind": "endless"})
		require.False(t, ok)
		// The items counted are those the final save recorded.
		var last jobtype.Event
		b.rec.mu.Lock()
		for _, ev := range b.rec.all {
			if ev.Type == jobtype.EventCancelled {
				last = ev
			}
		}
		b.rec.mu.Unlock()
		require.NotNil(t, last.Progress)
		require.Positive(t, last.Progress.ItemsProcessed)
		require.Equal(t, float64(last.Progress.ItemsProcessed), b.value(t, "iterjob_iteration_items_total", map[string]string{"kind": "endless"}))
	})
}

// Checkpoints are counted, and items are added at each checkpoint: the
// total after the job ends is its item count, however the checkpoints cut it.
func TestCheckpointsAndItems(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		var seen bool
		var mu sync.Mutex
		items := int64(0)
		w := walk{n: 2000, itemWait: func() {
			// Slow down until the first checkpoint, so there is one.
			mu.Lock()
			items++
			done := seen
			mu.Unlock()
			if !done {
				time.Sleep(2 * time.Millisecond)
				mu.Lock()
				seen = b.rec.count(jobtype.EventCheckpointed) > 0
				mu.Unlock()
			}
		}}
		runner.RegisterIterable(b.reg, "steps", w, nil)
		b.start(t, func(c *runner.Config) { c.CheckpointInterval = time.Millisecond })
		_, err := b.client.Enqueue(t.Context(), "steps", struct{}{}, nil)
		require.NoError(t, err)
		b.rec.wait(t, jobtype.EventSucceeded, 1)
		n := b.rec.count(jobtype.EventCheckpointed)
		require.Positive(t, n)
		require.Equal(t, float64(n), b.value(t, "iterjob_iteration_checkpoints_total", map[string]string{"kind": "steps"}))
		require.Equal(t, 2000.0, b.value(t, "iterjob_iteration_items_total", map[string]string{"kind": "steps"}))
	})
}

// Queue gauges come from Redis at scrape time: sizes, pause state,
// latency (growing while a job waits), scheduled set.
func TestQueueGauges(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		ctx := t.Context()
		for range 3 {
			_, err := b.client.Enqueue(ctx, "later", struct{}{}, &queue.EnqueueOpts{Queue: "idle"})
			require.NoError(t, err)
		}
		_, err := b.client.Enqueue(ctx, "later", struct{}{}, &queue.EnqueueOpts{Queue: "idle", In: time.Hour})
		require.NoError(t, err)
		require.NoError(t, b.client.PauseQueue(ctx, "idle"))
		qs, err := b.client.Queues(ctx)
		require.NoError(t, err)
		require.Len(t, qs, 1)
		before := qs[0].Latency.Seconds()

		b.compare(t, `
# HELP iterjob_queue_size Jobs waiting in the queue.
# TYPE iterjob_queue_size gauge
iterjob_queue_size{queue="idle"} 3
# HELP iterjob_queue_paused 1 if the queue is paused.
# TYPE iterjob_queue_paused gauge
iterjob_queue_paused{queue="idle"} 1
# HELP iterjob_set_size Jobs in the scheduled, retry and dead sets.
# TYPE iterjob_set_size gauge
iterjob_set_size{set="dead"} 0
iterjob_set_size{set="retry"} 0
iterjob_set_size{set="scheduled"} 1
# HELP iterjob_redis_up 1 if the last scrape read Redis, else 0.
# TYPE iterjob_redis_up gauge
iterjob_redis_up 1
# HELP iterjob_processes Live worker processes.
# TYPE iterjob_processes gauge
iterjob_processes 0
`, "iterjob_queue_size", "iterjob_queue_paused", "iterjob_set_size", "iterjob_redis_up", "iterjob_processes")
		require.GreaterOrEqual(t, b.value(t, "iterjob_queue_latency_seconds", map[string]string{"queue": "idle"}), before)

		require.NoError(t, b.client.ResumeQueue(ctx, "idle"))
		require.Equal(t, 0.0, b.value(t, "iterjob_queue_paused", map[string]string{"queue": "idle"}))
	})
}

// With Redis unreachable a scrape still answers: redis_up is 0, the Redis
// series are left out, the event counters are there.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	client, err := queue.NewClient(rdb, queue.Config{Namespace: testutil.Unique("down"), Logger: quiet})
	require.NoError(t, err)
	m := metrics.New(client, &metrics.Opts{Logger: quiet, ScrapeTimeout: time.Second})
	m.OnEvent(context.Background(), jobtype.Event{Type: jobtype.EventSucceeded, JobID: "a", Kind: "k", At: time.Now()})
	require.NoError(t, promtest.CollectAndCompare(m, strings.NewReader(`
# HELP iterjob_redis_up 1 if the last scrape read Redis, else 0.
# TYPE iterjob_redis_up gauge
iterjob_redis_up 0
# HELP iterjob_jobs_processed_total Jobs that succeeded.
# TYPE iterjob_jobs_processed_total counter
iterjob_jobs_processed_total{kind="k"} 1
`), "iterjob_redis_up", "iterjob_jobs_processed_total", "iterjob_queue_size", "iterjob_set_size"))
}

// Without a client only event metrics are exported; with synthetic events:
// a collector that first sees a run at a checkpoint counts items from there,
// a resumed run counts from its saved progress, and a run's duration is the
// time between its start and its end event.
func TestEventsOnly(t *testing.T) {
	t.Parallel()
	m := metrics.New(nil, nil)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := func(typ jobtype.EventType, id string, at time.Duration, items int64) jobtype.Event {
		e := jobtype.Event{Type: typ, JobID: id, Kind: "k", At: t0.Add(at)}
		if items >= 0 {
			e.Progress = &jobtype.Progress{ItemsProcessed: items}
		}
		return e
	}
	// Job a: seen first at a checkpoint with 100 items, then ends at 130.
	m.OnEvent(ctx, ev(jobtype.EventCheckpointed, "a", 0, 100))
	m.OnEvent(ctx, ev(jobtype.EventSucceeded, "a", time.Second, 130))
	// Job b: resumed at 50, checkpointed at 70, interrupted at 80, 2s later.
	m.OnEvent(ctx, ev(jobtype.EventResumed, "b", 0, 50))
	m.OnEvent(ctx, ev(jobtype.EventCheckpointed, "b", time.Second, 70))
	m.OnEvent(ctx, ev(jobtype.EventInterrupted, "b", 2*time.Second, 80))
	// Job c: a plain job started and still running.
	m.OnEvent(ctx, ev(jobtype.EventStarted, "c", 0, -1))
	// Events of unreadable payloads carry no kind and are ignored.
	m.OnEvent(ctx, jobtype.Event{Type: jobtype.EventDead, JobID: "x"})

	require.NoError(t, promtest.CollectAndCompare(m, strings.NewReader(`
# HELP iterjob_iteration_items_total Items iterable jobs finished, counted at their checkpoints.
# TYPE iterjob_iteration_items_total counter
iterjob_iteration_items_total{kind="k"} 60
# HELP iterjob_iteration_checkpoints_total Checkpoints iterable jobs saved while iterating.
# TYPE iterjob_iteration_checkpoints_total counter
iterjob_iteration_checkpoints_total{kind="k"} 2
# HELP iterjob_jobs_in_flight Runs started and not yet ended.
# TYPE iterjob_jobs_in_flight gauge
iterjob_jobs_in_flight{kind="k"} 1
# HELP iterjob_jobs_dead_total Jobs moved to the dead set.
# TYPE iterjob_jobs_dead_total counter
iterjob_jobs_dead_total{kind="k"} 0
`), "iterjob_iteration_items_total", "iterjob_iteration_checkpoints_total", "iterjob_jobs_in_flight", "iterjob_jobs_dead_total", "iterjob_redis_up"))

	// a's start was not seen: not timed. b's run took 2 s.
	out, err := promtest.CollectAndFormat(m, expfmt.TypeTextPlain, "iterjob_job_run_duration_seconds")
	require.NoError(t, err)
	require.Contains(t, string(out), `iterjob_job_run_duration_seconds_sum{kind="k",outcome="interrupted"} 2`)
	require.Contains(t, string(out), `iterjob_job_run_duration_seconds_count{kind="k",outcome="interrupted"} 1`)
	require.Contains(t, string(out), `iterjob_job_run_duration_seconds_count{kind="k",outcome="succeeded"} 0`)
}

// MaxRuns bounds the runs tracked: more runs are still counted.
func TestMaxRuns(t *testing.T) {
	t.Parallel()
	m := metrics.New(nil, &metrics.Opts{MaxRuns: 2})
	ctx := context.Background()
	for i := range 5 {
		m.OnEvent(ctx, jobtype.Event{Type: jobtype.EventStarted, JobID: fmt.Sprint(i), Kind: "k", At: time.Now()})
	}
	for i := range 5 {
		m.OnEvent(ctx, jobtype.Event{Type: jobtype.EventSucceeded, JobID: fmt.Sprint(i), Kind: "k", At: time.Now()})
	}
	out, err := promtest.CollectAndFormat(m, expfmt.TypeTextPlain, "iterjob_jobs_processed_total", "iterjob_job_run_duration_seconds")
	require.NoError(t, err)
	require.Contains(t, string(out), `iterjob_jobs_processed_total{kind="k"} 5`)
	require.Contains(t, string(out), `iterjob_job_run_duration_seconds_count{kind="k",outcome="succeeded"} 2`)
}

// Follow counts the fleet's events from the events stream, in a process
// that runs no job; it returns nil when its context ends.
func TestFollow(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		runner.Register(b.reg, "flaky", failing{}, &runner.KindOpts{MaxAttempts: 1})
		exporter := metrics.New(nil, &metrics.Opts{Logger: quiet})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- exporter.Follow(ctx, b.client, &queue.SubscribeOpts{After: "0"}) }()
		prom := prometheus.NewPedanticRegistry()
		prom.MustRegister(exporter)
		_, err := b.client.Enqueue(t.Context(), "flaky", struct{}{}, nil)
		require.NoError(t, err)
		b.start(t, func(c *runner.Config) { c.PublishEvents = true })
		testutil.Eventually(t, 20*time.Second, func() bool {
			v, ok := find(t, prom, "iterjob_jobs_dead_total", map[string]string{"kind": "flaky"})
			return ok && v == 1
		}, "the exporter counts the death")
		cancel()
		require.NoError(t, <-done)
		require.Equal(t, 1.0, b.value(t, "iterjob_jobs_dead_total", map[string]string{"kind": "flaky"}), "the runner's own count agrees")
		v, _ := find(t, prom, "iterjob_jobs_failed_total", map[string]string{"kind": "flaky"})
		require.Equal(t, 1.0, v)
	})
}
