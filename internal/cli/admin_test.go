package cli_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/cli"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

type queueJSON struct {
	Name    string  `json:"name"`
	Size    int64   `json:"size"`
	Latency float64 `json:"latency_seconds"`
	Paused  bool    `json:"paused"`
}

type jobJSON struct {
	ID        string            `json:"id"`
	Kind      string            `json:"kind"`
	Queue     string            `json:"queue"`
	State     string            `json:"state"`
	Args      map[string]any    `json:"args"`
	Attempt   int               `json:"attempt"`
	At        *time.Time        `json:"at"`
	LastError *jobtype.JobError `json:"last_error"`
}

// stats, queues and jobs report what was enqueued, as tables and as JSON.
func TestListings(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		var ids []string
		for i := range 3 {
			ids = append(ids, b.enqueue(t, "mail", map[string]any{"to": "user" + string(rune('a'+i))}, &queue.EnqueueOpts{Queue: "mail"}))
		}
		later := b.enqueue(t, "report", nil, &queue.EnqueueOpts{In: time.Hour})

		var qs []queueJSON
		okJSON(t, r, &qs, "queues")
		require.Len(t, qs, 2) // mail, and default where the scheduled job goes
		require.Equal(t, "default", qs[0].Name)
		require.EqualValues(t, 0, qs[0].Size)
		require.Equal(t, "mail", qs[1].Name)
		require.EqualValues(t, 3, qs[1].Size)
		require.Positive(t, qs[1].Latency)
		require.False(t, qs[1].Paused)
		table := ok(t, r, "queues")
		require.Regexp(t, `(?m)^QUEUE\s+SIZE\s+LATENCY\s+PAUSED$`, table)
		require.Regexp(t, `(?m)^mail\s+3\s`, table)

		var st map[string]int64
		okJSON(t, r, &st, "stats")
		require.Equal(t, int64(3), st["enqueued"])
		require.Equal(t, int64(2), st["queues"])
		require.Equal(t, int64(1), st["scheduled"])
		require.Equal(t, int64(0), st["dead"])
		require.Regexp(t, `(?m)^Scheduled\s+1`, ok(t, r, "stats"))

		var jobs []jobJSON
		okJSON(t, r, &jobs, "jobs", "mail")
		require.Len(t, jobs, 3)
		require.Equal(t, ids[0], jobs[0].ID, "the next to run first")
		require.Equal(t, "mail", jobs[0].Kind)
		require.Equal(t, "usera", jobs[0].Args["to"])
		okJSON(t, r, &jobs, "jobs", "mail", "--offset", "1", "--limit", "1")
		require.Len(t, jobs, 1)
		require.Equal(t, ids[1], jobs[0].ID)

		okJSON(t, r, &jobs, "jobs", "scheduled")
		require.Len(t, jobs, 1)
		require.Equal(t, later, jobs[0].ID)
		require.NotNil(t, jobs[0].At)
		require.WithinDuration(t, time.Now().Add(time.Hour), *jobs[0].At, time.Minute)
		out := ok(t, r, "jobs", "scheduled")
		require.Contains(t, out, later)
		require.Contains(t, out, "DUE")
		require.Contains(t, ok(t, r, "jobs", "retry"), "(no jobs)")
	})
}

// once fails with SkipRetry (straight to the dead set) until ok is set.
type once struct{ ok *atomic.Bool }

func (o once) Perform(context.Context, struct{}) error {
	if !o.ok.Load() {
		return iterable.SkipRetry(errors.New("the api is down"))
	}
	return nil
}

// retry moves a dead job back to its queue, and it runs.
func TestRetryRunsADeadJob(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		var fixed atomic.Bool
		runner.Register(b.reg, "sync", once{&fixed}, nil)
		b.start(t, nil)
		id := b.enqueue(t, "sync", nil, nil)
		b.rec.wait(t, id, jobtype.EventDead)

		var dead []jobJSON
		okJSON(t, r, &dead, "jobs", "dead")
		require.Len(t, dead, 1)
		require.Equal(t, id, dead[0].ID)
		require.NotNil(t, dead[0].LastError)
		require.Equal(t, "iterable: skip retries: the api is down", dead[0].LastError.Message)
		table := ok(t, r, "jobs", "dead")
		require.Contains(t, table, "DIED")
		require.Contains(t, table, "the api is down")

		fixed.Store(true)
		var res map[string]string
		okJSON(t, r, &res, "retry", "dead", id)
		require.Equal(t, map[string]string{"action": "retry", "id": id, "from": "dead"}, res)
		b.rec.wait(t, id, jobtype.EventSucceeded)
		okJSON(t, r, &dead, "jobs", "dead")
		require.Empty(t, dead)

		// Gone from the dead set: retrying it again is an error naming it.
		again := run(t, r, "retry", "dead", id)
		require.Equal(t, cli.ExitError, again.code)
		require.Contains(t, again.stderr, "job "+id+" not found in the dead set")
	})
}

