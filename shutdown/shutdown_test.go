package shutdown_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/shutdown"
)

func TestNewAppliesDefaults(t *testing.T) {
	t.Parallel()
	ctl, err := shutdown.New(shutdown.Config{})
	require.NoError(t, err)
	require.Equal(t, shutdown.TimeoutDefault, ctl.Timeout())
	require.Equal(t, 25*time.Second, ctl.Timeout())
	require.Equal(t, shutdown.Running, ctl.State())
	require.Equal(t, [3]bool{}, reached(ctl), "no state reached yet")

	ctl, err = shutdown.New(shutdown.Config{Timeout: time.Second})
	require.NoError(t, err)
	require.Equal(t, time.Second, ctl.Timeout())

	// The nil logger discards: transitions must not panic on it.
	require.True(t, ctl.Quiet())
}

func TestNewRejectsNegativeTimeout(t *testing.T) {
	t.Parallel()
	ctl, err := shutdown.New(shutdown.Config{Timeout: -time.Second})
	require.ErrorIs(t, err, shutdown.ErrInvalidConfig)
	require.ErrorContains(t, err, "shutdown: invalid config: Timeout -1s is negative")
	require.Nil(t, ctl)
}

func TestStateString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "running", shutdown.Running.String())
	require.Equal(t, "quiet", shutdown.Quiet.String())
	require.Equal(t, "stopping", shutdown.Stopping.String())
	require.Equal(t, "hard_stop", shutdown.HardStop.String())
	require.Equal(t, "State(9)", shutdown.State(9).String())
	require.Less(t, shutdown.Running, shutdown.Quiet)
	require.Less(t, shutdown.Quiet, shutdown.Stopping)
	require.Less(t, shutdown.Stopping, shutdown.HardStop)
}

func TestTransitionsOnlyMoveForward(t *testing.T) {
	t.Parallel()
	type step struct {
		call    string
		changed bool
		state   shutdown.State
		reached [3]bool // Quiet, Stopping, HardStop channels closed
	}
	cases := map[string][]step{
		"one at a time": {
			{"quiet", true, shutdown.Quiet, [3]bool{true, false, false}},
			{"quiet", false, shutdown.Quiet, [3]bool{true, false, false}},
			{"stop", true, shutdown.Stopping, [3]bool{true, true, false}},
			{"stop", false, shutdown.Stopping, [3]bool{true, true, false}},
			{"quiet", false, shutdown.Stopping, [3]bool{true, true, false}},
			{"hard", true, shutdown.HardStop, [3]bool{true, true, true}},
			{"hard", false, shutdown.HardStop, [3]bool{true, true, true}},
			{"stop", false, shutdown.HardStop, [3]bool{true, true, true}},
			{"quiet", false, shutdown.HardStop, [3]bool{true, true, true}},
		},
		"stop skips quiet": {
			{"stop", true, shutdown.Stopping, [3]bool{true, true, false}},
			{"quiet", false, shutdown.Stopping, [3]bool{true, true, false}},
		},
		"hard stop skips everything": {
			{"hard", true, shutdown.HardStop, [3]bool{true, true, true}},
			{"quiet", false, shutdown.HardStop, [3]bool{true, true, true}},
			{"stop", false, shutdown.HardStop, [3]bool{true, true, true}},
		},
		"quiet then hard stop": {
			{"quiet", true, shutdown.Quiet, [3]bool{true, false, false}},
			{"hard", true, shutdown.HardStop, [3]bool{true, true, true}},
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, shutdown.Config{})
			for i, s := range steps {
				var changed bool
				switch s.call {
				case "quiet":
					changed = b.ctl.Quiet()
				case "stop":
					changed = b.ctl.Stop()
				case "hard":
					changed = b.ctl.HardStop()
				}
				require.Equal(t, s.changed, changed, "step %d (%s): changed", i, s.call)
				require.Equal(t, s.state, b.ctl.State(), "step %d (%s): state", i, s.call)
				require.Equal(t, s.reached, reached(b.ctl), "step %d (%s): channels", i, s.call)
			}
		})
	}
}

func TestReachedReturnsTheSameChannel(t *testing.T) {
	t.Parallel()
	b := setup(t, shutdown.Config{})
	ch := b.ctl.Reached(shutdown.Stopping)
	require.Equal(t, ch, b.ctl.Reached(shutdown.Stopping))
	b.ctl.Stop()
	require.True(t, isClosed(ch), "a channel taken before the move is closed by it")
}

func TestReachedAndContextUntilRejectRunningAndUnknownStates(t *testing.T) {
	t.Parallel()
	b := setup(t, shutdown.Config{})
	for _, s := range []shutdown.State{shutdown.Running, shutdown.State(-1), shutdown.State(4)} {
		require.PanicsWithValue(t,
			"shutdown: Reached("+s.String()+"): the state must be Quiet, Stopping or HardStop",
			func() { b.ctl.Reached(s) })
		require.Panics(t, func() { b.ctl.ContextUntil(t.Context(), s) })
	}
}

