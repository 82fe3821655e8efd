// Command soak runs iterjob for a long time while worker processes are
// killed with SIGKILL at random, then checks that nothing was lost.
//
// Four worker processes (this program, re-executed as children) serve two
// queues on a real Redis: 1,000,000 plain jobs, each setting its bit in a
// Redis bitmap, and 20 iterable jobs, each walking its own 50,000 rows of a
// PostgreSQL table and adding one to each row's hit count in batches of 100.
// Even-numbered iterable jobs commit each batch with its cursor
// (pg.TransactionalBatches: every row exactly once); odd-numbered ones are
// plain iterable jobs checkpointing to Redis every second (every row at least
// once, the rows after a killed run's last checkpoint twice). The jobs are
// enqueued at an even pace over the first 95 % of the run, so work is in
// flight whenever a kill lands.
//
// Every few seconds (-kill-every, randomised ±50 %) one worker is killed
// with SIGKILL and a new one takes its place. One worker (-spare 1) is never
// killed, so that its memory over the whole run shows whether a long-lived
// process grows. After -duration the kills stop and the program waits for the
// work to drain, stops the workers with SIGTERM and checks:
//
//   - every plain job ran (its bit is set), and how many ran twice;
//   - every iterable job completed, every row was processed, and rows of the
//     transactional jobs exactly once;
//   - nothing is left queued, scheduled, in the retry or dead set, or in
//     flight, and no process is still registered;
//
// and prints each worker process's resident memory (VmRSS) over time. It
// exits 1 if a check fails.
//
//	go run ./bench/soak                        # the full run: 10 minutes
//	go run ./bench/soak -duration 1m -jobs 100000 -rows 5000   # a short one
//
// It needs a Redis server (-redis, default $REDIS_URL, else
// redis://127.0.0.1:6379/0; "cluster:host:port,..." for a Redis Cluster) and
// PostgreSQL (-db, default $DATABASE_URL, else
// postgres://postgres@127.0.0.1:5432/test). It works in a namespace and a
// schema of its own and removes both at the end (-keep leaves them).
// Memory figures need Linux (/proc).
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/keyset"
	"github.com/iterjob/iterjob/internal/exampleutil"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/redact"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// The queues: plain jobs in one, iterable jobs in the other.
const (
	plainQueue = "plain"
	rowsQueue  = "rows"
	rowsBatch  = 100
)

// Job kinds.
const (
	kindPlain  = "soak-plain"
	kindRowsTx = "soak-rows-tx"
	kindRows   = "soak-rows"
)

// settings are what the parent passes to its worker children, as JSON in
// the environment.
type settings struct {
	Redis       string        `json:"redis"`
	DB          string        `json:"db"`
	Namespace   string        `json:"namespace"`
	Schema      string        `json:"schema"`
	Concurrency int           `json:"concurrency"`
	BatchPause  time.Duration `json:"batch_pause"`
}

func (s settings) doneKey() string { return "{" + s.Namespace + "-soak}:done" }
func (s settings) dupsKey() string { return "{" + s.Namespace + "-soak}:dups" }

// PlainArgs number a plain job.
type PlainArgs struct {
	I int64 `json:"i"`
}

// plainJob sets its job's bit in the done bitmap and counts the jobs whose
// bit was already set (they ran before).
type plainJob struct {
	rdb        redis.UniversalClient
	done, dups string
}

func (j plainJob) Perform(ctx context.Context, a PlainArgs) error {
	old, err := j.rdb.SetBit(ctx, j.done, a.I, 1).Result()
	if err != nil {
		return err
	}
	if old == 1 {
		return j.rdb.Incr(ctx, j.dups).Err()
	}
	return nil
}

// RowsArgs name the slice of the table an iterable job walks.
type RowsArgs struct {
	Job int `json:"job"`
}

// Row is a row of the soak table.
type Row struct {
	ID int64 `db:"id"`
}

// rowsJob walks its job's rows in id order and counts a hit on each. Its
// transactional form (EachBatchTx) runs under pg.TransactionalBatches.
type rowsJob struct {
	pool  *pgxpool.Pool
	pause time.Duration
}

