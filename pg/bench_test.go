package pg_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/queue"
)

// BenchmarkOutbox measures, on the real PostgreSQL and Redis, the two
// figures the outbox is held to: the time from a transaction's commit to
// its job being in Redis (p50 ≤ 10 ms on an idle system), and how fast a
// drainer empties a full outbox (≥ 20,000 jobs/s).
//
//	go test ./pg -run '^$' -bench Outbox -benchtime 1x
func BenchmarkOutbox(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		// Latency: one job per transaction, one at a time, the drainer
		// idle between them.
		r := testutil.RealRedis(b)
		enqueued := make(chan string, 1)
		bu := setup(b, r)
		client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet,
			OnEvent: func(_ context.Context, ev jobtype.Event) {
				if ev.Type == jobtype.EventEnqueued {
					enqueued <- ev.JobID
				}
			}})
		require.NoError(b, err)
		d := bu.drainer(b, pg.DrainerConfig{Client: client})
		testutil.Eventually(b, 10*time.Second, d.Active, "the drainer to become active")
		const commits = 300
		lat := make([]time.Duration, 0, commits)
		for range commits {
			tx, err := bu.pool.Begin(ctx)
			require.NoError(b, err)
			id, err := pg.Schema(bu.schema).EnqueueTx(ctx, tx, "email", emailArgs{To: "ada@example.com"}, nil)
			require.NoError(b, err)
			require.NoError(b, tx.Commit(ctx))
			committed := time.Now()
			require.Equal(b, id, <-enqueued)
			lat = append(lat, time.Since(committed))
			time.Sleep(2 * time.Millisecond)
		}
		slices.Sort(lat)
		pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
		b.ReportMetric(pct(0.5), "commit_to_redis_p50_ms")
		b.ReportMetric(pct(0.9), "commit_to_redis_p90_ms")
		b.ReportMetric(pct(0.99), "commit_to_redis_p99_ms")

		// Throughput: stage 100,000 jobs with no drainer running, then
		// time one drainer emptying the outbox.
		r2 := testutil.RealRedis(b)
		bt := setup(b, r2)
		const jobs = 100_000
		params := make([]queue.Params, 10_000)
		for i := range params {
			params[i] = queue.Params{Kind: "email", Args: emailArgs{To: "ada@example.com"}}
		}
		stageStart := time.Now()
		for range jobs / len(params) {
			require.NoError(b, pgx.BeginFunc(ctx, bt.pool, func(tx pgx.Tx) error {
				_, err := pg.Schema(bt.schema).EnqueueManyTx(ctx, tx, params)
				return err
			}))
		}
		b.ReportMetric(jobs/time.Since(stageStart).Seconds(), "stage_jobs/s")
		start := time.Now()
		dt := bt.drainer(b, pg.DrainerConfig{})
		testutil.Eventually(b, 60*time.Second, func() bool { return dt.Pushed() == jobs }, "the drainer to push %d jobs", jobs)
		b.ReportMetric(jobs/time.Since(start).Seconds(), "drain_jobs/s")
		require.Zero(b, bt.outboxLen(b))
		n, err := bt.client.QueueJobs(ctx, queue.QueueDefault, jobs-1, 10)
		require.NoError(b, err)
		require.Len(b, n, 1, "all %d jobs queued", jobs)
	}
}
