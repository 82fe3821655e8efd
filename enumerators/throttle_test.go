package enumerators_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/enumtest"
)

func combNoPressure(context.Context) (bool, error) { return false, nil }

// combTimers stands in for time.AfterFunc in Throttle: the test fires the
// pending timer when it wants CheckEvery to have passed.
type combTimers struct {
	durations []time.Duration // every timer started, by duration
	pending   func()          // the last timer's function, until fired or cancelled
	cancelled int
}

func (ts *combTimers) after(d time.Duration, f func()) func() {
	ts.durations = append(ts.durations, d)
	ts.pending = f
	return func() {
		ts.cancelled++
		ts.pending = nil
	}
}

func (ts *combTimers) fire() {
	if f := ts.pending; f != nil {
		ts.pending = nil
		f()
	}
}

func combStrings(n int) (items []string) {
	for i := range n {
		items = append(items, fmt.Sprintf("s%d", i))
	}
	return items
}

func TestThrottleConformanceWithoutPressure(t *testing.T) {
	t.Parallel()
	items := combStrings(12)
	cfg := enumerators.ThrottleConfig{Pressure: combNoPressure, CheckEvery: -1}
	enumtest.Run(t, enumtest.Case[string, int]{
		Build: func(_ context.Context, c *int) (enumerators.Enumerator[string, int], error) {
			return enumerators.Throttle(enumerators.Slice(items, c), cfg), nil
		},
		Want: items,
		Failing: func(context.Context) (enumerators.Enumerator[string, int], error) {
			return enumerators.Throttle(combFailing(items, 5), cfg), nil
		},
		FailErr: enumtest.ErrSource,
	})
}

func TestThrottleConformanceOverBatches(t *testing.T) {
	t.Parallel()
	var all []int64
	for i := range int64(50) {
		all = append(all, i)
	}
	enumtest.Run(t, enumtest.Case[[]int64, int64]{
		Build: func(_ context.Context, c *int64) (enumerators.Enumerator[[]int64, int64], error) {
			return enumerators.Throttle(enumerators.Batches(enumerators.Range(0, 50, c), 8), enumerators.ThrottleConfig{Pressure: combNoPressure}), nil
		},
		Want: combChunks(all, 8),
	})
}

// Under pressure, the enumeration ends with a ThrottledError after exactly
// the items before the pressure began, each with its cursor; resuming from
// the last cursor yields exactly the rest.
func TestThrottleUnderPressureEndsAfterTheItemsBefore(t *testing.T) {
	t.Parallel()
	items := combStrings(6)
	for start := 0; start <= len(items); start++ {
		t.Run(fmt.Sprintf("pressure_before_item_%d", start), func(t *testing.T) {
			t.Parallel()
			type ctxKey struct{}
			ctx := context.WithValue(t.Context(), ctxKey{}, "run")
			calls := 0
			cfg := enumerators.ThrottleConfig{
				Pressure: func(ctx context.Context) (bool, error) {
					require.Equal(t, "run", ctx.Value(ctxKey{}), "Pressure gets Enumerate's context")
					calls++
					return calls > start, nil
				},
				Wait:       42 * time.Second,
				CheckEvery: -1, // before every item
			}
			got, cursors, err := enumerators.Collect(ctx, enumerators.Throttle(enumerators.Slice(items, nil), cfg))
			require.Len(t, got, start)
			require.Equal(t, items[:start], append([]string{}, got...))
			if start == len(items) {
				require.NoError(t, err, "no item came after the pressure began: the enumeration completed")
				return
			}
			var te *enumerators.ThrottledError
			require.ErrorAs(t, err, &te)
			require.ErrorIs(t, err, enumerators.ErrThrottled)
			require.Equal(t, 42*time.Second, te.RetryAfter)
			if start > 0 {
				require.Equal(t, start, cursors[len(cursors)-1], "the cursor of the last good item")
			}

			// The next run, without pressure, picks up exactly where it stopped.
			var from *int
			if start > 0 {
				from = &cursors[len(cursors)-1]
			}
			rest, _, err := enumerators.Collect(t.Context(), enumerators.Throttle(enumerators.Slice(items, from), enumerators.ThrottleConfig{Pressure: combNoPressure}))
			require.NoError(t, err)
			require.Equal(t, items[start:], rest)
		})
	}
}

func TestThrottlePredicateErrorSurfaces(t *testing.T) {
	t.Parallel()
	errLag := errors.New("replica lag query failed")
	calls := 0
	cfg := enumerators.ThrottleConfig{
		Pressure: func(context.Context) (bool, error) {
			calls++
			if calls == 3 {
				return false, errLag
			}
			return false, nil
		},
		CheckEvery: -1,
	}
	got, cursors, err := enumerators.Collect(t.Context(), enumerators.Throttle(enumerators.Slice(combStrings(5), nil), cfg))
	require.ErrorIs(t, err, errLag)
	require.NotErrorIs(t, err, enumerators.ErrThrottled, "a failed check is an error, not a throttle")
	require.Equal(t, []string{"s0", "s1"}, got)
	require.Equal(t, []int{1, 2}, cursors)
}

