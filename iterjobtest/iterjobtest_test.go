package iterjobtest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/iterjobtest"
)

type flaky struct {
	failAt int64
	panics bool
	hooks  []string
	done   []int64
}

func (f *flaky) BuildEnumerator(_ context.Context, n int64, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(0, n, c), nil
}

func (f *flaky) EachIteration(_ context.Context, _ int64, i int64) error {
	if i == f.failAt {
		f.failAt = -1
		if f.panics {
			panic("boom")
		}
		return errors.New("boom")
	}
	f.done = append(f.done, i)
	return nil
}

func (f *flaky) OnStart(context.Context, int64) error { f.hooks = append(f.hooks, "start"); return nil }
func (f *flaky) OnResume(context.Context, int64) error {
	f.hooks = append(f.hooks, "resume")
	return nil
}
func (f *flaky) OnComplete(context.Context, int64) error {
	f.hooks = append(f.hooks, "complete")
	return nil
}
func (f *flaky) OnStop(_ context.Context, _ int64, r iterable.StopReason) error {
	f.hooks = append(f.hooks, "stop:"+string(r))
	return nil
}

func TestFailureResumesAtTheFailedItem(t *testing.T) {
	t.Parallel()
	for _, panics := range []bool{false, true} {
		job := &flaky{failAt: 3, panics: panics}
		first, err := iterjobtest.Iterate(t.Context(), job, 6, nil, 0)
		require.ErrorContains(t, err, "boom")
		require.Equal(t, iterable.Failed, first.Stop)
		require.JSONEq(t, "3", string(first.Cursor), "the cursor of the last good item")
		rest, err := iterjobtest.Iterate(t.Context(), job, 6, first, 0)
		require.NoError(t, err)
		require.Equal(t, iterable.Completed, rest.Stop)
		require.Equal(t, int64(6), rest.Total)
		require.Equal(t, 2, rest.Runs)
		require.Equal(t, []int64{0, 1, 2, 3, 4, 5}, job.done)
		require.Equal(t, []string{"start", "stop:failed", "resume", "complete", "stop:completed"}, job.hooks)
	}
}

func TestBadCursorIsReported(t *testing.T) {
	t.Parallel()
	_, err := iterjobtest.Iterate(t.Context(), &flaky{failAt: -1}, 6, &iterjobtest.Run{Cursor: []byte(`"three"`)}, 0)
	require.ErrorIs(t, err, cursor.ErrInvalid)
	_, err = iterjobtest.Iterate(t.Context(), &flaky{failAt: -1}, 6, &iterjobtest.Run{Cursor: []byte(`9`)}, 0)
	require.ErrorIs(t, err, enumerators.ErrInvalidCursor)
}
