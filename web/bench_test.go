package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/web"
)

// BenchmarkPages renders every page over a namespace holding 1,000,000 jobs
// in the dead set and 100,000 in a queue (target: under 100 ms each, server
// time). Seeding takes about a minute; run it on its own:
//
//	go test ./web -run '^$' -bench Pages -benchtime 20x
func BenchmarkPages(b *testing.B) {
	r := testutil.RealRedis(b)
	ctx := b.Context()
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
	require.NoError(b, err)

	// 100,000 waiting jobs in "default".
	batch := make([]queue.Params, 1000)
	for i := range batch {
		batch[i] = queue.Params{Kind: "walk", Args: walkArgs{Rows: int64(i)}}
	}
	for range 100 {
		_, err := client.EnqueueMany(ctx, batch)
		require.NoError(b, err)
	}
	// 1,000,000 dead jobs in "reports": one real dead job's envelope,
	// copied under new ids (kinds alternate, for the filter).
	res, err := client.Enqueue(ctx, "walk", walkArgs{Rows: 1, Note: "seed"}, &queue.EnqueueOpts{Queue: "reports", In: time.Hour})
	require.NoError(b, err)
	require.NoError(b, client.Kill(ctx, queue.SetScheduled, res.Job.ID))
	q := rdb.NewKeys(r.Namespace).Q("reports")
	env, err := r.Client.HGet(ctx, q.Parked(), res.Job.ID).Result()
	require.NoError(b, err)
	jerr := `{"message":"row 12: constraint violation","class":"*errors.errorString","at":"2026-11-28T10:00:00Z","attempt":25}`
	now := float64(time.Now().UnixMilli())
	const deadJobs = 1_000_000
	for i := 0; i < deadJobs; i += 10_000 {
		pipe := r.Client.Pipeline()
		for j := i; j < i+10_000; j++ {
			id := "dead" + strconv.Itoa(j)
			e := strings.Replace(env, res.Job.ID, id, 1)
			if j%7 == 0 {
				e = strings.Replace(e, "|walk|", "|sweep|", 1)
			}
			pipe.ZAdd(ctx, q.Dead(), redisZ(now-float64(j), id))
			pipe.HSet(ctx, q.Parked(), id, e)
			pipe.HSet(ctx, q.Errors(), id, jerr)
		}
		_, err := pipe.Exec(ctx)
		require.NoError(b, err)
	}
	n, err := client.SetSize(ctx, queue.SetDead)
	require.NoError(b, err)
	require.EqualValues(b, deadJobs+1, n)

	dash, err := web.New(client, web.Options{Logger: quiet})
	require.NoError(b, err)
	for _, page := range []string{
		"/", "/busy", "/queues",
		"/queues/default", "/queues/default?page=3000",
		"/sets/dead", "/sets/dead?page=30000", "/sets/dead?kind=sweep", "/sets/dead?kind=nosuchkind",
		"/sets/retry", "/sets/scheduled",
		"/jobs/dead123456", "/jobs/" + res.Job.ID,
	} {
		b.Run(strings.NewReplacer("/", "_", "?", "_", "=", "-").Replace(page), func(b *testing.B) {
			var worst time.Duration
			for b.Loop() {
				start := time.Now()
				rec := httptest.NewRecorder()
				dash.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, page, nil))
				worst = max(worst, time.Since(start))
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", page, rec.Code, rec.Body.String()[:min(200, rec.Body.Len())])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/page")
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
		})
	}
	fmt.Fprintln(b.Output(), "pages over", deadJobs, "dead jobs and 100,000 queued")
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }
