package crashtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
)

// workerBin is the worker program, built once by TestMain.
var workerBin string

// raceWorker says whether the worker is built with the race detector.
const raceWorker = true

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "crashtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		os.Exit(1)
	}
	workerBin = filepath.Join(dir, "worker")
	args := []string{"build", "-o", workerBin}
	if raceWorker {
		args = append(args, "-race")
	}
	args = append(args, "github.com/iterjob/iterjob/internal/crashtest/worker")
	start := time.Now()
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "crashtest: go %s: %v\n%s", strings.Join(args, " "), err, out)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "crashtest: built the worker (race=%v) in %s\n", raceWorker, time.Since(start).Round(time.Millisecond))
	goleak.VerifyTestMain(m,
		// go-redis keeps a pool reaper per client; clients are closed by
		// t.Cleanup, after goleak's check for the package would run.
		goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
		goleak.Cleanup(func(int) { _ = os.RemoveAll(dir) }),
	)
}

// bundle is what a test works with: a Redis, its namespace, and clients on
// it.
type bundle struct {
	t     *testing.T
	url   string // the Redis URL workers connect to
	ns    string
	rdb   redis.UniversalClient
	keys  rdb.Keys
	queue *queue.Client
	store *cursor.RedisStore
	test  string // prefix of the keys the worker's jobs record into
	nproc int    // workers started so far, to name them
	// queues are the queues the workers work and the checks look at
	// (default: the default queue).
	queues []string
}

// setup returns a bundle on the real Redis, in a namespace of the test's
// own.
func setup(t *testing.T) *bundle {
	t.Helper()
	r := testutil.RealRedis(t)
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" {
		url = testutil.RedisURLDefault
	}
	return newBundle(t, url, r.Client, r.Namespace)
}

// setupCluster returns a bundle on the local Redis Cluster (see
// testutil.Cluster); workers reach it as "cluster:<addrs>".
func setupCluster(t *testing.T) *bundle {
	t.Helper()
	r := testutil.Cluster(t)
	return newBundle(t, "cluster:"+strings.Join(testutil.ClusterAddrs(), ","), r.Client, r.Namespace)
}

func newBundle(t *testing.T, url string, c redis.UniversalClient, ns string) *bundle {
	t.Helper()
	qc, err := queue.NewClient(c, queue.Config{Namespace: ns})
	require.NoError(t, err)
	st, err := cursor.NewRedisStore(c, cursor.RedisConfig{Namespace: ns})
	require.NoError(t, err)
	b := &bundle{
		t: t, url: url, ns: ns, rdb: c, keys: rdb.NewKeys(ns), queue: qc, store: st,
		test: "{" + ns + "}:crashtest:", queues: []string{queue.QueueDefault},
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("where the jobs are: %s", b.describe())
		}
	})
	return b
}

// describe says where the namespace's jobs are, for failure messages.
func (b *bundle) describe() string {
	ctx := context.Background()
	var sb strings.Builder
	for i, q := range b.queues {
		if i > 0 {
			sb.WriteString("; ")
		}
		if len(b.queues) > 1 {
			fmt.Fprintf(&sb, "queue %s: ", q)
		}
		fmt.Fprintf(&sb, "queued %d", b.rdb.LLen(ctx, b.keys.Q(q).Jobs()).Val())
		for _, set := range []string{"scheduled", "retry", "dead"} {
			fmt.Fprintf(&sb, ", %s %d", set, b.rdb.ZCard(ctx, b.keys.Q(q).Set(set)).Val())
		}
		inflight, _ := b.rdb.Keys(ctx, b.keys.Q(q).Inflight("*")).Result()
		for _, k := range inflight {
			ids := b.rdb.HKeys(ctx, k).Val()
			fmt.Fprintf(&sb, ", %d in flight in %s %v", len(ids), k, ids[:min(len(ids), 5)])
		}
	}
	procs := b.rdb.ZRangeWithScores(ctx, b.keys.Procs(), 0, -1).Val()
	for _, p := range procs {
		fmt.Fprintf(&sb, ", process %v (last beat %s ago)", p.Member, time.Since(time.UnixMilli(int64(p.Score))).Round(time.Millisecond))
	}
	fmt.Fprintf(&sb, ", %d distinct jobs completed", b.hlen(b.completionsKey()))
	return sb.String()
}

