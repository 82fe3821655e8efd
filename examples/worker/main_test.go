package main_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
)

// buf is a bytes.Buffer safe for a process's output and the test.
type buf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type worker struct {
	name string
	cmd  *exec.Cmd
	out  *buf
	done chan error
}

// The deployment shape, as real processes on a real Redis: three workers,
// jobs enqueued by the separate enqueuer, then a rolling deploy (one worker
// quieted with SIGTSTP then stopped with SIGTERM, another stopped with
// SIGTERM, each replaced by a new process) while reindex jobs and a
// periodic report every second run. Every document is indexed exactly once,
// every report tick runs once, every worker exits 0 on SIGTERM, and the
// enqueuer lists the schedule with its last tick.
func TestWorkerAndEnqueuerProcesses(t *testing.T) {
	t.Parallel()
	r := testutil.RealRedis(t)
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" {
		url = testutil.RedisURLDefault
	}
	ns := r.Namespace
	ctx := t.Context()
	t.Cleanup(func() {
		keys := []string{ns + ":reports"}
		for _, tenant := range []string{"a", "b", "c"} {
			keys = append(keys, ns+":index:"+tenant)
		}
		r.Client.Del(ctx, keys...)
	})

	dir := t.TempDir()
	build := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator),
		"github.com/iterjob/iterjob/examples/worker", "github.com/iterjob/iterjob/examples/enqueuer")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	env := append(os.Environ(), "REDIS_URL="+url, "ITERJOB_NAMESPACE="+ns)

	var all []*worker
	start := func(name string) *worker {
		w := &worker{name: name, out: &buf{}, done: make(chan error, 1)}
		w.cmd = exec.Command(filepath.Join(dir, "worker"))
		w.cmd.Env = append(env, "REPORT_SPEC=@every 1s", "ITEM_DELAY=1ms", "SHUTDOWN_TIMEOUT=10s", "CONCURRENCY=4")
		w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
		require.NoError(t, w.cmd.Start())
		go func() { w.done <- w.cmd.Wait() }()
		all = append(all, w)
		// Up, with its signal handlers in place.
		testutil.Eventually(t, 30*time.Second, func() bool { return strings.Contains(w.out.String(), "runner: started") }, "%s to start", name)
		return w
	}
	t.Cleanup(func() {
		for _, w := range all {
			_ = w.cmd.Process.Kill()
			if t.Failed() {
				t.Logf("--- %s output:\n%s", w.name, w.out.String())
			}
		}
	})
	exited := func(w *worker) {
		t.Helper()
		select {
		case err := <-w.done:
			require.NoError(t, err, "%s must exit 0 after SIGTERM", w.name)
			require.Contains(t, w.out.String(), "worker stopped")
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not exit within 30 s of SIGTERM", w.name)
		}
	}
	enqueuer := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, filepath.Join(dir, "enqueuer"), args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	hlen := func(key string) int64 {
		n, err := r.Client.HLen(ctx, key).Result()
		require.NoError(t, err)
		return n
	}

	// w1 starts alone, so that the reindex runs are its own when the
	// deploy reaches it (with all three workers up, another one may take
	// them all and the deploy interrupt none).
	w1 := start("w1")
	const docs = 3000
	for _, tenant := range []string{"a", "b", "c"} {
		require.Contains(t, enqueuer("reindex", tenant, fmt.Sprint(docs)), "enqueued reindex ")
	}
	testutil.Eventually(t, 60*time.Second, func() bool { return hlen(ns+":index:a") > 300 }, "reindex started")
	w2, w3 := start("w2"), start("w3")

	// Rolling deploy: w1 quiets first (as a preStop hook would), then stops.
	require.NoError(t, w1.cmd.Process.Signal(syscall.SIGTSTP))
	require.NoError(t, w1.cmd.Process.Signal(syscall.SIGTERM))
	exited(w1)
	start("w4")
	require.NoError(t, w2.cmd.Process.Signal(syscall.SIGTERM))
	exited(w2)
	w5 := start("w5")

	testutil.Eventually(t, 120*time.Second, func() bool {
		return hlen(ns+":index:a") == docs && hlen(ns+":index:b") == docs && hlen(ns+":index:c") == docs &&
			hlen(ns+":reports") >= 4
	}, "all documents indexed and four reports run")
	list := enqueuer("periodic")
	require.Contains(t, list, `report  "@every 1s"  kind=report`)
	require.Contains(t, list, "as periodic:report:")

	for _, w := range []*worker{w3, all[3], w5} {
		require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	}
	for _, w := range []*worker{w3, all[3], w5} {
		exited(w)
	}

	for _, tenant := range []string{"a", "b", "c"} {
		counts, err := r.Client.HGetAll(ctx, ns+":index:"+tenant).Result()
		require.NoError(t, err)
		for doc, n := range counts {
			require.Equal(t, "1", n, "tenant %s document %s indexed %s times", tenant, doc, n)
		}
	}
	reports, err := r.Client.HGetAll(ctx, ns+":reports").Result()
	require.NoError(t, err)
	for tick, n := range reports {
		require.True(t, strings.HasPrefix(tick, "periodic:report:"), tick)
		require.Equal(t, "1", n, "tick %s ran %s times", tick, n)
	}
	var interrupted bool
	for _, w := range all {
		interrupted = interrupted || strings.Contains(w.out.String(), "reason=interrupted")
	}
	require.True(t, interrupted, "the deploy interrupted a reindex run, which resumed elsewhere")
}
