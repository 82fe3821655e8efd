// Package metrics exposes iterjob to Prometheus: a prometheus.Collector with
// counters of what runners do and gauges of what waits in Redis.
//
// # Wiring
//
// Counters are fed by lifecycle events. In a worker process, hand the
// runner's events to the collector and register it:
//
//	m := metrics.New(client, nil) // client: a *queue.Client on the same namespace
//	cfg.OnEvent = m.OnEvent       // cfg: the runner.Config
//	prometheus.MustRegister(m)
//	http.Handle("/metrics", promhttp.Handler())
//
// OnEvent costs a few map lookups and atomic adds per event, with no I/O, so
// it stays off the runner's hot path. Each process then counts its own jobs;
// sum over instances in PromQL for the fleet.
//
// A separate exporter process (the `iterjob metrics` command) has no runner:
// it calls Follow, which feeds OnEvent from the namespace's events stream
// (written when runners set PublishEvents), so its counters cover the fleet.
// Do not do both in one process, or events are counted twice.
//
// # What is exported
//
// From events (labels: kind; the histogram also outcome):
//
//	iterjob_jobs_processed_total      jobs that succeeded
//	iterjob_jobs_failed_total         attempts that failed
//	iterjob_jobs_retried_total        failed jobs put in the retry set
//	iterjob_jobs_dead_total           jobs moved to the dead set
//	iterjob_jobs_interrupted_total    runs interrupted and re-enqueued (deploys, MaxRuntime)
//	iterjob_jobs_cancelled_total      jobs cancelled
//	iterjob_job_run_duration_seconds  histogram of run durations, by how the run ended:
//	                                  succeeded, failed, interrupted, cancelled, scheduled
//	iterjob_iteration_items_total     items iterable jobs finished, as of their checkpoints
//	iterjob_iteration_checkpoints_total  checkpoints saved while iterating (not the save
//	                                  that ends every run)
//	iterjob_jobs_in_flight            runs started and not yet ended
//
// Read from Redis through the queue admin API at each scrape (namespace-wide,
// the same in every process that exports them), when New is given a client:
//
//	iterjob_redis_up                  1 if the reads below succeeded, else 0
//	iterjob_queue_size{queue}         jobs waiting
//	iterjob_queue_latency_seconds{queue}  how long the job at the head has waited
//	iterjob_queue_paused{queue}       1 if paused
//	iterjob_set_size{set}             jobs in the scheduled, retry and dead sets
//	iterjob_processes                 live worker processes
//	iterjob_busy_jobs{kind}           jobs running, from the processes' heartbeats
//	iterjob_fleet_processed_total     jobs processed, all time, as counted in Redis
//	iterjob_fleet_failed_total        failed attempts, all time, as counted in Redis
//
// Items are counted from the progress that checkpoint and end-of-run events
// carry: a run's items are added when they are saved, so items a crashed run
// did after its last checkpoint (and will do again) are not counted. A
// collector that first sees a job in the middle of a run (Follow started
// late) counts that run's items from then on.
package metrics