// Keys the worker's jobs record into (see worker/main.go).
func (b *bundle) itemsKey(jid string) string    { return b.test + "items:" + jid }
func (b *bundle) startsKey() string             { return b.test + "starts" }
func (b *bundle) startLogKey(jid string) string { return b.test + "start-log:" + jid }
func (b *bundle) completionsKey() string        { return b.test + "completions" }

// workerOpts are a worker's flags; zero fields take the worker's defaults.
type workerOpts struct {
	concurrency     int
	checkpoint      time.Duration
	heartbeat       time.Duration
	deadAfter       time.Duration
	shutdownTimeout time.Duration
	itemSleep       time.Duration
	maxRecoveries   int
	// retryRecords makes the iterable job retry its records while Redis is
	// down instead of failing the item.
	retryRecords bool
	// libraryRecovery runs the worker with the library's default
	// HeartbeatInterval and DeadAfter instead of the worker's short ones
	// (heartbeat and deadAfter must then be zero).
	libraryRecovery bool
	// clusterReload is a cluster client's ClusterStateReloadInterval (zero:
	// go-redis's default).
	clusterReload time.Duration
	// queues the worker works (nil: the bundle's).
	queues []string
	// hold makes startWorker return once the worker has connected to
	// Redis, before its runner starts: worker.release starts it.
	hold bool
}

// worker is one running worker process.
type worker struct {
	b      *bundle
	id     string // process id in Redis and Redis client name
	cmd    *exec.Cmd
	log    string // path of its log (stdout and stderr)
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
}

// startWorker starts a worker process and waits until it has registered in
// Redis, which it does after installing its signal handlers.
func (b *bundle) startWorker(o workerOpts) *worker {
	t := b.t
	t.Helper()
	b.nproc++
	id := fmt.Sprintf("%s-w%d", b.ns, b.nproc)
	// The URL goes in the environment: a password on the command line is
	// visible to every user of the machine.
	args := []string{"-ns", b.ns, "-process-id", id, "-records", b.test}
	qs := b.queues
	if o.queues != nil {
		qs = o.queues
	}
	if !slices.Equal(qs, []string{queue.QueueDefault}) {
		args = append(args, "-queues", strings.Join(qs, ","))
	}
	addDur := func(name string, d time.Duration) {
		if d != 0 {
			args = append(args, "-"+name, d.String())
		}
	}
	if o.concurrency != 0 {
		args = append(args, "-concurrency", strconv.Itoa(o.concurrency))
	}
	if o.retryRecords {
		args = append(args, "-retry-records")
	}
	if o.maxRecoveries != 0 {
		args = append(args, "-max-recoveries", strconv.Itoa(o.maxRecoveries))
	}
	addDur("checkpoint", o.checkpoint)
	addDur("heartbeat", o.heartbeat)
	addDur("dead-after", o.deadAfter)
	if o.libraryRecovery {
		require.Zero(t, o.heartbeat+o.deadAfter, "libraryRecovery takes the library's heartbeat and DeadAfter")
		args = append(args, "-heartbeat", "0s", "-dead-after", "0s")
	}
	addDur("shutdown-timeout", o.shutdownTimeout)
	addDur("item-sleep", o.itemSleep)
	addDur("cluster-reload", o.clusterReload)
	if o.hold {
		args = append(args, "-hold")
	}

	dir := os.Getenv("CRASHTEST_LOGDIR") // keep the logs there, to read after a failure
	if dir == "" {
		dir = t.TempDir()
	}
	logPath := filepath.Join(dir, id+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(workerBin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// The race detector sleeps a second at exit unless told not to.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", "REDIS_URL="+b.url)
	dieWithTest(cmd)
	require.NoError(t, cmd.Start())
	_ = f.Close()
	w := &worker{b: b, id: id, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		w.err = cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-w.exited:
		default:
			_ = cmd.Process.Kill()
			<-w.exited
		}
		if n := w.logCount("WARNING: DATA RACE"); n > 0 {
			t.Errorf("worker %s reported %d data races; see %s", id, n, w.log)
			w.dumpLog(200)
		} else if t.Failed() {
			w.dumpLog(40)
		}
	})
	if o.hold {
		testutil.Eventually(t, 20*time.Second, func() bool {
			w.requireRunning()
			return w.logCount("worker: holding until SIGUSR1") > 0
		}, "worker %s to connect", id)
		return w
	}
	w.waitRegistered()
	return w
}

