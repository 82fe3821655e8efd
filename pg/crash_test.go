package pg_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/pg/internal/pgtest"
	"github.com/iterjob/iterjob/queue"
)

// proc is a worker process (see internal/pgtest/worker).
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error
}

// crashSeed returns the seed of a test's random kills: PGCRASH_SEED when
// set, else a fresh one, logged so a failure can be replayed.
func crashSeed(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PGCRASH_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("seed %d (set PGCRASH_SEED to replay)", seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// startProc starts a worker in mode on b's schema and namespace and waits
// until it says it is ready.
func (b *bundle) startProc(t *testing.T, mode string, n int) *proc {
	t.Helper()
	redisURL := os.Getenv("TEST_REDIS_URL")
	if redisURL == "" {
		redisURL = testutil.RedisURLDefault
	}
	name := fmt.Sprintf("%s-%s-%d", b.redis.Namespace, mode, n)
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(workerBin(t), "-db", testutil.DatabaseURL(), "-schema", b.schema,
		"-redis", redisURL, "-ns", b.redis.Namespace, "-mode", mode, "-process-id", name)
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	dieWithTest(cmd)
	require.NoError(t, cmd.Start())
	_ = f.Close()
	p := &proc{t: t, name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(ready)
			}
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if n := p.count("WARNING: DATA RACE"); n > 0 {
			t.Errorf("worker %s reported %d data races; see %s", name, n, logPath)
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, p.tail(30))
		}
	})
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("worker %s exited before it was ready: %v\n%s", name, p.err, p.tail(30))
	case <-time.After(30 * time.Second):
		t.Fatalf("worker %s not ready after 30s\n%s", name, p.tail(30))
	}
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("worker %s still running 10s after SIGKILL", p.name)
	}
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.exited:
		require.NoError(p.t, p.err, "worker %s exit\n%s", p.name, p.tail(30))
	case <-time.After(30 * time.Second):
		p.t.Fatalf("worker %s still running 30s after SIGTERM", p.name)
	}
}

func (p *proc) tail(n int) string {
	data, _ := os.ReadFile(p.log)
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	return string(bytes.Join(lines[max(0, len(lines)-n):], []byte("\n")))
}

func (p *proc) count(s string) int {
	data, _ := os.ReadFile(p.log)
	return bytes.Count(data, []byte(s))
}

// The drainer process is killed at random instants while transactions
// stage jobs and commit or roll back. In the end every committed job is in
// the queue exactly once, no rolled-back job is, and the outbox is empty.
func TestCrashDrainerKilledLosesAndDuplicatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes for several seconds")
	}
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.RealRedis(t))
	rng := crashSeed(t)
	workerBin(t)

	var (
		mu         sync.Mutex
		committed  = map[string]bool{}
		rolledBack = map[string]bool{}
		stop       = make(chan struct{})
		producer   sync.WaitGroup
	)
	producer.Go(func() {
		r := rand.New(rand.NewPCG(rng.Uint64(), 1))
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := 1 + r.IntN(40)
			params := make([]queue.Params, n)
			for i := range params {
				params[i] = queue.Params{Kind: "staged", Args: map[string]int{"i": i}}
			}
			tx, err := b.pool.Begin(ctx)
			require.NoError(t, err)
			ids, err := pg.Schema(b.schema).EnqueueManyTx(ctx, tx, params)
			require.NoError(t, err)
			keep := r.IntN(5) != 0
			if keep {
				require.NoError(t, tx.Commit(ctx))
			} else {
				require.NoError(t, tx.Rollback(ctx))
			}
			mu.Lock()
			for _, id := range ids {
				if keep {
					committed[id] = true
				} else {
					rolledBack[id] = true
				}
			}
			mu.Unlock()
			time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
		}
	})

	const kills = 15
	var repushes int
	for i := range kills {
		p := b.startProc(t, "drain", i)
		time.Sleep(time.Duration(20+rng.IntN(300)) * time.Millisecond)
		p.kill()
		repushes += p.count("already in the queue")
	}
	close(stop)
	producer.Wait()

	last := b.startProc(t, "drain", kills)
	testutil.Eventually(t, 30*time.Second, func() bool { return b.outboxLen(t) == 0 }, "the outbox to drain")
	last.stop()
	repushes += last.count("already in the queue")

	got := b.queued(t, queue.QueueDefault)
	var missing, extra, twice, fromRollback int
	for id := range committed {
		switch got[id] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
	}
	for id, n := range got {
		switch {
		case rolledBack[id]:
			fromRollback += n
		case !committed[id]:
			extra += n
		}
	}
	t.Logf("%d kills; %d jobs committed, %d rolled back; %d pushes found their jobs already queued",
		kills, len(committed), len(rolledBack), repushes)
	require.NotEmpty(t, committed)
	require.NotEmpty(t, rolledBack)
	require.Zero(t, missing, "committed jobs never queued")
	require.Zero(t, twice, "committed jobs queued more than once")
	require.Zero(t, fromRollback, "rolled-back jobs queued")
	require.Zero(t, extra, "unknown jobs queued")
	require.Len(t, got, len(committed))
}

