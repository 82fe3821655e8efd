package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

const (
	// ScrapeTimeoutDefault bounds the Redis reads of one scrape.
	ScrapeTimeoutDefault = 5 * time.Second
	// MaxRunsDefault bounds the runs a collector tracks at once (for
	// durations, items and jobs in flight); runs beyond it are still
	// counted, but not timed.
	MaxRunsDefault = 100_000
)

// DurationBucketsDefault are the run duration histogram's buckets, in
// seconds: from a few milliseconds (plain jobs) to hours (long iterations).
var DurationBucketsDefault = []float64{.005, .025, .1, .5, 1, 5, 30, 60, 300, 900, 3600, 14400}

// Opts configure a Metrics. A nil *Opts means all defaults.
type Opts struct {
	// DurationBuckets are the run duration histogram's buckets in seconds.
	// Nil means DurationBucketsDefault.
	DurationBuckets []float64
	// ScrapeTimeout bounds the Redis reads of one scrape. Zero means
	// ScrapeTimeoutDefault.
	ScrapeTimeout time.Duration
	// MaxRuns: see MaxRunsDefault. Zero means the default.
	MaxRuns int
	// Logger receives scrape and Follow errors. Default slog.Default().
	Logger *slog.Logger
}

// The outcomes of a run, the values of the duration histogram's outcome
// label.
const (
	outSucceeded = iota
	outFailed
	outInterrupted
	outCancelled
	outScheduled
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"succeeded", "failed", "interrupted", "cancelled", "scheduled"}

// Metrics is a prometheus.Collector of iterjob's metrics (see the package
// documentation for the list). Feed it events with OnEvent or Follow, and
// register it with a prometheus.Registerer. It is safe for concurrent use.
type Metrics struct {
	client  *queue.Client
	timeout time.Duration
	maxRuns int
	log     *slog.Logger

	processed, failed, retried, dead, interrupted, cancelled *prometheus.CounterVec
	items, checkpoints                                       *prometheus.CounterVec
	duration                                                 *prometheus.HistogramVec

	kinds sync.Map // kind -> *kindMetrics

	mu   sync.Mutex
	runs map[string]run // by job id

	inFlight                                                 *prometheus.Desc
	up, queueSize, queueLatency, queuePaused, setSize, procs *prometheus.Desc
	busy, fleetProcessed, fleetFailed                        *prometheus.Desc
}

// kindMetrics are one kind's counters, resolved once so an event costs no
// label hashing.
type kindMetrics struct {
	processed, failed, retried, dead, interrupted, cancelled prometheus.Counter
	items, checkpoints                                       prometheus.Counter
	duration                                                 [numOutcomes]prometheus.Observer
}

// run is a run the collector saw start (or, when it started late, go on).
type run struct {
	kind  string
	start time.Time // zero when the start was not seen
	items int64     // items done as of the last event seen
	have  bool      // items is known
}

// New returns a collector. With a client, each scrape also reads queue
// sizes, set sizes and processes from Redis through client's admin API;
// with nil, only the event-fed metrics are exported.
func New(client *queue.Client, opts *Opts) *Metrics {
	var o Opts
	if opts != nil {
		o = *opts
	}
	if o.DurationBuckets == nil {
		o.DurationBuckets = DurationBucketsDefault
	}
	if o.ScrapeTimeout <= 0 {
		o.ScrapeTimeout = ScrapeTimeoutDefault
	}
	if o.MaxRuns <= 0 {
		o.MaxRuns = MaxRunsDefault
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "iterjob", Name: name, Help: help}, []string{"kind"})
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("iterjob_"+name, help, labels, nil)
	}
	return &Metrics{
		client:      client,
		timeout:     o.ScrapeTimeout,
		maxRuns:     o.MaxRuns,
		log:         o.Logger,
		runs:        make(map[string]run),
		processed:   counter("jobs_processed_total", "Jobs that succeeded."),
		failed:      counter("jobs_failed_total", "Attempts that failed."),
		retried:     counter("jobs_retried_total", "Failed jobs put in the retry set."),
		dead:        counter("jobs_dead_total", "Jobs moved to the dead set."),
		interrupted: counter("jobs_interrupted_total", "Runs interrupted and re-enqueued (quiet, shutdown, maximum runtime)."),
		cancelled:   counter("jobs_cancelled_total", "Jobs cancelled."),
		items:       counter("iteration_items_total", "Items iterable jobs finished, counted at their checkpoints."),
		checkpoints: counter("iteration_checkpoints_total", "Checkpoints iterable jobs saved while iterating."),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "iterjob", Name: "job_run_duration_seconds",
			Help:    "How long runs took, by kind and by how they ended.",
			Buckets: o.DurationBuckets,
		}, []string{"kind", "outcome"}),
		inFlight:       desc("jobs_in_flight", "Runs started and not yet ended.", "kind"),
		up:             desc("redis_up", "1 if the last scrape read Redis, else 0."),
		queueSize:      desc("queue_size", "Jobs waiting in the queue.", "queue"),
		queueLatency:   desc("queue_latency_seconds", "How long the job at the head of the queue has waited.", "queue"),
		queuePaused:    desc("queue_paused", "1 if the queue is paused.", "queue"),
		setSize:        desc("set_size", "Jobs in the scheduled, retry and dead sets.", "set"),
		procs:          desc("processes", "Live worker processes."),
		busy:           desc("busy_jobs", "Jobs running, from the processes' last heartbeats.", "kind"),
		fleetProcessed: desc("fleet_processed_total", "Jobs processed in the namespace, all time, as counted in Redis."),
		fleetFailed:    desc("fleet_failed_total", "Failed attempts in the namespace, all time, as counted in Redis."),
	}
}

