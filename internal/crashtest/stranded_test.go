package crashtest

import (
	"syscall"
	"testing"
	"time"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// proxied returns the bundle on the real Redis and a proxy to it.
func proxied(t *testing.T) (*bundle, *proxy) {
	t.Helper()
	b := setup(t)
	opts, err := redis.ParseURL(b.url)
	require.NoError(t, err)
	p := startProxy(t, opts.Addr)
	return b, p
}

// The reply to a fetch is lost after the fetch script ran: its jobs are in
// the process's in-flight hash but the runner never got them. They must
// still run while the process lives.
func TestLostFetchReplyStrandsNoJob(t *testing.T) {
	b, p := proxied(t)
	const jobs = 30
	opts := workerOpts{concurrency: 2, heartbeat: heartbeat, deadAfter: deadAfter, shutdownTimeout: stopTimeout}
	ids := b.enqueuePlain(jobs, 0)
	dropped := p.arm(rdb.FetchScriptHash, dropReply) // the fetch script's hash
	proxiedURL := *b
	proxiedURL.url = p.url()
	w := proxiedURL.startWorker(opts)
	b.nproc = proxiedURL.nproc
	select {
	case <-dropped:
	case <-time.After(waitLong):
		t.Fatal("the worker never fetched")
	}

	requireNoneStranded(t, b, w, opts, ids, "a fetch retried by the Redis client after a lost reply left its first batch in flight")
}

// Redis becomes unreachable right after a fetch, while one job runs and the
// other, fetched ahead, waits for the busy worker: the runner tries to hand
// the waiting job back and cannot. It must still run once Redis is back,
// while the process lives.
func TestUnreturnableFetchedAheadJobIsNotStranded(t *testing.T) {
	b, p := proxied(t)
	const jobs = 2
	// Concurrency 1 with the default fetch-ahead of 1: one fetch takes both
	// jobs; the second waits while the first is stuck recording its failure.
	opts := workerOpts{concurrency: 1, heartbeat: heartbeat, deadAfter: deadAfter, shutdownTimeout: stopTimeout}
	ids := b.enqueuePlain(jobs, 0)
	down := p.arm(rdb.FetchScriptHash, downAfterReply)
	proxiedURL := *b
	proxiedURL.url = p.url()
	w := proxiedURL.startWorker(opts)
	b.nproc = proxiedURL.nproc
	select {
	case <-down:
	case <-time.After(waitLong):
		t.Fatal("the worker never fetched")
	}
	downAt := time.Now()
	time.Sleep(time.Until(downAt.Add(time.Second))) // the outage: ten times FetchAheadHold
	p.up()

	requireNoneStranded(t, b, w, opts, ids, "fetched-ahead jobs that could not be handed back stayed in flight")
}

// requireNoneStranded waits for the jobs ids to complete in the live worker
// w. Jobs stranded in its in-flight hash are recovered (by stopping w and
// starting another) so the rest of the checks run, and then fail the test
// with why.
func requireNoneStranded(t *testing.T, b *bundle, w *worker, opts workerOpts, ids []string, why string) {
	t.Helper()
	jobs := len(ids)
	stranded := b.waitCompleted(jobs)
	if len(stranded) > 0 {
		t.Logf("%d jobs stranded in the live worker: %v", len(stranded), stranded)
		b.recoverStranded(w, opts, jobs)
	} else {
		w.signal(syscall.SIGTERM)
		w.requireCleanExit(stopTimeout)
	}
	requireAllCompleted(t, b, ids)
	b.requireDrained()
	if len(stranded) > 0 {
		t.Fatalf("%d of %d jobs were stranded until the worker exited: %s", len(stranded), jobs, why)
	}
}
