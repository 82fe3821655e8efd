//go:build unix

package shutdown_test

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/shutdown"
)

// These tests send real signals to the test process. They are not parallel:
// Go runs them one after the other before any parallel test starts, so only
// one controller at a time listens. Each installs its handler before the
// first signal, so the process is neither suspended (SIGTSTP) nor ended
// (SIGTERM, SIGINT).

func kill(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, syscall.Kill(os.Getpid(), sig))
}

func TestSignalTSTPQuiets(t *testing.T) {
	b := setup(t, shutdown.Config{})
	stop := b.ctl.HandleSignals(t.Context())
	defer stop()
	fetchCtx, cancelFetch := b.ctl.FetchContext(t.Context())
	defer cancelFetch()

	kill(t, syscall.SIGTSTP)
	waitClosed(t, b.ctl.Reached(shutdown.Quiet), "quiet on SIGTSTP")
	require.Equal(t, shutdown.Quiet, b.ctl.State())

	cause := context.Cause(fetchCtx)
	require.ErrorIs(t, cause, shutdown.ErrQuiet)
	require.EqualError(t, cause, "shutdown: quiet: SIGTSTP received")
	rec := b.log.waitFor(t, "shutdown: quiet")
	require.Equal(t, "signal", rec["cause"])
	require.Equal(t, "SIGTSTP", rec["signal"])

	// Signals are handled one after the other: once SIGTTIN's dump is
	// logged, everything SIGTSTP logged is there.
	kill(t, syscall.SIGTTIN)
	b.log.waitFor(t, "shutdown: goroutine dump")
	require.Empty(t, b.log.find("shutdown: signal changes nothing"), "SIGTSTP changed the state")

	// SIGTSTP again changes nothing, and says so.
	kill(t, syscall.SIGTSTP)
	rec = b.log.waitFor(t, "shutdown: signal changes nothing")
	require.Equal(t, "SIGTSTP", rec["signal"])
	require.Equal(t, "quiet", rec["state"])
	require.Equal(t, shutdown.Quiet, b.ctl.State())
}

func TestSignalTermStopsThenSecondSignalHardStops(t *testing.T) {
	for _, tc := range []struct {
		name          string
		first, second syscall.Signal
	}{
		{"SIGTERM twice", syscall.SIGTERM, syscall.SIGTERM},
		{"SIGINT twice", syscall.SIGINT, syscall.SIGINT},
		{"SIGTERM then SIGINT", syscall.SIGTERM, syscall.SIGINT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t, shutdown.Config{})
			stop := b.ctl.HandleSignals(t.Context())
			defer stop()
			workCtx, cancelWork := b.ctl.WorkContext(t.Context())
			defer cancelWork()

			kill(t, tc.first)
			waitClosed(t, b.ctl.Reached(shutdown.Stopping), "stopping on the first signal")
			require.Equal(t, shutdown.Stopping, b.ctl.State(), "one signal does not hard-stop")
			require.NoError(t, workCtx.Err())
			rec := b.log.waitFor(t, "shutdown: stopping")
			require.Equal(t, "signal", rec["cause"])
			require.Equal(t, sigName(tc.first), rec["signal"])

			kill(t, tc.second)
			waitClosed(t, b.ctl.Reached(shutdown.HardStop), "hard stop on the second signal")
			cause := context.Cause(workCtx)
			require.ErrorIs(t, cause, shutdown.ErrHardStop)
			require.EqualError(t, cause, "shutdown: hard stop: "+sigName(tc.second)+" received while stopping")
			rec = b.log.waitFor(t, "shutdown: hard stop")
			require.Equal(t, "signal", rec["cause"])
			require.Equal(t, sigName(tc.second), rec["signal"])
		})
	}
}

func sigName(s syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT"}[s]
}

func TestSignalAfterQuietStopsAndAfterProgrammaticStopHardStops(t *testing.T) {
	b := setup(t, shutdown.Config{})
	stop := b.ctl.HandleSignals(t.Context())
	defer stop()

	b.ctl.Quiet()
	kill(t, syscall.SIGTERM)
	waitClosed(t, b.ctl.Reached(shutdown.Stopping), "stopping on SIGTERM while quiet")
	require.Equal(t, shutdown.Stopping, b.ctl.State(), "Quiet is not a first stop")

	stop()
	b2 := setup(t, shutdown.Config{})
	stop2 := b2.ctl.HandleSignals(t.Context())
	defer stop2()
	b2.ctl.Stop()
	kill(t, syscall.SIGTERM)
	waitClosed(t, b2.ctl.Reached(shutdown.HardStop), "SIGTERM while stopping by call")
	require.Equal(t, "signal", b2.log.waitFor(t, "shutdown: hard stop")["cause"])
}