// release starts the runner of a worker started with workerOpts.hold and
// waits until it has registered.
func (w *worker) release() {
	w.b.t.Helper()
	w.signal(syscall.SIGUSR1)
	w.waitRegistered()
}

// waitRegistered waits until the worker has registered in Redis.
func (w *worker) waitRegistered() {
	w.b.t.Helper()
	testutil.Eventually(w.b.t, 20*time.Second, func() bool {
		w.requireRunning()
		return w.b.rdb.ZScore(context.Background(), w.b.keys.Procs(), w.id).Err() == nil
	}, "worker %s to register", w.id)
}

// requireRunning fails the test if the worker has exited.
func (w *worker) requireRunning() {
	select {
	case <-w.exited:
		w.b.t.Fatalf("worker %s exited at start: %v\n%s", w.id, w.err, w.tail(30))
	default:
	}
}

// signal sends sig to the worker.
func (w *worker) signal(sig syscall.Signal) {
	w.b.t.Helper()
	require.NoError(w.b.t, w.cmd.Process.Signal(sig), "signal %v to worker %s", sig, w.id)
}

// alive reports whether the worker is still running.
func (w *worker) alive() bool {
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

// waitExit waits up to timeout for the worker to exit and returns how long
// that took.
func (w *worker) waitExit(timeout time.Duration) time.Duration {
	w.b.t.Helper()
	start := time.Now()
	select {
	case <-w.exited:
		return time.Since(start)
	case <-time.After(timeout):
		w.b.t.Fatalf("worker %s still running after %s\n%s", w.id, timeout, w.tail(30))
		return 0
	}
}

// requireCleanExit waits for the worker to exit and requires exit code 0.
func (w *worker) requireCleanExit(timeout time.Duration) time.Duration {
	w.b.t.Helper()
	d := w.waitExit(timeout)
	require.NoError(w.b.t, w.err, "worker %s exit status\n%s", w.id, w.tail(30))
	return d
}

// kill kills the worker with SIGKILL and waits until Redis has dropped all
// its connections, so that no command it sent is still to be executed.
func (w *worker) kill() {
	w.b.t.Helper()
	w.signal(syscall.SIGKILL)
	w.waitExit(10 * time.Second)
	var ee *exec.ExitError
	require.ErrorAs(w.b.t, w.err, &ee)
	require.Equal(w.b.t, "signal: killed", ee.Error())
	w.b.waitClientsGone(w.id)
}

// waitClientsGone waits until Redis lists no connection named name.
func (b *bundle) waitClientsGone(name string) {
	b.t.Helper()
	testutil.Eventually(b.t, 10*time.Second, func() bool {
		list, err := b.rdb.ClientList(context.Background()).Result()
		if err != nil {
			return false
		}
		for line := range strings.Lines(list) {
			if slices.Contains(strings.Fields(line), "name="+name) {
				return false
			}
		}
		return true
	}, "Redis to drop the connections of %s", name)
}

// tail returns the last n lines of the worker's log.
func (w *worker) tail(n int) string {
	data, err := os.ReadFile(w.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (w *worker) dumpLog(n int) {
	w.b.t.Logf("last %d log lines of worker %s:\n%s", n, w.id, w.tail(n))
}

// logCount counts the worker's log records that contain all of parts.
func (w *worker) logCount(parts ...string) int {
	f, err := os.Open(w.log)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		ok := true
		for _, p := range parts {
			if !bytes.Contains(sc.Bytes(), []byte(p)) {
				ok = false
				break
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// enqueue enqueues one job and returns its id.
func (b *bundle) enqueue(kind string, args any) string {
	b.t.Helper()
	res, err := b.queue.Enqueue(context.Background(), kind, args, nil)
	require.NoError(b.t, err)
	return res.Job.ID
}

// enqueuePlain enqueues n plain jobs that sleep sleepMS each.
func (b *bundle) enqueuePlain(n, sleepMS int) []string {
	b.t.Helper()
	params := make([]queue.Params, n)
	for i := range params {
		params[i] = queue.Params{Kind: "plain", Args: map[string]int{"sleep_ms": sleepMS}}
	}
	res, err := b.queue.EnqueueMany(context.Background(), params)
	require.NoError(b.t, err)
	ids := make([]string, n)
	for i, r := range res {
		ids[i] = r.Job.ID
	}
	return ids
}

// state returns an iterable job's saved state and its cursor (the next item;
// 0 before the first checkpoint).
func (b *bundle) state(jid string) (cursor.State, int64) {
	b.t.Helper()
	st, err := b.store.Load(context.Background(), jid)
	if errors.Is(err, cursor.ErrNotFound) {
		return st, 0
	}
	require.NoError(b.t, err)
	c, err := cursor.Decode[int64](st.Cursor)
	require.NoError(b.t, err)
	if c == nil {
		return st, 0
	}
	return st, *c
}

// status returns an iterable job's saved status, "" on any error (for
// polling).
func (b *bundle) status(jid string) cursor.Status {
	st, err := b.store.Load(context.Background(), jid)
	if err != nil {
		return ""
	}
	return st.Status
}

// itemCounts returns how many times each item of an iterable job was
// recorded.
func (b *bundle) itemCounts(jid string) map[int64]int64 {
	b.t.Helper()
	raw, err := b.rdb.HGetAll(context.Background(), b.itemsKey(jid)).Result()
	require.NoError(b.t, err)
	out := make(map[int64]int64, len(raw))
	for k, v := range raw {
		item, err := strconv.ParseInt(k, 10, 64)
		require.NoError(b.t, err)
		n, err := strconv.ParseInt(v, 10, 64)
		require.NoError(b.t, err)
		out[item] = n
	}
	return out
}

// itemsRecorded returns how many distinct items of jid were recorded, -1 on
// error (for polling).
func (b *bundle) itemsRecorded(jid string) int64 {
	n, err := b.rdb.HLen(context.Background(), b.itemsKey(jid)).Result()
	if err != nil {
		return -1
	}
	return n
}

// requireExactlyOnce requires items 0..n-1 each recorded exactly once and
// nothing else.
func (b *bundle) requireExactlyOnce(jid string, n int64) {
	b.t.Helper()
	counts := b.itemCounts(jid)
	var missing, repeated []int64
	for i := range n {
		switch c := counts[i]; {
		case c == 0:
			missing = append(missing, i)
		case c > 1:
			repeated = append(repeated, i)
		}
	}
	require.Empty(b.t, missing, "items never processed (%d)", len(missing))
	require.Empty(b.t, repeated, "items processed more than once (%d)", len(repeated))
	require.Len(b.t, counts, int(n), "items outside [0, %d) recorded", n)
}

// hashCounts reads a hash of job id -> count.
func (b *bundle) hashCounts(key string) map[string]int64 {
	b.t.Helper()
	raw, err := b.rdb.HGetAll(context.Background(), key).Result()
	require.NoError(b.t, err)
	out := make(map[string]int64, len(raw))
	for k, v := range raw {
		n, err := strconv.ParseInt(v, 10, 64)
		require.NoError(b.t, err)
		out[k] = n
	}
	return out
}

// hlen returns the length of a hash, -1 on error (for polling).
func (b *bundle) hlen(key string) int64 {
	n, err := b.rdb.HLen(context.Background(), key).Result()
	if err != nil {
		return -1
	}
	return n
}

// requireDrained requires that no job is left anywhere: not queued, not in
// flight in any process, not scheduled, retrying or dead.
func (b *bundle) requireDrained() {
	b.t.Helper()
	for _, q := range b.queues {
		b.requireQueueDrained(b.keys.Q(q))
	}
}

func (b *bundle) requireQueueDrained(qk rdb.QKeys) {
	b.t.Helper()
	ctx := context.Background()
	queued, err := b.rdb.LLen(ctx, qk.Jobs()).Result()
	require.NoError(b.t, err)
	require.Zero(b.t, queued, "jobs left in queue %s", qk.Name())
	for _, set := range []string{qk.Sched(), qk.Retry(), qk.Dead()} {
		n, err := b.rdb.ZCard(ctx, set).Result()
		require.NoError(b.t, err)
		if n > 0 {
			members, _ := b.rdb.ZRange(ctx, set, 0, 4).Result()
			var errs []string
			for _, m := range members {
				errs = append(errs, b.rdb.HGet(ctx, qk.Errors(), m).Val())
			}
			require.Zero(b.t, n, "jobs left in %s; first errors: %q", set, errs)
		}
	}
	inflight, err := b.rdb.Keys(ctx, qk.Inflight("*")).Result()
	require.NoError(b.t, err)
	for _, k := range inflight {
		n, err := b.rdb.HLen(ctx, k).Result()
		require.NoError(b.t, err)
		require.Zero(b.t, n, "jobs left in flight in %s", k)
	}
}

// redisServer is a redis-server of a test's own, persisting every write to
// an append-only file, or nothing.
type redisServer struct {
	t       *testing.T
	port    int
	dir     string
	persist bool
	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	log     bytes.Buffer
}

// startRedisServer starts a redis-server on a free loopback port that
// persists every write to an append-only file, or, unless persist is set,
// nothing (a restart then starts empty). It skips the test (fails it under
// CI) when redis-server is not installed.
func startRedisServer(t *testing.T, persist bool) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		msg := "crashtest: redis-server is not on the PATH (apt-get install redis-server)"
		if testutil.InCI() {
			t.Fatal(msg + "; CI=true: failing instead of skipping")
		}
		t.Skip(msg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	s := &redisServer{t: t, port: port, dir: t.TempDir(), persist: persist}
	s.start()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			s.mu.Lock()
			t.Logf("redis-server output:\n%s", s.log.String())
			s.mu.Unlock()
		}
	})
	return s
}

func (s *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

// start starts the server on its port and directory and waits until it
// answers.
func (s *redisServer) start() {
	s.t.Helper()
	args := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir, "--save", ""}
	if s.persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	s.cmd = exec.Command("redis-server", args...)
	s.cmd.Stdout, s.cmd.Stderr = &lockedWriter{s}, &lockedWriter{s}
	dieWithTest(s.cmd)
	require.NoError(s.t, s.cmd.Start())
	s.done = make(chan struct{})
	cmd, done := s.cmd, s.done
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port), MaxRetries: -1})
	defer c.Close()
	testutil.Eventually(s.t, 20*time.Second, func() bool {
		return c.Ping(context.Background()).Err() == nil
	}, "redis-server on port %d to answer", s.port)
}