func (m *Metrics) kind(k string) *kindMetrics {
	if km, ok := m.kinds.Load(k); ok {
		return km.(*kindMetrics)
	}
	km := &kindMetrics{
		processed:   m.processed.WithLabelValues(k),
		failed:      m.failed.WithLabelValues(k),
		retried:     m.retried.WithLabelValues(k),
		dead:        m.dead.WithLabelValues(k),
		interrupted: m.interrupted.WithLabelValues(k),
		cancelled:   m.cancelled.WithLabelValues(k),
		items:       m.items.WithLabelValues(k),
		checkpoints: m.checkpoints.WithLabelValues(k),
	}
	for i, name := range outcomeNames {
		km.duration[i] = m.duration.WithLabelValues(k, name)
	}
	actual, _ := m.kinds.LoadOrStore(k, km)
	return actual.(*kindMetrics)
}

// OnEvent counts one lifecycle event. It has the signature of
// runner.Config.OnEvent and queue.Config.OnEvent, so it can be passed as
// either; it does no I/O.
func (m *Metrics) OnEvent(_ context.Context, ev jobtype.Event) {
	if ev.Kind == "" { // a job whose payload could not be read
		return
	}
	km := m.kind(ev.Kind)
	switch ev.Type {
	case jobtype.EventStarted, jobtype.EventResumed:
		m.begin(ev)
	case jobtype.EventCheckpointed:
		km.checkpoints.Inc()
		m.progress(km, ev)
	case jobtype.EventSucceeded:
		km.processed.Inc()
		m.end(km, ev, outSucceeded)
	case jobtype.EventFailed:
		km.failed.Inc()
		m.end(km, ev, outFailed)
	case jobtype.EventRetrying:
		km.retried.Inc()
	case jobtype.EventDead:
		km.dead.Inc()
	case jobtype.EventInterrupted:
		km.interrupted.Inc()
		m.end(km, ev, outInterrupted)
	case jobtype.EventCancelled:
		km.cancelled.Inc()
		m.end(km, ev, outCancelled)
	case jobtype.EventScheduled:
		m.end(km, ev, outScheduled) // a run snoozed or throttled; else not a run
	}
}

// begin tracks a run from its started or resumed event.
func (m *Metrics) begin(ev jobtype.Event) {
	r := run{kind: ev.Kind, start: ev.At, have: true}
	if ev.Type == jobtype.EventResumed {
		if ev.Progress != nil {
			r.items = ev.Progress.ItemsProcessed
		} else {
			r.have = false
		}
	}
	m.mu.Lock()
	if _, ok := m.runs[ev.JobID]; ok || len(m.runs) < m.maxRuns {
		m.runs[ev.JobID] = r
	}
	m.mu.Unlock()
}

// progress counts the items a checkpoint saved since the last event of the
// run, tracking the run from now on if its start was not seen.
func (m *Metrics) progress(km *kindMetrics, ev jobtype.Event) {
	if ev.Progress == nil {
		return
	}
	n := ev.Progress.ItemsProcessed
	m.mu.Lock()
	r, ok := m.runs[ev.JobID]
	if !ok {
		if len(m.runs) < m.maxRuns {
			m.runs[ev.JobID] = run{kind: ev.Kind, items: n, have: true}
		}
		m.mu.Unlock()
		return
	}
	d := n - r.items
	if !r.have {
		d = 0
	}
	r.items, r.have = n, true
	m.runs[ev.JobID] = r
	m.mu.Unlock()
	if d > 0 {
		km.items.Add(float64(d))
	}
}

// end closes a run: its last items and its duration.
func (m *Metrics) end(km *kindMetrics, ev jobtype.Event, outcome int) {
	m.mu.Lock()
	r, ok := m.runs[ev.JobID]
	if !ok {
		m.mu.Unlock()
		return
	}
	delete(m.runs, ev.JobID)
	m.mu.Unlock()
	if ev.Progress != nil && r.have {
		if d := ev.Progress.ItemsProcessed - r.items; d > 0 {
			km.items.Add(float64(d))
		}
	}
	if !r.start.IsZero() {
		km.duration[outcome].Observe(max(ev.At.Sub(r.start), 0).Seconds())
	}
}