func TestSignalTTINLogsGoroutineDump(t *testing.T) {
	b := setup(t, shutdown.Config{})
	stop := b.ctl.HandleSignals(t.Context())
	defer stop()

	kill(t, syscall.SIGTTIN)
	rec := b.log.waitFor(t, "shutdown: goroutine dump")
	require.Contains(t, rec["stacks"], "goroutine ")
	require.Contains(t, rec["stacks"], "shutdown_test.TestSignalTTINLogsGoroutineDump",
		"the dump holds every goroutine, the test's included")
	require.Equal(t, shutdown.Running, b.ctl.State(), "a dump changes no state")
}

// otherListener keeps the process alive across signals sent after the
// controller stopped listening, and tells when each one was delivered.
func otherListener(t *testing.T, sigs ...os.Signal) <-chan os.Signal {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, sigs...)
	t.Cleanup(func() { signal.Stop(ch) })
	return ch
}

func waitSignal(t *testing.T, ch <-chan os.Signal, want os.Signal) {
	t.Helper()
	select {
	case got := <-ch:
		require.Equal(t, want, got)
	case <-time.After(waitLimit):
		require.FailNow(t, "signal not delivered", "%v", want)
	}
}

func TestHandleSignalsStopUnregisters(t *testing.T) {
	other := otherListener(t, syscall.SIGTERM, syscall.SIGTSTP)
	b := setup(t, shutdown.Config{})
	stop := b.ctl.HandleSignals(t.Context())
	stop()
	stop() // twice is fine

	kill(t, syscall.SIGTSTP)
	waitSignal(t, other, syscall.SIGTSTP)
	kill(t, syscall.SIGTERM)
	waitSignal(t, other, syscall.SIGTERM)
	require.Equal(t, shutdown.Running, b.ctl.State(), "signals after stop are not the controller's")
}

func TestHandleSignalsEndsWithItsContext(t *testing.T) {
	other := otherListener(t, syscall.SIGTERM)
	b := setup(t, shutdown.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	stop := b.ctl.HandleSignals(ctx)
	defer stop()
	require.Equal(t, []any{"SIGTSTP", "SIGTERM", "SIGINT", "SIGTTIN"},
		b.log.waitFor(t, "shutdown: handling signals")["signals"])
	cancel()
	b.log.waitFor(t, "shutdown: signal handling ended") // without calling stop

	kill(t, syscall.SIGTERM)
	waitSignal(t, other, syscall.SIGTERM)
	require.Equal(t, shutdown.Running, b.ctl.State())
}

func TestHandleSignalsOneHandlerAtATime(t *testing.T) {
	b := setup(t, shutdown.Config{})
	stop := b.ctl.HandleSignals(t.Context())
	require.PanicsWithValue(t, "shutdown: HandleSignals called while a previous handler is installed",
		func() { b.ctl.HandleSignals(t.Context()) })
	stop()

	// Once stopped, a new handler may be installed, and it works.
	stop = b.ctl.HandleSignals(t.Context())
	defer stop()
	kill(t, syscall.SIGTERM)
	waitClosed(t, b.ctl.Reached(shutdown.Stopping), "stopping on SIGTERM")
	require.Equal(t, shutdown.Stopping, b.ctl.State(), "one SIGTERM, one handler: no hard stop")
}

// childEnv tells a re-executed test binary to play the child's part in
// TestHandleSignalsRestoresDefaultEffect.
const childEnv = "SHUTDOWN_TEST_CHILD"

// When the handler is gone, SIGTERM must end the process again: a worker
// whose runner returned must not become unkillable. The test runs a child
// copy of the test binary that installs and removes a handler, then sends
// itself SIGTERM, and checks that the child died of it.
func TestHandleSignalsRestoresDefaultEffect(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		b := setup(t, shutdown.Config{})
		stop := b.ctl.HandleSignals(context.Background())
		stop()
		kill(t, syscall.SIGTERM)
		// Reached only if SIGTERM did not end the process; the wait bounds
		// how long a broken handler takes to fail, it is not a guess.
		<-time.After(waitLimit)
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHandleSignalsRestoresDefaultEffect$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the child survived SIGTERM:\n%s", out)
	status, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, status.Signaled(), "the child exited by itself (%v):\n%s", err, out)
	require.Equal(t, syscall.SIGTERM, status.Signal())
}
