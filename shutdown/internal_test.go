package shutdown

import (
	"context"
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