// Follow feeds OnEvent from client's events stream until ctx ends, and
// returns nil then. opts may be nil: from now on, every job. It is for an
// exporter process with no runner of its own (see the package
// documentation). Runners must publish events (runner.Config.PublishEvents)
// for it to see anything.
func (m *Metrics) Follow(ctx context.Context, client *queue.Client, opts *queue.SubscribeOpts) error {
	sub, err := client.Subscribe(ctx, opts)
	if err != nil {
		return err
	}
	defer sub.Close()
	errs := sub.Errors()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.Events():
			if !ok {
				return nil
			}
			m.OnEvent(ctx, ev)
		case err := <-errs:
			m.log.WarnContext(ctx, "metrics: reading events", slog.Any("error", err))
		}
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.vecs() {
		c.Describe(ch)
	}
	ch <- m.inFlight
	if m.client != nil {
		for _, d := range []*prometheus.Desc{m.up, m.queueSize, m.queueLatency, m.queuePaused, m.setSize, m.procs, m.busy, m.fleetProcessed, m.fleetFailed} {
			ch <- d
		}
	}
}

func (m *Metrics) vecs() []prometheus.Collector {
	return []prometheus.Collector{m.processed, m.failed, m.retried, m.dead, m.interrupted, m.cancelled, m.items, m.checkpoints, m.duration}
}

// Collect implements prometheus.Collector. With a client it reads Redis,
// bounded by Opts.ScrapeTimeout; if that fails, iterjob_redis_up is 0 and the
// Redis metrics are left out of this scrape.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.vecs() {
		c.Collect(ch)
	}
	m.mu.Lock()
	flying := make(map[string]int)
	for _, r := range m.runs {
		flying[r.kind]++
	}
	m.mu.Unlock()
	for k, n := range flying {
		ch <- prometheus.MustNewConstMetric(m.inFlight, prometheus.GaugeValue, float64(n), k)
	}
	if m.client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	var buf []prometheus.Metric
	err := m.collectRedis(ctx, func(pm prometheus.Metric) { buf = append(buf, pm) })
	up := 1.0
	if err != nil {
		up = 0
		m.log.WarnContext(ctx, "metrics: reading Redis", slog.Any("error", err))
	} else {
		for _, pm := range buf {
			ch <- pm
		}
	}
	ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, up)
}

// collectRedis reads the namespace's queues, sets, processes and totals.
// Nothing is sent unless every read succeeds, so a scrape never mixes old
// and missing series.
func (m *Metrics) collectRedis(ctx context.Context, send func(prometheus.Metric)) error {
	c := m.client
	qs, err := c.Queues(ctx)
	if err != nil {
		return fmt.Errorf("metrics: list queues: %w", err)
	}
	var sizes [3]int64
	for i, s := range []queue.Set{queue.SetScheduled, queue.SetRetry, queue.SetDead} {
		if sizes[i], err = c.SetSize(ctx, s); err != nil {
			return fmt.Errorf("metrics: size of the %s set: %w", s, err)
		}
	}
	procs, err := c.Processes(ctx)
	if err != nil {
		return fmt.Errorf("metrics: list processes: %w", err)
	}
	_, total, err := c.Stats(ctx, 0)
	if err != nil {
		return fmt.Errorf("metrics: read stats: %w", err)
	}
	for _, q := range qs {
		send(prometheus.MustNewConstMetric(m.queueSize, prometheus.GaugeValue, float64(q.Size), q.Name))
		send(prometheus.MustNewConstMetric(m.queueLatency, prometheus.GaugeValue, q.Latency.Seconds(), q.Name))
		paused := 0.0
		if q.Paused {
			paused = 1
		}
		send(prometheus.MustNewConstMetric(m.queuePaused, prometheus.GaugeValue, paused, q.Name))
	}
	for i, s := range []queue.Set{queue.SetScheduled, queue.SetRetry, queue.SetDead} {
		send(prometheus.MustNewConstMetric(m.setSize, prometheus.GaugeValue, float64(sizes[i]), string(s)))
	}
	send(prometheus.MustNewConstMetric(m.procs, prometheus.GaugeValue, float64(len(procs))))
	busy := make(map[string]int)
	for _, p := range procs {
		for _, b := range p.Busy {
			busy[b.Kind]++
		}
	}
	for k, n := range busy {
		send(prometheus.MustNewConstMetric(m.busy, prometheus.GaugeValue, float64(n), k))
	}
	send(prometheus.MustNewConstMetric(m.fleetProcessed, prometheus.CounterValue, float64(total.Processed)))
	send(prometheus.MustNewConstMetric(m.fleetFailed, prometheus.CounterValue, float64(total.Failed)))
	return nil
}
