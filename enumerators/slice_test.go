package enumerators_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/enumtest"
)

func TestSliceConformance(t *testing.T) {
	t.Parallel()
	items := []string{"a", "b", "", "ü", "e"}
	enumtest.Run(t, enumtest.Case[string, int]{
		Build: func(_ context.Context, c *int) (enumerators.Enumerator[string, int], error) {
			return enumerators.Slice(items, c), nil
		},
		Want: items,
	})
}

func TestRangeConformance(t *testing.T) {
	t.Parallel()
	var want []int64
	for i := int64(-3); i < 40; i++ {
		want = append(want, i)
	}
	enumtest.Run(t, enumtest.Case[int64, int64]{
		Build: func(_ context.Context, c *int64) (enumerators.Enumerator[int64, int64], error) {
			return enumerators.Range(-3, 40, c), nil
		},
		Want: want,
	})
}

func TestSliceRejectsCursorOutOfRange(t *testing.T) {
	t.Parallel()
	for _, c := range []int{-1, 4} {
		_, _, err := enumerators.Collect(t.Context(), enumerators.Slice([]int{1, 2, 3}, &c))
		require.ErrorIs(t, err, enumerators.ErrInvalidCursor, "cursor %d", c)
	}
	end := 3
	items, _, err := enumerators.Collect(t.Context(), enumerators.Slice([]int{1, 2, 3}, &end))
	require.NoError(t, err, "the cursor after the last item is valid")
	require.Empty(t, items)
}

func TestRangeRejectsCursorOutOfRange(t *testing.T) {
	t.Parallel()
	for _, c := range []int64{4, 11} {
		_, _, err := enumerators.Collect(t.Context(), enumerators.Range(5, 10, &c))
		require.ErrorIs(t, err, enumerators.ErrInvalidCursor, "cursor %d", c)
	}
	items, _, err := enumerators.Collect(t.Context(), enumerators.Range(5, 5, nil))
	require.NoError(t, err)
	require.Empty(t, items)
}

func TestProgressOfSliceAndRange(t *testing.T) {
	t.Parallel()
	s := enumerators.Slice([]int{1, 2, 3, 4}, nil).(enumerators.ProgressReporter[int])
	two := 2
	p, err := s.Progress(t.Context(), &two)
	require.NoError(t, err)
	require.Equal(t, enumerators.Progress{Done: 2, Total: 4, Unit: "items"}, p)

	r := enumerators.Range(10, 20, nil).(enumerators.ProgressReporter[int64])
	at := int64(15)
	p, err = r.Progress(t.Context(), &at)
	require.NoError(t, err)
	require.Equal(t, enumerators.Progress{Done: 5, Total: 10, Unit: "items"}, p)
}
