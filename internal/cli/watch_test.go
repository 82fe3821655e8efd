package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/cli"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// background runs a long-lived command until stop is called, which cancels
// it and returns its exit code.
type background struct {
	out, errOut syncBuffer
	cancel      context.CancelFunc
	done        chan int
}

func startCmd(t *testing.T, r testutil.Redis, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	bg := &background{cancel: cancel, done: make(chan int, 1)}
	url := redisURL(t, r)
	go func() {
		full := append([]string{"--redis", url, "--namespace", r.Namespace}, args...)
		bg.done <- cli.Run(ctx, full, &bg.out, &bg.errOut)
	}()
	t.Cleanup(func() { bg.stop() })
	return bg
}

func (bg *background) stop() int {
	bg.cancel()
	select {
	case code := <-bg.done:
		bg.done <- code
		return code
	case <-time.After(20 * time.Second):
		return -1
	}
}

func (bg *background) waitOut(t *testing.T, substr string) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, func() bool { return strings.Contains(bg.out.String(), substr) },
		"output contains %q; output:\n%s\nstderr:\n%s", substr, bg.out.String(), bg.errOut.String())
}

// slowWalk is an iterable job whose items take a millisecond, checkpointed
// every few milliseconds, so it reports progress several times.
func slowWalk(n int64) walk {
	return walk{n: n, each: func(int64) { time.Sleep(time.Millisecond) }}
}

// watch follows running iterable jobs from the events stream: plain lines
// when stdout is not a terminal, bars with --bars, JSON lines with --json.
func TestWatch(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		runner.RegisterIterable(b.reg, "import", slowWalk(200), nil)
		runner.Register(b.reg, "noop", noop{}, nil)

		plain := startCmd(t, r, "watch")
		bars := startCmd(t, r, "watch", "--bars")
		lines := startCmd(t, r, "watch", "--json")
		plain.waitOut(t, "no iterable job running yet")
		bars.waitOut(t, "iterjob watch")
		// Each command prints its first output once subscribed: nothing
		// below is missed.
		// --json prints only events: probe it with enqueued events until
		// one shows.
		pub, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet, PublishEvents: true})
		require.NoError(t, err)
		testutil.Eventually(t, 10*time.Second, func() bool {
			_, err := pub.Enqueue(t.Context(), "probe", nil, &queue.EnqueueOpts{Queue: "probe"})
			require.NoError(t, err)
			return strings.Contains(lines.out.String(), `"type":"enqueued"`)
		}, "watch --json is subscribed")
		b.start(t, func(c *runner.Config) { c.CheckpointInterval = 20 * time.Millisecond })
		plainID := b.enqueue(t, "noop", nil, nil)
		id := b.enqueue(t, "import", nil, nil)
		b.rec.wait(t, id, jobtype.EventSucceeded)
		b.rec.wait(t, plainID, jobtype.EventSucceeded)

		plain.waitOut(t, "succeeded")
		out := plain.out.String()
		require.Regexp(t, `checkpointed\s+import `+id+`\s+\d+/200 items \(\d+\.\d%\)`, out)
		require.Regexp(t, `succeeded\s+import `+id+`\s+200/200 items \(100\.0%\)`, out)
		require.NotContains(t, out, plainID, "plain jobs are not shown")
		require.NotContains(t, out, "\x1b[", "no escape sequences when stdout is not a terminal")

		bars.waitOut(t, "succeeded")
		drawn := bars.out.String()
		require.Contains(t, drawn, "\x1b[2K", "lines are cleared and redrawn")
		require.Regexp(t, `\x1b\[\d+A`, drawn, "the cursor moves up over the last drawing")
		require.Regexp(t, `import\s+\S+\s+\[#+\.*\]`, drawn)
		require.Contains(t, drawn, "["+strings.Repeat("#", 24)+"] 200/200 items (100.0%)")
		require.Contains(t, drawn, "1 running")

		lines.waitOut(t, `"type":"succeeded","jid":"`+id)
		var types []jobtype.EventType
		for l := range strings.Lines(lines.out.String()) {
			var ev jobtype.Event
			require.NoError(t, json.Unmarshal([]byte(l), &ev), "line %q", l)
			if ev.JobID == id {
				types = append(types, ev.Type)
			}
		}
		require.Equal(t, jobtype.EventStarted, types[0])
		require.Contains(t, types, jobtype.EventCheckpointed)
		require.Equal(t, jobtype.EventSucceeded, types[len(types)-1])

		for _, bg := range []*background{plain, bars, lines} {
			require.Equal(t, cli.ExitOK, bg.stop())
		}
	})
}

