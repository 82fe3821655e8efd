package enumerators_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/enumtest"
)

func TestLimitConformance(t *testing.T) {
	t.Parallel()
	for _, length := range []int{0, 1, 7, 12} {
		items := make([]string, length)
		for i := range items {
			items[i] = fmt.Sprintf("item-%d-ü", i)
		}
		for _, n := range []int64{0, 1, 3, 7, 12, 20} {
			t.Run(fmt.Sprintf("len=%d/n=%d", length, n), func(t *testing.T) {
				t.Parallel()
				want := items[:min(int(n), length)]
				c := enumtest.Case[string, enumerators.LimitCursor[int]]{
					Build: func(_ context.Context, c *enumerators.LimitCursor[int]) (enumerators.Enumerator[string, enumerators.LimitCursor[int]], error) {
						return enumerators.Limit(enumerators.Slice(items, c.InnerCursor()), n, c), nil
					},
				}
				if len(want) > 0 { // nil otherwise, as collected
					c.Want = want
				}
				if n > int64(length/2) && length > 0 {
					c.Failing = func(context.Context) (enumerators.Enumerator[string, enumerators.LimitCursor[int]], error) {
						return enumerators.Limit(combFailing(items, length/2), n, nil), nil
					}
					c.FailErr = enumtest.ErrSource
				}
				enumtest.Run(t, c)
			})
		}
	}
}

// The limit holds across runs: interrupted after some items, the job
// resumes with the count in its cursor, and a run resumed after the last
// item does not start the inner enumerator at all.
func TestLimitCountsAcrossRuns(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	builds := 0
	build := func(c *enumerators.LimitCursor[int64]) enumerators.Enumerator[int64, enumerators.LimitCursor[int64]] {
		inner := enumerators.EnumeratorFunc[int64, int64](func(ctx context.Context, yield func(int64, int64) bool) error {
			builds++
			return enumerators.Range(0, 1000, c.InnerCursor()).Enumerate(ctx, yield)
		})
		return enumerators.Limit(inner, 10, c)
	}
	var got []int64
	var saved *enumerators.LimitCursor[int64]
	for _, stopAfter := range []int{3, 1, 4, 100} { // four interrupted runs
		run := 0
		err := build(saved).Enumerate(ctx, func(i int64, c enumerators.LimitCursor[int64]) bool {
			got = append(got, i)
			raw, err := cursor.Encode(c)
			require.NoError(t, err)
			saved, err = cursor.Decode[enumerators.LimitCursor[int64]](raw)
			require.NoError(t, err)
			run++
			return run < stopAfter
		})
		require.NoError(t, err)
	}
	require.Equal(t, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, got)
	require.Equal(t, int64(10), saved.Count)
	require.Equal(t, 4, builds)
	items, _, err := enumerators.Collect(ctx, build(saved))
	require.NoError(t, err)
	require.Empty(t, items)
	require.Equal(t, 4, builds, "a finished count does not start the inner enumerator")

	p, ok := build(saved).(enumerators.ProgressReporter[enumerators.LimitCursor[int64]])
	require.True(t, ok)
	prog, err := p.Progress(ctx, &enumerators.LimitCursor[int64]{Count: 4})
	require.NoError(t, err)
	require.Equal(t, enumerators.Progress{Done: 4, Total: 10, Unit: "items"}, prog)
}

func TestLimitRefusesANegativeLimit(t *testing.T) {
	t.Parallel()
	_, _, err := enumerators.Collect(t.Context(), enumerators.Limit(enumerators.Range(0, 5, nil), -1, nil))
	require.ErrorIs(t, err, enumerators.ErrLimit)
}