// A process running workflows is killed at random instants, again and
// again. Every workflow still succeeds, no step that committed ever runs
// again, the outside service sees one charge per workflow, and every
// awaited job and receipt runs.
func TestCrashWorkflowKilledResumesWithoutRerunningSteps(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes for several seconds")
	}
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.RealRedis(t))
	rng := crashSeed(t)
	workerBin(t)
	_, err := b.pool.Exec(ctx, pgtest.DDL)
	require.NoError(t, err)
	flow, err := pgtest.NewFlow(b.pool, b.schema, 0)
	require.NoError(t, err)

	const workflows = 40
	ids := make([]string, workflows)
	for i := range ids {
		ids[i], err = flow.Start(ctx, "order-"+strconv.Itoa(i), pgtest.Args{Order: i})
		require.NoError(t, err)
	}

	const kills = 10
	for i := range kills {
		p := b.startProc(t, "workflow", i)
		time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond)
		p.kill()
	}
	last := b.startProc(t, "workflow", kills)
	for _, id := range ids {
		st := waitDone(t, flow, id)
		require.Equal(t, pg.StatusSucceeded, st.Status, "workflow %s: %s", id, st.Error)
		require.Equal(t, pgtest.Steps, st.Attrs.Trace, "workflow %s: each step's attributes saved once", id)
		require.Equal(t, "ch_"+id+":charge", st.Attrs.ChargeID)
		require.Len(t, st.Jobs, pgtest.Children)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return b.outboxLen(t) == 0 }, "the outbox to drain")
	var receipts int
	testutil.Eventually(t, 30*time.Second, func() bool {
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(DISTINCT jid) FROM job_runs WHERE kind = $1`, pgtest.ReceiptKind).Scan(&receipts))
		return receipts == workflows
	}, "every receipt to run")
	last.stop()

	count := func(sql string, args ...any) int {
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, sql, args...).Scan(&n))
		return n
	}
	require.Zero(t, count(`SELECT count(*) FROM violations`), "a step ran again after it committed")
	require.Equal(t, workflows*len(pgtest.Steps), count(`SELECT count(*) FROM step_done`))
	require.Equal(t, workflows, count(`SELECT count(*) FROM ext_calls`), "one charge key per workflow")
	require.Equal(t, workflows*pgtest.Children, count(`SELECT count(DISTINCT jid) FROM job_runs WHERE kind = $1`, pgtest.ChildKind))
	t.Logf("%d kills; %d step runs for %d steps committed; %d charges re-sent with their idempotency key; %d child runs for %d children",
		kills, count(`SELECT count(*) FROM step_runs`), workflows*len(pgtest.Steps),
		count(`SELECT coalesce(sum(calls - 1), 0) FROM ext_calls`),
		count(`SELECT count(*) FROM job_runs WHERE kind = $1`, pgtest.ChildKind), workflows*pgtest.Children)
}