func (j rowsJob) BuildEnumerator(ctx context.Context, a RowsArgs, c *keyset.Cursor) (enumerators.Enumerator[Row, keyset.Cursor], error) {
	return keyset.Rows(ctx, keyset.Config[Row]{
		DB: j.pool, Table: "rows", Columns: []string{"id"}, Key: []string{"id"},
		Filter: "job = $1", Args: []any{a.Job},
	}, c)
}

func (j rowsJob) EachBatchTx(ctx context.Context, tx pgx.Tx, _ RowsArgs, rows []Row) error {
	return hit(ctx, tx, rows, j.pause)
}

// plainRows is rowsJob as a plain iterable job over batches: each batch's
// update commits on its own, the cursor goes to Redis at checkpoints.
type plainRows struct{ rowsJob }

func (j plainRows) BuildEnumerator(ctx context.Context, a RowsArgs, c *keyset.Cursor) (enumerators.Enumerator[[]Row, keyset.Cursor], error) {
	e, err := j.rowsJob.BuildEnumerator(ctx, a, c)
	if err != nil {
		return nil, err
	}
	return enumerators.Batches(e, rowsBatch), nil
}

func (j plainRows) EachIteration(ctx context.Context, _ RowsArgs, rows []Row) error {
	return hit(ctx, j.pool, rows, j.pause)
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// hit adds one to each row's hit count. The pause stands for the work a
// real job would do per batch, so that the iterable jobs run long enough
// for kills to land in them.
func hit(ctx context.Context, db execer, rows []Row, pause time.Duration) error {
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	if _, err := db.Exec(ctx, `UPDATE rows SET hits = hits + 1 WHERE id = ANY($1)`, ids); err != nil {
		return err
	}
	select {
	case <-time.After(pause):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func main() {
	var o options
	flag.BoolVar(&o.child, "child", false, "run as a worker child process (used by the program itself)")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long workers are killed; the jobs are enqueued over the first 95 % of it")
	flag.IntVar(&o.procs, "procs", 4, "worker processes")
	flag.IntVar(&o.spare, "spare", 1, "workers never killed (their memory shows a long-lived process)")
	flag.IntVar(&o.jobs, "jobs", 1_000_000, "plain jobs")
	flag.IntVar(&o.iterable, "iterable", 20, "iterable jobs (even ones transactional, odd ones plain)")
	flag.IntVar(&o.rows, "rows", 50_000, "table rows per iterable job")
	flag.DurationVar(&o.killEvery, "kill-every", 3*time.Second, "mean time between kills (each gap is random within ±50 %)")
	flag.IntVar(&o.concurrency, "c", 10, "concurrency of each worker")
	flag.DurationVar(&o.batchPause, "batch-pause", 20*time.Millisecond, "work time per batch of 100 rows")
	flag.DurationVar(&o.drain, "drain", 5*time.Minute, "how long to wait for the work to drain after the kills stop")
	flag.DurationVar(&o.sample, "sample", 5*time.Second, "memory sampling interval")
	flag.DurationVar(&o.report, "report", 30*time.Second, "progress line interval")
	flag.Uint64Var(&o.seed, "seed", 0, "seed of the kill schedule (0: from the clock)")
	flag.StringVar(&o.redis, "redis", "", "Redis URL, or cluster:host:port,... (default $REDIS_URL, else redis://127.0.0.1:6379/0)")
	flag.StringVar(&o.db, "db", "", "PostgreSQL URL (default $DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test)")
	flag.BoolVar(&o.keep, "keep", false, "keep the Redis namespace and the PostgreSQL schema")
	flag.Parse()
	var err error
	if o.child {
		err = runChild()
	} else {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type options struct {
	child                                           bool
	duration, killEvery, batchPause, drain          time.Duration
	sample, report                                  time.Duration
	procs, spare, jobs, iterable, rows, concurrency int
	seed                                            uint64
	redis, db                                       string
	keep                                            bool
}

// dial connects to a Redis URL or to "cluster:host:port,...".
func dial(ctx context.Context, spec string, pool int) (redis.UniversalClient, error) {
	var c redis.UniversalClient
	if addrs, ok := strings.CutPrefix(spec, "cluster:"); ok {
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ","), PoolSize: pool})
	} else {
		opts, err := redis.ParseURL(spec)
		if err != nil {
			return nil, fmt.Errorf("redis URL %s: %w", redact.URL(spec), redact.Error(err, spec))
		}
		opts.PoolSize = pool
		c = redis.NewClient(opts)
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redis at %s: %w", redact.URL(spec), redact.Error(err, spec))
	}
	return c, nil
}

// runChild is a worker: one runner serving both queues until SIGTERM.
func runChild() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var s settings
	if err := json.Unmarshal([]byte(os.Getenv("SOAK_SETTINGS")), &s); err != nil {
		return fmt.Errorf("SOAK_SETTINGS: %w", err)
	}
	// Reaping the killed workers' jobs is logged as a warning: expected here.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	c, err := dial(ctx, s.Redis, 4*s.Concurrency)
	if err != nil {
		return err
	}
	defer c.Close()
	pool, err := exampleutil.ConnectSchema(ctx, s.DB, s.Schema)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows := rowsJob{pool: pool, pause: s.BatchPause}
	txRows, err := pg.TransactionalBatches(rows, rowsBatch, pg.TxConfig{Pool: pool, Schema: s.Schema})
	if err != nil {
		return err
	}
	reg := runner.NewRegistry()
	runner.Register(reg, kindPlain, plainJob{rdb: c, done: s.doneKey(), dups: s.dupsKey()}, nil)
	runner.RegisterIterable(reg, kindRowsTx, txRows, nil)
	runner.RegisterIterable(reg, kindRows, plainRows{rows}, nil)
	r, err := runner.New(runner.Config{
		Redis: c, Registry: reg, Namespace: s.Namespace, Logger: log, Concurrency: s.Concurrency,
		Queues: []queue.QueueWeight{{Name: plainQueue, Weight: 1}, {Name: rowsQueue, Weight: 1}},
		// Notice a killed worker within seconds (the defaults say 30 s) and
		// checkpoint every second (the default is 5 s).
		HeartbeatInterval: 500 * time.Millisecond, DeadAfter: 3 * time.Second,
		CheckpointInterval: time.Second,
	})
	if err != nil {
		return err
	}
	return exampleutil.RunWorker(ctx, r)
}

// proc is one worker process as the parent saw it.
type proc struct {
	slot    int
	pid     int
	child   *exampleutil.Child
	start   time.Time
	end     time.Time
	killed  bool
	samples []sample
}

type sample struct {
	at  time.Duration // since the soak began
	rss int64         // KiB
}

// soak is the parent's state.
type soak struct {
	o      options
	s      settings
	env    []string
	begin  time.Time
	rdb    redis.UniversalClient
	pool   *pgxpool.Pool
	client *queue.Client
	store  cursor.Store

	mu         sync.Mutex
	slots      []*proc
	procs      []*proc
	kills      int
	killedBusy int   // jobs in flight in the killed processes, as their last heartbeat said
	killedIter int   // kills of a process running an iterable job
	redisMem   int64 // Redis used_memory before the workers started
	enqueued   int
	iterIDs    []string
}

func run(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if o.redis == "" {
		o.redis = cmp.Or(os.Getenv("REDIS_URL"), "redis://127.0.0.1:6379/0")
	}
	if o.db == "" {
		o.db = cmp.Or(os.Getenv("DATABASE_URL"), "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	if o.spare >= o.procs {
		return errors.New("-spare must leave at least one worker to kill")
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	id := queue.NewID()[:8]
	s := settings{
		Redis: o.redis, DB: o.db, Namespace: "soak-" + id, Schema: "soak_" + id,
		Concurrency: o.concurrency, BatchPause: o.batchPause,
	}
	c, err := dial(ctx, o.redis, 32)
	if err != nil {
		return fmt.Errorf("%w (start one: redis-server --daemonize yes --port 6379 --save \"\", or pass -redis)", err)
	}
	defer c.Close()
	pool, err := exampleutil.ConnectSchema(ctx, o.db, s.Schema)
	if err != nil {
		return fmt.Errorf("PostgreSQL at %s: %w", redact.URL(o.db), redact.Error(err, o.db))
	}
	defer pool.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if _, err := pg.Migrate(ctx, pool, &pg.MigrateOpts{Schema: s.Schema, Logger: log}); err != nil {
		return fmt.Errorf("PostgreSQL at %s: %w", redact.URL(o.db), redact.Error(err, o.db))
	}
	if !o.keep {
		defer func() {
			_, _ = pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{s.Schema}.Sanitize()+" CASCADE")
			exampleutil.DeleteNamespace(c, s.Namespace)
			c.Del(context.Background(), s.doneKey(), s.dupsKey())
		}()
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE rows (id bigint PRIMARY KEY, job int NOT NULL, hits int NOT NULL DEFAULT 0)`); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `INSERT INTO rows (id, job) SELECT g, (g - 1) / $1 FROM generate_series(1, $2::bigint) g`,
		o.rows, int64(o.rows)*int64(o.iterable)); err != nil {
		return err
	}
	client, err := queue.NewClient(c, queue.Config{Namespace: s.Namespace, Logger: log})
	if err != nil {
		return err
	}
	store, err := cursor.NewRedisStore(c, cursor.RedisConfig{Namespace: s.Namespace})
	if err != nil {
		return err
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	w := &soak{
		o: o, s: s, env: append(os.Environ(), "SOAK_SETTINGS="+string(raw)), rdb: c, pool: pool,
		client: client, store: store, slots: make([]*proc, o.procs),
	}
	fmt.Printf("soak: %d worker processes (%d never killed), %d plain jobs, %d iterable jobs over %d PostgreSQL rows; a kill every %s (±50 %%) for %s; seed %d\n",
		o.procs, o.spare, o.jobs, o.iterable, o.rows*o.iterable, o.killEvery, o.duration, o.seed)
	fmt.Printf("      Redis %s namespace %s, PostgreSQL schema %s\n", redact.URL(o.redis), s.Namespace, s.Schema)
	w.redisMem, _ = usedMemory(ctx, c)
	w.begin = time.Now()
	for i := range o.procs {
		if err := w.startWorker(i); err != nil {
			return err
		}
	}
	defer w.stopWorkers()

	killCtx, stopKills := context.WithTimeout(ctx, o.duration)
	defer stopKills()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() { errc <- w.enqueue(killCtx) })
	wg.Go(func() { errc <- w.killLoop(killCtx) })
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sg sync.WaitGroup
	sg.Go(func() { w.sampleLoop(sampleCtx) })
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			stopSampling()
			sg.Wait()
			return err
		}
	}
	if ctx.Err() != nil {
		stopSampling()
		sg.Wait()
		return ctx.Err()
	}
	fmt.Printf("%s  kills stop; waiting up to %s for the work to drain\n", w.elapsed(), o.drain)
	drained := w.waitDrained(ctx)
	stopSampling()
	sg.Wait()
	w.stopWorkers()
	return w.check(ctx, drained)
}

func (w *soak) elapsed() string {
	return fmt.Sprintf("[%s]", time.Since(w.begin).Round(time.Second))
}

// startWorker starts a worker process in slot i.
func (w *soak) startWorker(i int) error {
	ch, err := exampleutil.StartChild(i+1, w.env)
	if err != nil {
		return err
	}
	select {
	case <-ch.Exited:
		return fmt.Errorf("worker %d exited at start: %v", i+1, ch.Cmd.ProcessState)
	default:
	}
	p := &proc{slot: i, pid: ch.Cmd.Process.Pid, child: ch, start: time.Now()}
	w.mu.Lock()
	w.slots[i] = p
	w.procs = append(w.procs, p)
	w.mu.Unlock()
	return nil
}

// stopWorkers stops every live worker with SIGTERM and waits for it.
func (w *soak) stopWorkers() {
	w.mu.Lock()
	live := slices.Clone(w.slots)
	w.mu.Unlock()
	for _, p := range live {
		if p != nil && p.end.IsZero() {
			_ = p.child.Cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, p := range live {
		if p != nil && p.end.IsZero() {
			select {
			case <-p.child.Exited:
			case <-time.After(time.Minute):
				fmt.Printf("worker %d (pid %d) did not stop within a minute of SIGTERM; killing it\n", p.slot+1, p.pid)
				_ = p.child.Cmd.Process.Kill()
				<-p.child.Exited
			}
			w.mu.Lock()
			p.end = time.Now()
			w.mu.Unlock()
		}
	}
}

// enqueue adds the plain jobs in batches of 1,000 and the iterable jobs one
// at a time, both at an even pace over 95 % of the kill phase.
func (w *soak) enqueue(ctx context.Context) error {
	pace := w.o.duration * 95 / 100
	const batch = 1000
	batches := (w.o.jobs + batch - 1) / batch
	var next int64 // the next plain job's number
	nextIter := 0
	params := make([]queue.Params, 0, batch)
	opts := &queue.EnqueueOpts{Queue: plainQueue}
	for b := 0; b < batches || nextIter < w.o.iterable; {
		// The time each is due.
		dueB := time.Duration(int64(pace) * int64(b) / int64(max(batches, 1)))
		dueI := time.Duration(int64(pace) * int64(nextIter) / int64(max(w.o.iterable, 1)))
		plainNext := b < batches && (nextIter >= w.o.iterable || dueB <= dueI)
		due := dueI
		if plainNext {
			due = dueB
		}
		if wait := time.Until(w.begin.Add(due)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				// The kill phase ended before everything was enqueued:
				// enqueue the rest now, so the totals stay checkable.
			}
		}
		actx := context.WithoutCancel(ctx)
		if plainNext {
			params = params[:0]
			for range min(batch, w.o.jobs-int(next)) {
				params = append(params, queue.Params{Kind: kindPlain, Args: PlainArgs{I: next}, Opts: opts})
				next++
			}
			if err := retry(actx, func() error { _, err := w.client.EnqueueMany(actx, params); return err }); err != nil {
				return fmt.Errorf("enqueue plain jobs: %w", err)
			}
			w.mu.Lock()
			w.enqueued += len(params)
			w.mu.Unlock()
			b++
			continue
		}
		kind := kindRowsTx
		if nextIter%2 == 1 {
			kind = kindRows
		}
		var res *queue.Result
		if err := retry(actx, func() (err error) {
			res, err = w.client.Enqueue(actx, kind, RowsArgs{Job: nextIter}, &queue.EnqueueOpts{Queue: rowsQueue})
			return err
		}); err != nil {
			return fmt.Errorf("enqueue iterable job %d: %w", nextIter, err)
		}
		w.mu.Lock()
		w.iterIDs = append(w.iterIDs, res.Job.ID)
		w.mu.Unlock()
		nextIter++
	}
	return nil
}

// retry calls f until it succeeds, for up to a minute.
func retry(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killLoop kills a random worker (outside the spared slots) with SIGKILL at
// random intervals and starts a new one in its place.
func (w *soak) killLoop(ctx context.Context) error {
	rng := rand.New(rand.NewPCG(w.o.seed, 0x9e3779b97f4a7c15))
	for {
		gap := w.o.killEvery/2 + time.Duration(rng.Int64N(int64(w.o.killEvery)+1))
		select {
		case <-time.After(gap):
		case <-ctx.Done():
			return nil
		}
		slot := w.o.spare + rng.IntN(w.o.procs-w.o.spare)
		w.mu.Lock()
		p := w.slots[slot]
		w.mu.Unlock()
		busy, iter := w.busyOf(ctx, p.pid)
		_ = p.child.Cmd.Process.Kill()
		<-p.child.Exited
		w.mu.Lock()
		p.end, p.killed = time.Now(), true
		w.kills++
		w.killedBusy += busy
		if iter {
			w.killedIter++
		}
		w.mu.Unlock()
		if err := w.startWorker(slot); err != nil {
			return err
		}
	}
}

// busyOf returns how many jobs the process with pid was running at its
// last heartbeat, and whether one of them was iterable.
func (w *soak) busyOf(ctx context.Context, pid int) (int, bool) {
	ps, err := w.client.Processes(ctx)
	if err != nil {
		return 0, false
	}
	for _, p := range ps {
		if p.PID == pid {
			iter := slices.ContainsFunc(p.Busy, func(b jobtype.BusyJob) bool { return b.Iterable })
			return len(p.Busy), iter
		}
	}
	return 0, false
}

// sampleLoop records each live worker's resident memory and prints a
// progress line now and then.
func (w *soak) sampleLoop(ctx context.Context) {
	tick := time.NewTicker(w.o.sample)
	defer tick.Stop()
	lastReport := time.Now()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		at := time.Since(w.begin)
		w.mu.Lock()
		live := slices.Clone(w.slots)
		w.mu.Unlock()
		for _, p := range live {
			if p == nil {
				continue
			}
			if kb, err := rssKiB(p.pid); err == nil {
				w.mu.Lock()
				if p.end.IsZero() {
					p.samples = append(p.samples, sample{at: at, rss: kb})
				}
				w.mu.Unlock()
			}
		}
		if time.Since(lastReport) >= w.o.report {
			lastReport = time.Now()
			fmt.Println(w.progress(ctx))
		}
	}
}

// progress is a one-line summary of where the soak stands.
func (w *soak) progress(ctx context.Context) string {
	done, _ := w.rdb.BitCount(ctx, w.s.doneKey(), nil).Result()
	var rowsDone int64
	_ = w.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE hits > 0) FROM rows`).Scan(&rowsDone)
	w.mu.Lock()
	enq, kills, ids := w.enqueued, w.kills, slices.Clone(w.iterIDs)
	var mem []string
	for _, p := range w.slots {
		if p != nil && len(p.samples) > 0 {
			mem = append(mem, fmt.Sprintf("%.0f", float64(p.samples[len(p.samples)-1].rss)/1024))
		}
	}
	w.mu.Unlock()
	completed := 0
	for _, id := range ids {
		if st, err := w.store.Load(ctx, id); err == nil && st.Status == cursor.StatusCompleted {
			completed++
		}
	}
	var queued int64
	if qs, err := w.client.Queues(ctx); err == nil {
		for _, q := range qs {
			queued += q.Size
		}
	}
	return fmt.Sprintf("%s plain %d/%d done (%d enqueued, %d queued); iterable %d/%d done (%d enqueued); rows %d/%d; kills %d; worker RSS MiB %s",
		w.elapsed(), done, w.o.jobs, enq, queued, completed, w.o.iterable, len(ids), rowsDone, w.o.rows*w.o.iterable, kills, strings.Join(mem, " "))
}

// leftovers counts what is still queued, scheduled, retrying, dead or in
// flight, and the processes still registered.
type leftovers struct {
	queued, scheduled, retry, dead, inflight int64
	procs                                    int
}

func (l leftovers) zero() bool { return l == leftovers{} }

func (w *soak) leftovers(ctx context.Context) (leftovers, error) {
	var l leftovers
	qs, err := w.client.Queues(ctx)
	if err != nil {
		return l, err
	}
	for _, q := range qs {
		l.queued += q.Size
	}
	for set, n := range map[queue.Set]*int64{queue.SetScheduled: &l.scheduled, queue.SetRetry: &l.retry, queue.SetDead: &l.dead} {
		if *n, err = w.client.SetSize(ctx, set); err != nil {
			return l, err
		}
	}
	keys := rdb.NewKeys(w.s.Namespace)
	for _, q := range []string{plainQueue, rowsQueue} {
		n, err := countHashes(ctx, w.rdb, keys.Q(q).Inflight("*"))
		if err != nil {
			return l, err
		}
		l.inflight += n
	}
	ps, err := w.client.Processes(ctx)
	if err != nil {
		return l, err
	}
	l.procs = len(ps)
	return l, nil
}

// countHashes sums the sizes of the hashes whose names match pattern.
func countHashes(ctx context.Context, c redis.UniversalClient, pattern string) (int64, error) {
	var total int64
	err := exampleutil.EachServer(ctx, c, func(ctx context.Context, n *redis.Client) error {
		it := n.Scan(ctx, 0, pattern, 1000).Iterator()
		for it.Next(ctx) {
			total += n.HLen(ctx, it.Val()).Val()
		}
		return it.Err()
	})
	return total, err
}

// waitDrained waits until every job ran and nothing is left but the live
// workers, or until the drain time is up.
func (w *soak) waitDrained(ctx context.Context) bool {
	deadline := time.Now().Add(w.o.drain)
	last := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		done, _ := w.rdb.BitCount(ctx, w.s.doneKey(), nil).Result()
		l, err := w.leftovers(ctx)
		if err == nil && done == int64(w.o.jobs) && w.iterableCompleted(ctx) == w.o.iterable &&
			l.queued == 0 && l.scheduled == 0 && l.retry == 0 && l.dead == 0 && l.inflight == 0 && l.procs == w.o.procs {
			fmt.Printf("%s  drained\n", w.elapsed())
			return true
		}
		if time.Since(last) >= w.o.report {
			last = time.Now()
			fmt.Println(w.progress(ctx))
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("%s  not drained after %s\n", w.elapsed(), w.o.drain)
	return false
}

func (w *soak) iterableCompleted(ctx context.Context) int {
	w.mu.Lock()
	ids := slices.Clone(w.iterIDs)
	w.mu.Unlock()
	n := 0
	for _, id := range ids {
		if st, err := w.store.Load(ctx, id); err == nil && st.Status == cursor.StatusCompleted {
			n++
		}
	}
	return n
}

// check prints the totals and the memory of each worker process, and
// returns an error if something was lost or left behind.
func (w *soak) check(ctx context.Context, drained bool) error {
	var failures []string
	fail := func(format string, args ...any) { failures = append(failures, fmt.Sprintf(format, args...)) }
	if !drained {
		fail("the work did not drain within %s", w.o.drain)
	}
	done, err := w.rdb.BitCount(ctx, w.s.doneKey(), nil).Result()
	if err != nil {
		return err
	}
	dups, _ := w.rdb.Get(ctx, w.s.dupsKey()).Int64()
	_, total, err := w.client.Stats(ctx, 1)
	if err != nil {
		return err
	}
	fmt.Printf("\n== totals after %s (%d kills; the killed workers had %d jobs in flight at their last heartbeat; %d kills hit a worker running an iterable job)\n",
		time.Since(w.begin).Round(time.Second), w.kills, w.killedBusy, w.killedIter)
	fmt.Printf("plain jobs:    %d of %d ran, %d of them more than once; the stats count %d successes (every job acknowledged once), %d failures\n",
		done, w.o.jobs, dups, total.Processed, total.Failed)
	if done != int64(w.o.jobs) {
		fail("%d plain jobs never ran", int64(w.o.jobs)-done)
	}
	completed := w.iterableCompleted(ctx)
	var runs, interrupted int
	for _, id := range w.iterIDs {
		if st, err := w.store.Load(ctx, id); err == nil {
			runs += st.Executions
			interrupted += st.TimesInterrupted
		}
	}
	fmt.Printf("iterable jobs: %d of %d completed, in %d runs\n", completed, w.o.iterable, runs)
	if completed != w.o.iterable {
		fail("%d iterable jobs did not complete", w.o.iterable-completed)
	}
	for _, c := range []struct {
		name, parity string
		exact        bool
	}{{"transactional", "0", true}, {"plain", "1", false}} {
		var once, more, never, repeats int64
		if err := w.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE hits = 1), count(*) FILTER (WHERE hits > 1),
			count(*) FILTER (WHERE hits = 0), coalesce(sum(hits - 1) FILTER (WHERE hits > 1), 0)
			FROM rows WHERE job % 2 = `+c.parity).Scan(&once, &more, &never, &repeats); err != nil {
			return err
		}
		fmt.Printf("rows of %-13s iterable jobs: %d once, %d more than once (%d repeats), %d never\n", c.name, once, more, repeats, never)
		if never > 0 {
			fail("%d rows of %s jobs never processed", never, c.name)
		}
		if c.exact && more > 0 {
			fail("%d rows of transactional jobs processed more than once", more)
		}
	}
	l, err := w.leftovers(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("left behind:   %d queued, %d scheduled, %d retrying, %d dead, %d in flight, %d processes registered\n",
		l.queued, l.scheduled, l.retry, l.dead, l.inflight, l.procs)
	if !l.zero() {
		fail("jobs or processes left behind")
	}
	if mem, err := usedMemory(ctx, w.rdb); err == nil {
		fmt.Printf("Redis memory:  %.1f MiB before the workers started, %.1f MiB now (the server's used_memory, all its clients)\n",
			float64(w.redisMem)/(1<<20), float64(mem)/(1<<20))
	}
	w.printMemory()
	if len(failures) > 0 {
		return errors.New("FAILED: " + strings.Join(failures, "; "))
	}
	fmt.Println("\nOK: every job ran, every row was processed (transactional rows exactly once), nothing left in flight")
	return nil
}

// printMemory prints each worker process's resident memory: a timeline for
// the long-lived ones, and first/peak/last for the rest.
func (w *soak) printMemory() {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Printf("\n== worker memory (VmRSS, MiB), sampled every %s\n", w.o.sample)
	mib := func(kb int64) string { return fmt.Sprintf("%.1f", float64(kb)/1024) }
	var short []int64
	for _, p := range w.procs {
		if len(p.samples) == 0 {
			continue
		}
		life := p.end.Sub(p.start)
		how := "stopped"
		if p.killed {
			how = "killed"
		}
		if life < 2*time.Minute {
			short = append(short, p.samples[len(p.samples)-1].rss)
			continue
		}
		first, last, peak := p.samples[0].rss, p.samples[len(p.samples)-1].rss, int64(0)
		for _, s := range p.samples {
			peak = max(peak, s.rss)
		}
		// The first minute is start-up (pools, buffers) and is not growth.
		settled := first
		for _, s := range p.samples {
			if s.at-p.samples[0].at >= time.Minute {
				settled = s.rss
				break
			}
		}
		fmt.Printf("worker %d, pid %d, lived %s (%s): first %s, after 1 min %s, peak %s, last %s (%+.0f%% since 1 min)\n",
			p.slot+1, p.pid, life.Round(time.Second), how, mib(first), mib(settled), mib(peak), mib(last),
			100*float64(last-settled)/float64(settled))
		var line []string
		step := max(1, len(p.samples)/20)
		for i := 0; i < len(p.samples); i += step {
			s := p.samples[i]
			line = append(line, fmt.Sprintf("%s %s", s.at.Round(time.Second), mib(s.rss)))
		}
		fmt.Printf("  over time: %s\n", strings.Join(line, ", "))
	}
	if len(short) > 0 {
		slices.Sort(short)
		fmt.Printf("%d shorter-lived workers (under 2 min, sampled at least once): last RSS min %s, median %s, max %s\n",
			len(short), mib(short[0]), mib(short[len(short)/2]), mib(short[len(short)-1]))
	}
}

// usedMemory sums the used_memory of the servers c reaches (each primary of
// a cluster).
func usedMemory(ctx context.Context, c redis.UniversalClient) (int64, error) {
	var total int64
	err := exampleutil.EachServer(ctx, c, func(ctx context.Context, n *redis.Client) error {
		info, err := n.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		b, err := strconv.ParseInt(exampleutil.InfoValue(info, "used_memory"), 10, 64)
		total += b
		return err
	})
	return total, err
}

// rssKiB reads a process's resident set size from /proc.
func rssKiB(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}