// watch --job follows one job and ends by itself when the job finishes.
func TestWatchOneJob(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		runner.RegisterIterable(b.reg, "import", slowWalk(100), nil)
		id := b.enqueue(t, "import", nil, nil)
		one := startCmd(t, r, "watch", "--job", id, "--plain")
		// Its first line, the job's state, comes once it is subscribed.
		one.waitOut(t, "queued")
		require.Regexp(t, `queued\s+import `+id, one.out.String())
		b.start(t, func(c *runner.Config) { c.CheckpointInterval = 20 * time.Millisecond })
		select {
		case code := <-one.done:
			one.done <- code
			require.Equal(t, cli.ExitOK, code, one.errOut.String())
		case <-time.After(20 * time.Second):
			t.Fatalf("watch --job did not end with its job; output:\n%s", one.out.String())
		}
		require.Regexp(t, `succeeded\s+import `+id+`\s+100/100 items`, one.out.String())

		// A job already finished: its last state, at once.
		res := run(t, r, "watch", "--job", id)
		require.Equal(t, cli.ExitOK, res.code, res.stderr)
		require.Regexp(t, `completed\s+\S*\s*`+id+`\s+100/100 items`, res.stdout)
		res = run(t, r, "watch", "--job", "nope")
		require.Equal(t, cli.ExitError, res.code)
	})
}

// metrics serves /metrics with queue gauges read from Redis and counters
// fed from the events stream.
func TestMetricsCommand(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		runner.Register(b.reg, "noop", noop{}, nil)
		for range 2 {
			b.enqueue(t, "mail", nil, &queue.EnqueueOpts{Queue: "mail"})
		}
		srv := startCmd(t, r, "metrics", "--listen", "127.0.0.1:0")
		srv.waitOut(t, "/metrics\n")
		u := regexp.MustCompile(`http://\S+/metrics`).FindString(srv.out.String())
		require.NotEmpty(t, u)
		scrape := func() string {
			resp, err := http.Get(u)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			return string(body)
		}
		body := scrape()
		require.Contains(t, body, `iterjob_queue_size{queue="mail"} 2`)
		require.Contains(t, body, "iterjob_redis_up 1")

		// Subscribed since before the first scrape answered; a job run by a
		// runner publishing events is counted.
		b.start(t, nil)
		id := b.enqueue(t, "noop", nil, nil)
		b.rec.wait(t, id, jobtype.EventSucceeded)
		testutil.Eventually(t, 10*time.Second, func() bool {
			return strings.Contains(scrape(), `iterjob_jobs_processed_total{kind="noop"} 1`)
		}, "the exporter counts the job")
		require.Equal(t, cli.ExitOK, srv.stop())
		require.Empty(t, srv.errOut.String())
	})
}

// migrate creates the PostgreSQL schema, then finds it up to date.
func TestMigrate(t *testing.T) {
	t.Parallel()
	pool := testutil.Postgres(t) // its schema is dropped at cleanup
	var schema string
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT current_schema()").Scan(&schema))
	r := testutil.Miniredis(t)
	var first struct {
		Schema  string
		Applied []int
	}
	okJSON(t, r, &first, "migrate", "--pg", testutil.DatabaseURL(), "--schema", schema)
	require.Equal(t, schema, first.Schema)
	require.NotEmpty(t, first.Applied)
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema).Scan(&n))
	require.Positive(t, n, "tables were created")
	require.Contains(t, ok(t, r, "migrate", "--pg", testutil.DatabaseURL(), "--schema", schema), "schema "+schema+" is up to date")
	res := run(t, r, "migrate")
	require.Equal(t, cli.ExitUsage, res.code, "no URL: usage")
}

var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "iterjob-cli-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "iterjob")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/iterjob/iterjob/cmd/iterjob").CombinedOutput()
	if err != nil {
		return "", &buildError{out: string(out), err: err}
	}
	return bin, nil
})

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// The built binary runs: its exit codes and output are Run's.
func TestBinary(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	bin, err := buildOnce()
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(bin)) })
	r := testutil.RealRedis(t)
	b := setup(t, r)
	b.enqueue(t, "mail", nil, &queue.EnqueueOpts{Queue: "mail"})

	cmd := exec.Command(bin, "--namespace", r.Namespace, "queues", "--json")
	cmd.Env = append(os.Environ(), "REDIS_URL="+redisURL(t, r))
	out, err := cmd.Output()
	require.NoError(t, err)
	var qs []queueJSON
	require.NoError(t, json.Unmarshal(out, &qs), "%s", out)
	require.Equal(t, []queueJSON{{Name: "mail", Size: 1, Latency: qs[0].Latency}}, qs)

	cmd = exec.Command(bin, "bogus")
	stderr, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, cli.ExitUsage, exit.ExitCode())
	require.Contains(t, string(stderr), `unknown command "bogus"`)

	cmd = exec.Command(bin, "--redis", "redis://:pa55word-x@127.0.0.1:1", "stats")
	stderr, err = cmd.CombinedOutput()
	require.ErrorAs(t, err, &exit)
	require.Equal(t, cli.ExitError, exit.ExitCode())
	require.Equal(t, "iterjob: redis at redis://:xxxxx@127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused\n", string(stderr),
		"one line, masked, and no go-redis log lines")
}