// kill kills the server with SIGKILL and waits for it to exit.
func (s *redisServer) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

type lockedWriter struct{ s *redisServer }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.log.Write(p)
}

// proxy is a TCP proxy between workers and Redis that can lose the reply
// to one command, or cut every connection and refuse new ones for a while,
// at the moment a chosen command passes.
type proxy struct {
	t        *testing.T
	ln       net.Listener
	upstream string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	down   bool
	marker []byte      // the command to act on: the first request containing it
	action proxyAction // what to do with its reply
	acted  chan struct{}
	wg     sync.WaitGroup
}

type proxyAction int

const (
	// dropReply closes the connection instead of passing the reply on: the
	// command ran in Redis but the client never hears of it.
	dropReply proxyAction = iota + 1
	// downAfterReply passes the reply on, then cuts every connection and
	// refuses new ones until up is called.
	downAfterReply
)

// startProxy starts a proxy to the Redis at upstream (host:port).
func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{t: t, ln: ln, upstream: upstream, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		p.closeAll()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) url() string { return "redis://" + p.ln.Addr().String() + "/0" }

// arm makes the proxy apply action to the reply of the next request that
// contains marker; the returned channel is closed once it has.
func (p *proxy) arm(marker string, action proxyAction) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marker, p.action, p.acted = []byte(marker), action, make(chan struct{})
	return p.acted
}