func TestFetchAndWorkContexts(t *testing.T) {
	t.Parallel()
	b := setup(t, shutdown.Config{})
	fetchCtx, cancelFetch := b.ctl.FetchContext(t.Context())
	defer cancelFetch()
	stopCtx, cancelStop := b.ctl.ContextUntil(t.Context(), shutdown.Stopping)
	defer cancelStop()
	workCtx, cancelWork := b.ctl.WorkContext(t.Context())
	defer cancelWork()

	require.NoError(t, fetchCtx.Err())

	b.ctl.Quiet()
	// Cancelled by the time Quiet returns: no goroutine in between.
	require.ErrorIs(t, fetchCtx.Err(), context.Canceled)
	require.Equal(t, shutdown.ErrQuiet, context.Cause(fetchCtx))
	require.NoError(t, stopCtx.Err())
	require.NoError(t, workCtx.Err(), "work goes on while quiet")

	b.ctl.Stop()
	require.Equal(t, shutdown.ErrStopping, context.Cause(stopCtx))
	require.NoError(t, workCtx.Err(), "work goes on while stopping")
	require.Equal(t, shutdown.ErrQuiet, context.Cause(fetchCtx), "a cause never changes")

	b.ctl.HardStop()
	require.ErrorIs(t, workCtx.Err(), context.Canceled)
	require.Equal(t, shutdown.ErrHardStop, context.Cause(workCtx))
}

func TestContextsCreatedLateAreAlreadyCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t, shutdown.Config{})
	b.ctl.Quiet()
	b.ctl.Stop()

	fetchCtx, cancelFetch := b.ctl.FetchContext(t.Context())
	defer cancelFetch()
	require.Equal(t, shutdown.ErrQuiet, context.Cause(fetchCtx), "the cause of the move that reached Quiet")
	stopCtx, cancelStop := b.ctl.ContextUntil(t.Context(), shutdown.Stopping)
	defer cancelStop()
	require.Equal(t, shutdown.ErrStopping, context.Cause(stopCtx))
	workCtx, cancelWork := b.ctl.WorkContext(t.Context())
	defer cancelWork()
	require.NoError(t, workCtx.Err())
}

func TestSkippedStatesTakeTheCauseOfTheMove(t *testing.T) {
	t.Parallel()
	b := setup(t, shutdown.Config{})
	early, cancelEarly := b.ctl.FetchContext(t.Context())
	defer cancelEarly()
	b.ctl.HardStop()
	late, cancelLate := b.ctl.FetchContext(t.Context())
	defer cancelLate()
	require.Equal(t, shutdown.ErrHardStop, context.Cause(early))
	require.Equal(t, shutdown.ErrHardStop, context.Cause(late))
}

func TestContextEndsWithParentCause(t *testing.T) {
	t.Parallel()
	b := setup(t, shutdown.Config{})
	errParent := errors.New("parent gone")
	parent, cancelParent := context.WithCancelCause(t.Context())
	workCtx, cancelWork := b.ctl.WorkContext(parent)
	defer cancelWork()

	cancelParent(errParent)
	require.Equal(t, errParent, context.Cause(workCtx))
	b.ctl.HardStop()
	require.Equal(t, errParent, context.Cause(workCtx), "the first cause stays")
}

func TestContextCancelFunc(t *testing.T) {
	t.Parallel()
	b := setup(t, shutdown.Config{})
	fetchCtx, cancelFetch := b.ctl.FetchContext(t.Context())
	cancelFetch()
	require.Equal(t, context.Canceled, context.Cause(fetchCtx))
	b.ctl.Quiet()
	require.Equal(t, context.Canceled, context.Cause(fetchCtx))
	cancelFetch() // twice is fine

	// The cancel func of a context returned already cancelled is valid too.
	late, cancelLate := b.ctl.FetchContext(t.Context())
	cancelLate()
	require.Equal(t, shutdown.ErrQuiet, context.Cause(late))
}

func TestStopIsIdempotentAndDoesNotEscalate(t *testing.T) {
	t.Parallel()
	b := setup(t, shutdown.Config{})
	require.True(t, b.ctl.Stop())
	require.False(t, b.ctl.Stop())
	require.False(t, b.ctl.Stop())
	require.Equal(t, shutdown.Stopping, b.ctl.State())
	require.False(t, isClosed(b.ctl.Reached(shutdown.HardStop)))
	require.Len(t, b.log.find("shutdown: stopping"), 1, "logged once")
}

func TestStopHardStopsWhenTheTimeoutPasses(t *testing.T) {
	t.Parallel()
	b := setup(t, shutdown.Config{Timeout: 50 * time.Millisecond})
	workCtx, cancelWork := b.ctl.WorkContext(t.Context())
	defer cancelWork()

	start := time.Now()
	b.ctl.Stop()
	require.Equal(t, shutdown.Stopping, b.ctl.State())
	waitClosed(t, b.ctl.Reached(shutdown.HardStop), "hard stop after the timeout")
	require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "not before the timeout")
	require.Equal(t, shutdown.HardStop, b.ctl.State())

	cause := context.Cause(workCtx)
	require.ErrorIs(t, cause, shutdown.ErrHardStop)
	require.EqualError(t, cause, "shutdown: hard stop: shutdown timeout of 50ms passed")

	rec := b.log.waitFor(t, "shutdown: hard stop")
	require.Equal(t, "WARN", rec["level"])
	require.Equal(t, "deadline", rec["cause"])
	require.Equal(t, "stopping", rec["from"])
	require.EqualValues(t, 50*time.Millisecond, rec["timeout"])
}

