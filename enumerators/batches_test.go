package enumerators_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/enumtest"
)

// combFailing returns an enumerator over items that behaves like Slice but
// fails with enumtest.ErrSource after yielding the first failAfter items.
func combFailing[T any](items []T, failAfter int) enumerators.Enumerator[T, int] {
	return enumerators.EnumeratorFunc[T, int](func(_ context.Context, yield func(T, int) bool) error {
		for i, item := range items[:failAfter] {
			if !yield(item, i+1) {
				return nil
			}
		}
		return enumtest.ErrSource
	})
}

// combChunks is the batches Batches must yield: nil for no items.
func combChunks[T any](items []T, n int) [][]T {
	return slices.Collect(slices.Chunk(items, n))
}

func TestBatchesConformanceOverSlice(t *testing.T) {
	t.Parallel()
	for _, length := range []int{0, 1, 7, 10, 12} {
		items := make([]string, length)
		for i := range items {
			items[i] = fmt.Sprintf("item-%d-ü", i)
		}
		// n divides the length, does not, n=1, n equal to and above the length.
		for _, n := range []int{1, 2, 3, 5, 10, 13} {
			t.Run(fmt.Sprintf("len=%d/n=%d", length, n), func(t *testing.T) {
				t.Parallel()
				enumtest.Run(t, enumtest.Case[[]string, int]{
					Build: func(_ context.Context, c *int) (enumerators.Enumerator[[]string, int], error) {
						return enumerators.Batches(enumerators.Slice(items, c), n), nil
					},
					Want: combChunks(items, n),
					Failing: func(context.Context) (enumerators.Enumerator[[]string, int], error) {
						return enumerators.Batches(combFailing(items, length/2), n), nil
					},
					FailErr: enumtest.ErrSource,
				})
			})
		}
	}
}

func TestBatchesConformanceOverRange(t *testing.T) {
	t.Parallel()
	var all []int64
	for i := int64(-5); i < 95; i++ {
		all = append(all, i)
	}
	for _, n := range []int{1, 7, 10, 100, 101} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			t.Parallel()
			enumtest.Run(t, enumtest.Case[[]int64, int64]{
				Build: func(_ context.Context, c *int64) (enumerators.Enumerator[[]int64, int64], error) {
					return enumerators.Batches(enumerators.Range(-5, 95, c), n), nil
				},
				Want: combChunks(all, n),
			})
		})
	}
}

// A batch's cursor is its last item's cursor, and resuming from it yields
// exactly the items after that batch, in the same batches.
func TestBatchesCursorIsLastItemCursor(t *testing.T) {
	t.Parallel()
	batches, cursors, err := enumerators.Collect(t.Context(), enumerators.Batches(enumerators.Range(0, 10, nil), 4))
	require.NoError(t, err)
	require.Equal(t, [][]int64{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}}, batches)
	require.Equal(t, []int64{4, 8, 10}, cursors)

	for i, c := range cursors {
		rest, _, err := enumerators.Collect(t.Context(), enumerators.Batches(enumerators.Range(0, 10, &c), 4))
		require.NoError(t, err)
		require.Equal(t, batches[i+1:], append([][]int64{}, rest...), "resume after batch %d", i)
		require.Equal(t, slices.Concat(batches[i+1:]...), slices.Concat(rest...))
	}
}

// Each batch is a fresh slice: keeping or changing one does not affect the
// others.
func TestBatchesAreFreshSlices(t *testing.T) {
	t.Parallel()
	var kept [][]int64
	err := enumerators.Batches(enumerators.Range(0, 9, nil), 3).Enumerate(t.Context(), func(b []int64, _ int64) bool {
		kept = append(kept, b)
		b[0] = -1 // the caller owns the slice
		return true
	})
	require.NoError(t, err)
	require.Equal(t, [][]int64{{-1, 1, 2}, {-1, 4, 5}, {-1, 7, 8}}, kept)
}

// A source failure drops the partial batch (its cursors were never given
// out) and surfaces the error after the full batches before it.
func TestBatchesSourceErrorDropsPartialBatch(t *testing.T) {
	t.Parallel()
	batches, cursors, err := enumerators.Collect(t.Context(), enumerators.Batches(combFailing([]int{0, 1, 2, 3, 4, 5, 6}, 5), 2))
	require.ErrorIs(t, err, enumtest.ErrSource)
	require.Equal(t, [][]int{{0, 1}, {2, 3}}, batches)
	require.Equal(t, []int{2, 4}, cursors)
}

func TestBatchesRejectsSizeBelowOne(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, -1} {
		_, _, err := enumerators.Collect(t.Context(), enumerators.Batches(enumerators.Range(0, 3, nil), n))
		require.ErrorIs(t, err, enumerators.ErrBatchSize, "n=%d", n)
	}
}

func TestBatchesForwardsProgress(t *testing.T) {
	t.Parallel()
	b := enumerators.Batches(enumerators.Range(0, 100, nil), 10)
	pr, ok := b.(enumerators.ProgressReporter[int64])
	require.True(t, ok, "Batches over Range reports progress")
	at := int64(30)
	p, err := pr.Progress(t.Context(), &at)
	require.NoError(t, err)
	require.Equal(t, enumerators.Progress{Done: 30, Total: 100, Unit: "items"}, p)

	_, ok = enumerators.Batches(combFailing([]int{1}, 1), 10).(enumerators.ProgressReporter[int])
	require.False(t, ok, "Batches over an enumerator without progress does not claim to report it")
}