// Pressure runs before the first item and then only once CheckEvery has
// passed since the last check.
func TestThrottleChecksAtMostEveryCheckEvery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		checkEvery time.Duration
		fireDuring []int // items during which CheckEvery passes
		wantChecks []int // items before which Pressure runs
		wantTimers []time.Duration
	}{
		{"default_1s", 0, []int{2, 6}, []int{0, 3, 7}, []time.Duration{time.Second, time.Second, time.Second}},
		{"500ms", 500 * time.Millisecond, []int{2, 3}, []int{0, 3, 4}, []time.Duration{500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond}},
		{"every_item", -1, nil, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, nil},
		{"never_passes", time.Hour, nil, []int{0}, []time.Duration{time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			timers := &combTimers{}
			next := 0 // the item about to be yielded
			var checks []int
			cfg := enumerators.ThrottleWithTimers(enumerators.ThrottleConfig{
				Pressure: func(context.Context) (bool, error) {
					checks = append(checks, next)
					return false, nil
				},
				CheckEvery: tc.checkEvery,
			}, timers.after)
			err := enumerators.Throttle(enumerators.Range(0, 10, nil), cfg).Enumerate(t.Context(), func(item int64, _ int64) bool {
				if slices.Contains(tc.fireDuring, int(item)) {
					timers.fire()
					timers.fire() // a second firing before the next item changes nothing
				}
				next++
				return true
			})
			require.NoError(t, err)
			require.Equal(t, tc.wantChecks, checks)
			require.Equal(t, tc.wantTimers, timers.durations)
			require.Nil(t, timers.pending, "the last timer is cancelled when the enumeration ends")
		})
	}
}

// With real timers, Pressure runs again once CheckEvery has passed, and never
// sooner.
func TestThrottleRealTimer(t *testing.T) {
	t.Parallel()
	const every = 5 * time.Millisecond
	var calls []time.Time
	cfg := enumerators.ThrottleConfig{
		Pressure: func(context.Context) (bool, error) {
			calls = append(calls, time.Now())
			return false, nil
		},
		CheckEvery: every,
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := enumerators.Throttle(enumerators.Range(0, math.MaxInt64, nil), cfg).Enumerate(ctx, func(int64, int64) bool {
		// Run items until the timer let Pressure run a third time.
		return len(calls) < 3 && ctx.Err() == nil
	})
	require.NoError(t, err)
	require.NoError(t, ctx.Err(), "the timer never let Pressure run again")
	require.Len(t, calls, 3)
	require.GreaterOrEqual(t, calls[1].Sub(calls[0]), every)
	require.GreaterOrEqual(t, calls[2].Sub(calls[1]), every)
}

func TestThrottleDefaultWait(t *testing.T) {
	t.Parallel()
	cfg := enumerators.ThrottleConfig{Pressure: func(context.Context) (bool, error) { return true, nil }}
	_, _, err := enumerators.Collect(t.Context(), enumerators.Throttle(enumerators.Range(0, 3, nil), cfg))
	var te *enumerators.ThrottledError
	require.ErrorAs(t, err, &te)
	require.Equal(t, enumerators.ThrottleWaitDefault, te.RetryAfter)
}

// With nothing left to enumerate the job completes even under pressure.
func TestThrottleEmptyCompletesWithoutCheck(t *testing.T) {
	t.Parallel()
	cfg := enumerators.ThrottleConfig{Pressure: func(context.Context) (bool, error) {
		t.Error("Pressure called for an empty enumeration")
		return true, nil
	}}
	end := int64(3)
	got, _, err := enumerators.Collect(t.Context(), enumerators.Throttle(enumerators.Range(0, 3, &end), cfg))
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestThrottleRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []enumerators.ThrottleConfig{
		{},
		{Pressure: combNoPressure, Wait: -time.Second},
	} {
		_, _, err := enumerators.Collect(t.Context(), enumerators.Throttle(enumerators.Range(0, 3, nil), cfg))
		require.ErrorIs(t, err, enumerators.ErrThrottleConfig)
	}
}

func TestThrottleForwardsProgress(t *testing.T) {
	t.Parallel()
	e := enumerators.Throttle(enumerators.Slice([]int{1, 2, 3, 4}, nil), enumerators.ThrottleConfig{Pressure: combNoPressure})
	pr, ok := e.(enumerators.ProgressReporter[int])
	require.True(t, ok)
	three := 3
	p, err := pr.Progress(t.Context(), &three)
	require.NoError(t, err)
	require.Equal(t, enumerators.Progress{Done: 3, Total: 4, Unit: "items"}, p)

	_, ok = enumerators.Throttle(combFailing([]int{1}, 1), enumerators.ThrottleConfig{Pressure: combNoPressure}).(enumerators.ProgressReporter[int])
	require.False(t, ok)
}