func TestTimeoutCountsFromStopNotFromQuiet(t *testing.T) {
	t.Parallel()
	b := setup(t, shutdown.Config{Timeout: 50 * time.Millisecond})
	b.ctl.Quiet()
	// Quiet starts no timer: the only way to HardStop from here is Stop.
	b.ctl.Stop()
	waitClosed(t, b.ctl.Reached(shutdown.HardStop), "hard stop after the timeout")
	require.Equal(t, "deadline", b.log.waitFor(t, "shutdown: hard stop")["cause"])
}

func TestLogsEachTransition(t *testing.T) {
	t.Parallel()
	b := setup(t, shutdown.Config{Timeout: 3 * time.Second})
	b.ctl.Quiet()
	b.ctl.Stop()
	b.ctl.HardStop()
	b.ctl.Stop() // no move, no record

	quiet := b.log.find("shutdown: quiet")
	require.Len(t, quiet, 1)
	require.Equal(t, "INFO", quiet[0]["level"])
	require.Equal(t, "running", quiet[0]["from"])
	require.Equal(t, "call", quiet[0]["cause"])

	stopping := b.log.find("shutdown: stopping")
	require.Len(t, stopping, 1)
	require.Equal(t, "quiet", stopping[0]["from"])
	require.EqualValues(t, 3*time.Second, stopping[0]["timeout"])

	hard := b.log.find("shutdown: hard stop")
	require.Len(t, hard, 1)
	require.Equal(t, "stopping", hard[0]["from"])
	require.Equal(t, "call", hard[0]["cause"])
	require.NotContains(t, hard[0], "timeout", "a hard stop by call is not about the timeout")
}

func TestConcurrentTransitionsAndReaders(t *testing.T) {
	t.Parallel()
	for range 20 {
		b := setup(t, shutdown.Config{})
		var wg sync.WaitGroup
		start := make(chan struct{})
		// Readers check that the state never moves backwards.
		backwards := make(chan shutdown.State, 4)
		badCause := make(chan error, 6)
		for range 4 {
			wg.Go(func() {
				<-start
				last := shutdown.Running
				for last != shutdown.HardStop {
					s := b.ctl.State()
					if s < last {
						backwards <- s
						return
					}
					last = s
				}
			})
		}
		// A watcher woken by the Quiet channel finds the state and the
		// fetch context already moved.
		early, cancelEarly := b.ctl.FetchContext(t.Context())
		wg.Go(func() {
			<-b.ctl.Reached(shutdown.Quiet)
			if b.ctl.State() < shutdown.Quiet || early.Err() == nil {
				backwards <- b.ctl.State()
			}
		})
		// Writers race every transition, and contexts come and go.
		for i := range 6 {
			wg.Go(func() {
				<-start
				ctx, cancel := b.ctl.FetchContext(t.Context())
				defer cancel()
				switch i % 3 {
				case 0:
					b.ctl.Quiet()
				case 1:
					b.ctl.Stop()
				case 2:
					b.ctl.HardStop()
				}
				<-ctx.Done()
				if cause := context.Cause(ctx); !errors.Is(cause, shutdown.ErrQuiet) &&
					!errors.Is(cause, shutdown.ErrStopping) && !errors.Is(cause, shutdown.ErrHardStop) {
					badCause <- cause
				}
			})
		}
		close(start)
		wg.Wait()
		cancelEarly()
		close(backwards)
		for s := range backwards {
			require.Failf(t, "state moved backwards", "read %v after a later state, or before the channel's state", s)
		}
		close(badCause)
		for err := range badCause {
			require.Failf(t, "fetch context ended with a foreign cause", "%v", err)
		}
		require.Equal(t, shutdown.HardStop, b.ctl.State())
		require.Equal(t, [3]bool{true, true, true}, reached(b.ctl))
		require.Len(t, b.log.find("shutdown: hard stop"), 1)
	}
}

func TestLogGoroutines(t *testing.T) {
	t.Parallel()
	b := setup(t, shutdown.Config{})
	b.ctl.LogGoroutines(t.Context())
	rec := b.log.waitFor(t, "shutdown: goroutine dump")
	require.Equal(t, "INFO", rec["level"])
	require.Contains(t, rec["stacks"], "goroutine ")
	require.Contains(t, rec["stacks"], "shutdown_test.TestLogGoroutines", "the caller's own stack is in it")
	require.Greater(t, rec["goroutines"], 0.0)
	require.Equal(t, false, rec["truncated"])
}