// pause stops runners fetching from a queue while another queue flows;
// resume lets the waiting job run.
func TestPauseAndResume(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		runner.Register(b.reg, "noop", noop{}, nil)
		require.Contains(t, ok(t, r, "pause", "slow"), "queue slow paused")
		b.start(t, func(c *runner.Config) {
			c.Queues = []queue.QueueWeight{{Name: "slow"}, {Name: "fast"}}
			c.StrictPriority = true // slow is looked at first, were it not paused
		})
		held := b.enqueue(t, "noop", nil, &queue.EnqueueOpts{Queue: "slow"})
		for range 3 {
			flowed := b.enqueue(t, "noop", nil, &queue.EnqueueOpts{Queue: "fast"})
			b.rec.wait(t, flowed, jobtype.EventSucceeded)
		}
		require.False(t, b.rec.has(held, jobtype.EventStarted))
		var qs []queueJSON
		okJSON(t, r, &qs, "queues")
		for _, q := range qs {
			if q.Name == "slow" {
				require.True(t, q.Paused)
				require.EqualValues(t, 1, q.Size)
			}
		}
		require.Regexp(t, `(?m)^slow\s+1\s+\S+\s+paused$`, ok(t, r, "queues"))

		require.Contains(t, ok(t, r, "resume", "slow"), "queue slow resumed")
		b.rec.wait(t, held, jobtype.EventSucceeded)
	})
}

// cancel stops a running iterable job, which ends cancelled.
func TestCancelARunningJob(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		started := make(chan struct{})
		var o sync.Once
		runner.RegisterIterable(b.reg, "endless", walk{n: 1 << 40, each: func(int64) {
			o.Do(func() { close(started) })
			time.Sleep(time.Millisecond)
		}}, nil)
		b.start(t, nil)
		id := b.enqueue(t, "endless", nil, nil)
		<-started
		testutil.Eventually(t, 10*time.Second, func() bool {
			var info struct{ State string }
			okJSON(t, r, &info, "job", id)
			return info.State == "running"
		}, "the job shows as running")

		out := ok(t, r, "cancel", id)
		require.Contains(t, out, "job "+id+" cancelled (it was running)")
		b.rec.wait(t, id, jobtype.EventCancelled)
		var info struct {
			State           string
			IterationStatus string `json:"iteration_status"`
			Progress        *jobtype.Progress
		}
		okJSON(t, r, &info, "job", id)
		require.Equal(t, "cancelled", info.IterationStatus)
		require.NotNil(t, info.Progress)
		require.Positive(t, info.Progress.ItemsProcessed)

		missing := run(t, r, "cancel", "no-such-job")
		require.Equal(t, cli.ExitError, missing.code)
		require.Contains(t, missing.stderr, "no-such-job")
	})
}

// kill moves a scheduled job to the dead set; delete removes jobs from a
// set and from a queue.
func TestKillAndDelete(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		later := b.enqueue(t, "report", nil, &queue.EnqueueOpts{In: time.Hour})
		queued := b.enqueue(t, "mail", nil, &queue.EnqueueOpts{Queue: "mail"})
		kept := b.enqueue(t, "mail", nil, &queue.EnqueueOpts{Queue: "mail"})

		require.Contains(t, ok(t, r, "kill", "scheduled", later), "moved from the scheduled set to the dead set")
		var jobs []jobJSON
		okJSON(t, r, &jobs, "jobs", "dead")
		require.Len(t, jobs, 1)
		require.Equal(t, later, jobs[0].ID)
		okJSON(t, r, &jobs, "jobs", "scheduled")
		require.Empty(t, jobs)

		ok(t, r, "delete", "dead", later)
		okJSON(t, r, &jobs, "jobs", "dead")
		require.Empty(t, jobs)

		require.Contains(t, ok(t, r, "delete", "mail", queued), "deleted from mail")
		okJSON(t, r, &jobs, "jobs", "mail")
		require.Len(t, jobs, 1)
		require.Equal(t, kept, jobs[0].ID)

		res := run(t, r, "kill", "dead", kept)
		require.Equal(t, cli.ExitUsage, res.code)
		res = run(t, r, "delete", "dead", kept)
		require.Equal(t, cli.ExitError, res.code)
		require.Contains(t, res.stderr, "not found in the dead set")
	})
}

