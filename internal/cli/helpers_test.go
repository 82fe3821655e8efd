package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/cli"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// Commands start subscriptions, servers and runners; every test stops what
// it starts.
func TestMain(m *testing.M) {
	redis.SetLogger(silent{}) // as cmd/iterjob does: no dial-retry noise
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
		goleak.IgnoreAnyFunction("github.com/alicebob/miniredis/v2/server.(*Server).servePeer"),
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
	)
}

var quiet = slog.New(slog.DiscardHandler)

type silent struct{}

func (silent) Printf(context.Context, string, ...any) {}

// syncBuffer is a bytes.Buffer safe to write from a command while a test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// redisURL is a URL for r's server. The command line takes one Redis URL,
// not a cluster's addresses: on the cluster t is skipped.
func redisURL(t testing.TB, r testutil.Redis) string {
	t.Helper()
	testutil.SingleOnly(t, r, "the command line takes one Redis URL")
	o := testutil.FreshOptions(r)
	u := url.URL{Scheme: "redis", Host: o.Addr, Path: fmt.Sprintf("/%d", o.DB)}
	if o.Password != "" {
		u.User = url.UserPassword(o.Username, o.Password)
	}
	return u.String()
}

// result is what one command run printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// run runs iterjob with the global flags for r, then args.
func run(t *testing.T, r testutil.Redis, args ...string) result {
	t.Helper()
	return runCtx(t.Context(), redisURL(t, r), r, args...)
}

func runCtx(ctx context.Context, url string, r testutil.Redis, args ...string) result {
	var out, errOut syncBuffer
	full := append([]string{"--redis", url, "--namespace", r.Namespace}, args...)
	code := cli.Run(ctx, full, &out, &errOut)
	return result{out.String(), errOut.String(), code}
}

// ok runs a command that must succeed and returns its stdout.
func ok(t *testing.T, r testutil.Redis, args ...string) string {
	t.Helper()
	res := run(t, r, args...)
	require.Equal(t, cli.ExitOK, res.code, "iterjob %v: stderr %s", args, res.stderr)
	return res.stdout
}

// okJSON runs a command with --json and decodes its output into v.
func okJSON(t *testing.T, r testutil.Redis, v any, args ...string) {
	t.Helper()
	out := ok(t, r, append(args, "--json")...)
	require.NoError(t, json.Unmarshal([]byte(out), v), "output: %s", out)
}

// recorder keeps the events a runner delivered in-process.
type recorder struct {
	mu     sync.Mutex
	all    []jobtype.Event
	change chan struct{}
}

func newRecorder() *recorder { return &recorder{change: make(chan struct{}, 1)} }

func (rec *recorder) handle(_ context.Context, ev jobtype.Event) {
	rec.mu.Lock()
	rec.all = append(rec.all, ev)
	rec.mu.Unlock()
	select {
	case rec.change <- struct{}{}:
	default:
	}
}

func (rec *recorder) has(id string, typ jobtype.EventType) bool {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, ev := range rec.all {
		if ev.JobID == id && ev.Type == typ {
			return true
		}
	}
	return false
}

func (rec *recorder) wait(t *testing.T, id string, typ jobtype.EventType) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for !rec.has(id, typ) {
		select {
		case <-rec.change:
		case <-timeout:
			t.Fatalf("no %s event for job %s", typ, id)
		}
	}
}

type bundle struct {
	r      testutil.Redis
	client *queue.Client
	reg    *runner.Registry
	rec    *recorder
}

func setup(t *testing.T, r testutil.Redis) *bundle {
	t.Helper()
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
	require.NoError(t, err)
	return &bundle{r: r, client: client, reg: runner.NewRegistry(), rec: newRecorder()}
}

// start starts a runner, stopped at cleanup.
func (b *bundle) start(t *testing.T, mod func(*runner.Config)) *runner.Runner {
	t.Helper()
	cfg := runner.Config{
		Redis: b.r.Client, Registry: b.reg, Namespace: b.r.Namespace, Logger: quiet,
		Concurrency: 2, CheckpointInterval: time.Hour, OnEvent: b.rec.handle, PublishEvents: true,
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
	t.Cleanup(func() { stopRunner(t, run) })
	return run
}

func stopRunner(t *testing.T, run *runner.Runner) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := run.Stop(ctx); err != nil && !errors.Is(err, runner.ErrNotStarted) {
		t.Errorf("stop runner: %v", err)
	}
}

func (b *bundle) enqueue(t *testing.T, kind string, args any, opts *queue.EnqueueOpts) string {
	t.Helper()
	res, err := b.client.Enqueue(t.Context(), kind, args, opts)
	require.NoError(t, err)
	return res.Job.ID
}

// walk iterates n items; each item calls each (if set) first.
type walk struct {
	n    int64
	each func(i int64)
}

func (w walk) BuildEnumerator(_ context.Context, _ struct{}, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(0, w.n, c), nil
}

func (w walk) EachIteration(_ context.Context, _ struct{}, i int64) error {
	if w.each != nil {
		w.each(i)
	}
	return nil
}

// noop is a plain job that succeeds.
type noop struct{}

func (noop) Perform(context.Context, struct{}) error { return nil }