// up ends an outage started by downAfterReply.
func (p *proxy) up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = client.Close()
			continue
		}
		if !p.track(client) || !p.track(server) {
			_ = client.Close()
			_ = server.Close()
			continue
		}
		var pending proxyAction // set by the request side, read by the reply side
		var pmu sync.Mutex
		p.wg.Go(func() { // requests
			defer p.untrack(client, server)
			buf := make([]byte, 64<<10)
			for {
				n, err := client.Read(buf)
				if n > 0 {
					p.mu.Lock()
					if p.marker != nil && bytes.Contains(buf[:n], p.marker) {
						pmu.Lock()
						pending = p.action
						pmu.Unlock()
						p.marker = nil
					}
					p.mu.Unlock()
					if _, werr := server.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		})
		p.wg.Go(func() { // replies
			defer p.untrack(client, server)
			buf := make([]byte, 64<<10)
			for {
				n, err := server.Read(buf)
				if n > 0 {
					pmu.Lock()
					act := pending
					pending = 0
					pmu.Unlock()
					switch act {
					case dropReply:
						close(p.acted)
						return
					case downAfterReply:
						_, _ = client.Write(buf[:n])
						p.mu.Lock()
						p.down = true
						p.mu.Unlock()
						p.closeAll()
						close(p.acted)
						return
					}
					if _, werr := client.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		})
	}
}

// strandedAfter is how long jobs may sit in flight, with no job completing
// and none waiting anywhere else, before waitCompleted calls them stranded.
// It is many heartbeats and more than the consumers' idle wake-up (2 s).
const strandedAfter = 5 * time.Second

// waitCompleted waits until jobs distinct jobs have completed. If progress
// stops while the only jobs left are in processes' in-flight hashes, it
// returns those jobs as stranded after strandedAfter instead.
func (b *bundle) waitCompleted(jobs int) (stranded []string) {
	b.t.Helper()
	deadline := time.Now().Add(waitLong)
	last, since := int64(-1), time.Now()
	for {
		done := b.hlen(b.completionsKey())
		if done == int64(jobs) {
			return nil
		}
		switch {
		case done != last:
			last, since = done, time.Now()
		case time.Since(since) > strandedAfter && b.onlyInFlight():
			return b.inFlight()
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out after %s waiting for %d jobs to complete; %s", waitLong, jobs, b.describe())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// onlyInFlight reports whether no job waits in a queue or a sorted set.
func (b *bundle) onlyInFlight() bool {
	ctx := context.Background()
	for _, q := range b.queues {
		qk := b.keys.Q(q)
		if b.rdb.LLen(ctx, qk.Jobs()).Val() != 0 {
			return false
		}
		for _, set := range []string{qk.Sched(), qk.Retry(), qk.Dead()} {
			if b.rdb.ZCard(ctx, set).Val() != 0 {
				return false
			}
		}
	}
	return true
}

// inFlight returns the ids of the jobs in every process's in-flight hash.
func (b *bundle) inFlight() []string {
	ctx := context.Background()
	var ids []string
	for _, q := range b.queues {
		keys, _ := b.rdb.Keys(ctx, b.keys.Q(q).Inflight("*")).Result()
		for _, k := range keys {
			ids = append(ids, b.rdb.HKeys(ctx, k).Val()...)
		}
	}
	return ids
}

// recoverStranded stops w gracefully and lets a new worker take over its
// jobs once w is presumed dead, and waits until all jobs have completed:
// stranded jobs are delayed, not lost.
func (b *bundle) recoverStranded(w *worker, opts workerOpts, jobs int) {
	b.t.Helper()
	w.signal(syscall.SIGTERM)
	w.requireCleanExit(stopTimeout)
	w2 := b.startWorker(opts)
	require.Empty(b.t, b.waitCompleted(jobs), "jobs stranded even after their worker exited")
	w2.signal(syscall.SIGTERM)
	w2.requireCleanExit(stopTimeout)
}