// job shows an interrupted iterable job's progress as of its checkpoint.
func TestJobShowsProgress(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		reached, release := make(chan struct{}), make(chan struct{})
		runner.RegisterIterable(b.reg, "walk", walk{n: 10, each: func(i int64) {
			if i == 5 {
				close(reached)
				<-release
			}
		}}, nil)
		run1 := b.start(t, nil)
		id := b.enqueue(t, "walk", map[string]string{"tenant": "acme"}, &queue.EnqueueOpts{Meta: map[string]string{"user": "42"}})
		<-reached
		run1.Quiet()
		close(release)
		b.rec.wait(t, id, jobtype.EventInterrupted)
		stopRunner(t, run1)

		var info struct {
			State           string
			IterationStatus string `json:"iteration_status"`
			Job             *jobJSON
			Progress        *jobtype.Progress
		}
		okJSON(t, r, &info, "job", id)
		require.Equal(t, "queued", info.State)
		require.Equal(t, "interrupted", info.IterationStatus)
		require.Equal(t, "acme", info.Job.Args["tenant"])
		require.EqualValues(t, 6, info.Progress.ItemsProcessed)
		require.Equal(t, 1, info.Progress.TimesInterrupted)

		out := ok(t, r, "job", id)
		require.Regexp(t, `(?m)^State\s+queued$`, out)
		require.Regexp(t, `(?m)^Progress\s+6/10 items \(60\.0%\)`, out)
		require.Regexp(t, `(?m)^Meta\s+user=42$`, out)
		require.Regexp(t, `(?m)^Cursor\s+6$`, out)
		require.Contains(t, out, "interrupted 1 times")
	})
}

// Usage mistakes exit 2 with a message; help exits 0.
func TestUsage(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	for _, args := range [][]string{
		{}, {"bogus"}, {"jobs"}, {"job", "a", "b"}, {"retry", "later", "x"}, {"--nope", "stats"},
		{"stats", "--nope"}, {"jobs", "dead", "--limit", "0"}, {"jobs", "mail", "--queue", "x"},
	} {
		var out, errOut syncBuffer
		code := cli.Run(t.Context(), append([]string{"--redis", redisURL(t, r), "--namespace", r.Namespace}, args...), &out, &errOut)
		require.Equal(t, cli.ExitUsage, code, "iterjob %v", args)
		require.NotEmpty(t, errOut.String(), "iterjob %v explains", args)
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"help", "watch"}, {"jobs", "-h"}} {
		res := run(t, r, args...)
		require.Equal(t, cli.ExitOK, res.code, "iterjob %v", args)
		require.Contains(t, res.stdout, "Usage: iterjob", "iterjob %v", args)
	}
	require.Contains(t, run(t, r, "help", "watch").stdout, "-job ID")
	// Flags after the command and its arguments, and "--" before an id
	// that starts with a dash.
	res := run(t, r, "jobs", "dead", "--json", "--limit", "5")
	require.Equal(t, cli.ExitOK, res.code, res.stderr)
	require.Equal(t, "[]\n", res.stdout)
	res = run(t, r, "--json", "cancel", "--", "-odd")
	require.Equal(t, cli.ExitError, res.code)
	require.Contains(t, res.stderr, `"error":"job -odd not found`)
}

// A password in --redis never appears in output or errors: not on success,
// not when Redis refuses it, not when the URL does not parse, not in JSON.
func TestPasswordNeverPrinted(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-s3cret"
	check := func(t *testing.T, res result) {
		t.Helper()
		require.NotContains(t, res.stdout, secret)
		require.NotContains(t, res.stderr, secret)
	}
	mini := testutil.Miniredis(t)
	mini.Mini.RequireAuth(secret)
	good := "redis://:" + secret + "@" + mini.Mini.Addr() + "/0"
	bad := "redis://:wrong-" + secret + "@" + mini.Mini.Addr() + "/0"
	runURL := func(u string, args ...string) result {
		var out, errOut syncBuffer
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		code := cli.Run(ctx, append([]string{"--redis", u, "--namespace", mini.Namespace}, args...), &out, &errOut)
		return result{out.String(), errOut.String(), code}
	}
	res := runURL(good, "stats")
	require.Equal(t, cli.ExitOK, res.code, res.stderr)
	check(t, res)
	for _, json := range []bool{false, true} {
		args := []string{"stats"}
		if json {
			args = append(args, "--json")
		}
		res = runURL(bad, args...)
		require.Equal(t, cli.ExitError, res.code)
		require.Contains(t, res.stderr, "xxxxx", "the URL is shown masked")
		check(t, res)
		res = runURL("redis://:"+secret+"@"+mini.Mini.Addr()+":port/0", args...)
		require.Equal(t, cli.ExitError, res.code)
		check(t, res)
		res = runURL("redis://:"+secret+"@127.0.0.1:1/0", args...)
		require.Equal(t, cli.ExitError, res.code)
		check(t, res)
	}
	// watch prints the URL it watches, masked.
	ctx, cancel := context.WithCancel(t.Context())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, []string{"--redis", good, "--namespace", mini.Namespace, "watch", "--bars"}, &out, &errOut)
	}()
	testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "iterjob watch") }, "watch draws its header")
	cancel()
	require.Equal(t, cli.ExitOK, <-done)
	check(t, result{out.String(), errOut.String(), 0})
	require.Contains(t, out.String(), "redis://:xxxxx@")

	// And the PostgreSQL URL of migrate.
	res = runURL(good, "migrate", "--pg", "postgres://postgres:"+secret+"@127.0.0.1:1/test?connect_timeout=2")
	require.Equal(t, cli.ExitError, res.code)
	check(t, res)
	require.Contains(t, res.stderr, "postgres:xxxxx@")
}
