package shutdown

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeTimers replaces time.AfterFunc, so tests fire the shutdown timer when
// they choose and see whether the controller stopped it.
type fakeTimers struct {
	mu     sync.Mutex
	timers []*fakeTimer
}

type fakeTimer struct {
	d       time.Duration
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool {
	wasActive := !t.stopped
	t.stopped = true
	return wasActive
}

func (ft *fakeTimers) afterFunc(d time.Duration, f func()) stopper {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	t := &fakeTimer{d: d, f: f}
	ft.timers = append(ft.timers, t)
	return t
}

func newFake(t *testing.T, timeout time.Duration) (*Controller, *fakeTimers) {
	t.Helper()
	c, err := New(Config{Timeout: timeout})
	require.NoError(t, err)
	ft := &fakeTimers{}
	c.afterFunc = ft.afterFunc
	return c, ft
}

func TestStopStartsOneTimerOfTimeout(t *testing.T) {
	t.Parallel()
	c, ft := newFake(t, 7*time.Second)
	c.Quiet()
	require.Empty(t, ft.timers, "Quiet starts no timer")
	c.Stop()
	require.Len(t, ft.timers, 1)
	require.Equal(t, 7*time.Second, ft.timers[0].d)
	c.Stop()
	require.Len(t, ft.timers, 1, "a second Stop does not restart the timer")
	require.False(t, ft.timers[0].stopped)
}

func TestHardStopBeforeTheTimeoutStopsTheTimer(t *testing.T) {
	t.Parallel()
	c, ft := newFake(t, time.Minute)
	c.Stop()
	c.HardStop()
	require.Len(t, ft.timers, 1)
	require.True(t, ft.timers[0].stopped, "HardStop stops the shutdown timer")
	require.Equal(t, ErrHardStop, c.crossed[HardStop], "the cause is the call, not the deadline")

	// A timer that fired just as it was being stopped changes nothing.
	ft.timers[0].f()
	require.Equal(t, HardStop, c.State())
	require.Equal(t, ErrHardStop, c.crossed[HardStop])
}

func TestTimerFiringHardStops(t *testing.T) {
	t.Parallel()
	c, ft := newFake(t, time.Minute)
	c.Stop()
	ft.timers[0].f()
	require.Equal(t, HardStop, c.State())
	require.EqualError(t, c.crossed[HardStop], "shutdown: hard stop: shutdown timeout of 1m0s passed")
	require.Nil(t, c.deadline, "the fired timer is forgotten")
}

func TestHardStopFromRunningStartsNoTimer(t *testing.T) {
	t.Parallel()
	c, ft := newFake(t, time.Minute)
	c.HardStop()
	require.Empty(t, ft.timers)
}

func TestContextsAreForgottenWhenDone(t *testing.T) {
	t.Parallel()
	c, _ := newFake(t, time.Minute)
	waiters := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.waiters)
	}

	_, cancel := c.FetchContext(context.Background())
	require.Equal(t, 1, waiters())
	cancel()
	require.Equal(t, 0, waiters(), "cancel releases the context")

	_, cancelFetch := c.FetchContext(context.Background())
	defer cancelFetch()
	_, cancelWork := c.WorkContext(context.Background())
	defer cancelWork()
	c.Quiet()
	require.Equal(t, 1, waiters(), "the fetch context is released at Quiet, the work context kept")
	c.HardStop()
	require.Equal(t, 0, waiters())

	_, cancelLate := c.WorkContext(context.Background())
	defer cancelLate()
	require.Equal(t, 0, waiters(), "a context created cancelled is not held")
}

func TestFinishStopsTheDeadlineWithoutHardStop(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	c, err := New(Config{Timeout: time.Minute, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	ft := &fakeTimers{}
	c.afterFunc = ft.afterFunc
	workCtx, cancel := c.WorkContext(context.Background())
	defer cancel()

	before := time.Now()
	c.Stop()
	at, pending := c.Deadline()
	require.True(t, pending)
	require.WithinRange(t, at, before.Add(time.Minute), time.Now().Add(time.Minute))

	c.Finish()
	require.Len(t, ft.timers, 1)
	require.True(t, ft.timers[0].stopped, "Finish stops the shutdown timer")
	_, pending = c.Deadline()
	require.False(t, pending)
	require.Equal(t, Stopping, c.State(), "Finish does not move the state")
	require.NoError(t, workCtx.Err())

	// A timer that fired just as Finish stopped it changes nothing.
	ft.timers[0].f()
	require.Equal(t, Stopping, c.State())
	require.False(t, isClosed(c.Reached(HardStop)))
	require.NoError(t, workCtx.Err())
	require.NotContains(t, logs.String(), "hard stop")

	c.Finish() // idempotent
	c.Stop()
	require.Len(t, ft.timers, 1, "no new timer")

	// An explicit hard stop still works.
	require.True(t, c.HardStop())
	require.Error(t, workCtx.Err())
	require.Contains(t, logs.String(), "shutdown: hard stop")
}

func TestFinishBeforeStopMeansNoDeadline(t *testing.T) {
	t.Parallel()
	c, ft := newFake(t, time.Minute)
	c.Finish()
	require.True(t, c.Stop())
	require.Empty(t, ft.timers, "Stop after Finish starts no timer")
	_, pending := c.Deadline()
	require.False(t, pending)
}

func TestDeadlineIsNotPendingAfterHardStop(t *testing.T) {
	t.Parallel()
	c, ft := newFake(t, time.Minute)
	_, pending := c.Deadline()
	require.False(t, pending, "no deadline while running")
	c.Stop()
	ft.timers[0].f()
	require.Equal(t, HardStop, c.State())
	_, pending = c.Deadline()
	require.False(t, pending)
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
