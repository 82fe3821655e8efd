package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/runner"
	"github.com/iterjob/iterjob/shutdown"
)

// Once a runner has stopped, its own controller's shutdown timeout no
// longer runs: it would fire 25 s later and log a hard stop while other
// runners own the jobs. (That a finished controller never hard-stops, even
// if its timer fires, is tested in package shutdown with a fake timer.)
func TestRunnerEndsItsOwnShutdownDeadlineWhenStopped(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	b := setup(t, r)
	runner.RegisterIterable(b.reg, "count", newRecorder(), nil)

	t.Run("Stop", func(t *testing.T) {
		run := b.start(t, nil)
		sd := run.Shutdown()
		stopRunner(t, run)
		_, pending := sd.Deadline()
		require.False(t, pending, "no deadline left after the runner stopped")
		require.Equal(t, shutdown.Stopping, sd.State(), "no hard stop")
	})

	t.Run("Run", func(t *testing.T) {
		run, err := runner.New(runner.Config{Redis: r.Client, Registry: b.reg, Namespace: r.Namespace, Logger: quiet})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- run.Run(ctx) }()
		// Stop through the controller, as a SIGTERM does.
		require.Eventually(t, func() bool { return registered(t, b, run.ProcessID()) }, 10*time.Second, 5*time.Millisecond)
		run.Shutdown().Stop()
		_, pending := run.Shutdown().Deadline()
		require.True(t, pending, "the timeout runs while the runner stops")
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return")
		}
		cancel()
		_, pending = run.Shutdown().Deadline()
		require.False(t, pending, "no deadline left once Run returned")
		require.Equal(t, shutdown.Stopping, run.Shutdown().State())
	})

	// A controller given in Config.Shutdown may be shared: the runner leaves
	// its deadline to its owner.
	t.Run("shared controller", func(t *testing.T) {
		sd, err := shutdown.New(shutdown.Config{Timeout: time.Hour})
		require.NoError(t, err)
		run := b.start(t, func(c *runner.Config) { c.Shutdown = sd })
		other := b.start(t, func(c *runner.Config) { c.Shutdown = sd })
		stopRunner(t, run)
		_, pending := sd.Deadline()
		require.True(t, pending, "another runner may still be stopping")
		stopRunner(t, other)
		sd.Finish()
		_, pending = sd.Deadline()
		require.False(t, pending)
	})
}

// registered reports whether process id heartbeats in b's namespace.
func registered(t *testing.T, b *bundle, id string) bool {
	ps, err := b.client.Processes(t.Context())
	if err != nil {
		return false
	}
	for _, p := range ps {
		if p.ID == id {
			return true
		}
	}
	return false
}
