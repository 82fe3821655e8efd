package enumerators_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/enumtest"
)

type (
	combItem   = enumerators.NestedItem[string, string]
	combCursor = enumerators.NestedCursor[int, int]
)

// combInner builds the inner enumerator of an outer item from data.
func combInner(data map[string][]string) func(context.Context, string, *int) (enumerators.Enumerator[string, int], error) {
	return func(_ context.Context, o string, c *int) (enumerators.Enumerator[string, int], error) {
		return enumerators.Slice(data[o], c), nil
	}
}

func combKey(o string) string { return o }

// combWant lists the nested items of outer over data, in order.
func combWant(outer []string, data map[string][]string) []combItem {
	var want []combItem
	for _, o := range outer {
		for _, i := range data[o] {
			want = append(want, combItem{Outer: o, Inner: i})
		}
	}
	return want
}

// combKeyset enumerates sorted ids with a keyset cursor, the last id done,
// as a SQL keyset enumerator does: rows inserted or deleted before the
// cursor do not move it.
func combKeyset(ids []int, after *int) enumerators.Enumerator[int, int] {
	return enumerators.EnumeratorFunc[int, int](func(_ context.Context, yield func(int, int) bool) error {
		for _, id := range ids {
			if after != nil && id <= *after {
				continue
			}
			if !yield(id, id) {
				return nil
			}
		}
		return nil
	})
}

// combRoundTrip sends a cursor through the store's strict JSON encoding.
func combRoundTrip[C any](t *testing.T, c C) *C {
	t.Helper()
	raw, err := cursor.Encode(c)
	require.NoError(t, err)
	back, err := cursor.Decode[C](raw)
	require.NoError(t, err, "decode %s", raw)
	require.NotNil(t, back)
	return back
}

// combStopAfter enumerates e until the item for which stop is true and
// returns that item's cursor, as the runner saves it at an interruption.
func combStopAfter[T, C any](t *testing.T, e enumerators.Enumerator[T, C], stop func(T) bool) C {
	t.Helper()
	var at C
	found := false
	err := e.Enumerate(t.Context(), func(item T, c C) bool {
		at = c
		found = stop(item)
		return !found
	})
	require.NoError(t, err)
	require.True(t, found, "the stop item was never yielded")
	return at
}

func TestNestedConformanceOverSlices(t *testing.T) {
	t.Parallel()
	// Empty inner sequences first, last and in the middle.
	outer := []string{"empty-first", "a", "b", "empty-mid", "c", "d", "empty-last"}
	data := map[string][]string{
		"a": {"a0", "a1", "a2"},
		"b": {"b0"},
		"c": {"c0", "c1"},
		"d": {"d0", "d1", "d2", "d3"},
	}
	enumtest.Run(t, enumtest.Case[combItem, combCursor]{
		Build: func(_ context.Context, c *combCursor) (enumerators.Enumerator[combItem, combCursor], error) {
			return enumerators.Nested(c, func(_ context.Context, oc *int) (enumerators.Enumerator[string, int], error) {
				return enumerators.Slice(outer, oc), nil
			}, combInner(data), combKey, nil), nil
		},
		Want: combWant(outer, data),
		Failing: func(context.Context) (enumerators.Enumerator[combItem, combCursor], error) {
			return enumerators.Nested(nil, func(_ context.Context, oc *int) (enumerators.Enumerator[string, int], error) {
				return enumerators.Slice(outer, oc), nil
			}, func(_ context.Context, o string, c *int) (enumerators.Enumerator[string, int], error) {
				if o == "c" {
					return combFailing(data[o], 1), nil
				}
				return enumerators.Slice(data[o], c), nil
			}, combKey, nil), nil
		},
		FailErr: enumtest.ErrSource,
	})
}

func TestNestedConformanceAllEmptyAndOuterFailure(t *testing.T) {
	t.Parallel()
	outer := []string{"x", "y"}
	enumtest.Run(t, enumtest.Case[combItem, combCursor]{
		Build: func(_ context.Context, c *combCursor) (enumerators.Enumerator[combItem, combCursor], error) {
			return enumerators.Nested(c, func(_ context.Context, oc *int) (enumerators.Enumerator[string, int], error) {
				return enumerators.Slice(outer, oc), nil
			}, combInner(nil), combKey, nil), nil
		},
		Want: nil,
		Failing: func(context.Context) (enumerators.Enumerator[combItem, combCursor], error) {
			return enumerators.Nested(nil, func(context.Context, *int) (enumerators.Enumerator[string, int], error) {
				return combFailing(outer, 1), nil
			}, combInner(map[string][]string{"x": {"x0"}}), combKey, nil), nil
		},
		FailErr: enumtest.ErrSource,
	})
}

func TestNestedConformanceOverKeyset(t *testing.T) {
	t.Parallel()
	ids := []int{3, 10, 11, 20, 42}
	data := map[string][]string{"3": {"p"}, "11": {"q", "r"}, "20": {"s", "t", "u"}, "42": {"v"}}
	var want []enumerators.NestedItem[int, string]
	for _, id := range ids {
		for _, i := range data[strconv.Itoa(id)] {
			want = append(want, enumerators.NestedItem[int, string]{Outer: id, Inner: i})
		}
	}
	enumtest.Run(t, enumtest.Case[enumerators.NestedItem[int, string], combCursor]{
		Build: func(_ context.Context, c *combCursor) (enumerators.Enumerator[enumerators.NestedItem[int, string], combCursor], error) {
			return enumerators.Nested(c, func(_ context.Context, oc *int) (enumerators.Enumerator[int, int], error) {
				return combKeyset(ids, oc), nil
			}, func(_ context.Context, id int, ic *int) (enumerators.Enumerator[string, int], error) {
				return enumerators.Slice(data[strconv.Itoa(id)], ic), nil
			}, strconv.Itoa, nil), nil
		},
		Want: want,
	})
}

// Within an outer item the cursor holds the outer cursor before it, its key
// and the inner cursor; after its last inner item, only the outer cursor
// after it.
func TestNestedCursorShape(t *testing.T) {
	t.Parallel()
	outer := []string{"a", "empty", "b"}
	data := map[string][]string{"a": {"a0", "a1"}, "b": {"b0"}}
	e := enumerators.Nested(nil, func(_ context.Context, oc *int) (enumerators.Enumerator[string, int], error) {
		return enumerators.Slice(outer, oc), nil
	}, combInner(data), combKey, nil)
	_, cursors, err := enumerators.Collect(t.Context(), e)
	require.NoError(t, err)
	one, two, three := 1, 1, 3
	require.Equal(t, []combCursor{
		{Key: "a", Inner: &one},
		{Outer: &two},
		{Outer: &three},
	}, cursors)
	var raws []string
	for _, c := range cursors {
		raw, err := cursor.Encode(c)
		require.NoError(t, err)
		raws = append(raws, string(raw))
	}
	require.Equal(t, []string{`{"key":"a","inner":1}`, `{"outer":1}`, `{"outer":3}`}, raws)
}

// combKeysetRun is a Nested enumerator over orders (a keyset outer) and their
// lines, which reports discarded inner cursors to stale.
func combKeysetRun(ids []int, data map[int][]string, c *combCursor, stale *[]enumerators.StaleInnerCursor) enumerators.Enumerator[enumerators.NestedItem[int, string], combCursor] {
	return enumerators.Nested(c, func(_ context.Context, oc *int) (enumerators.Enumerator[int, int], error) {
		return combKeyset(ids, oc), nil
	}, func(_ context.Context, id int, ic *int) (enumerators.Enumerator[string, int], error) {
		return enumerators.Slice(data[id], ic), nil
	}, strconv.Itoa, &enumerators.NestedOpts{OnStale: func(_ context.Context, s enumerators.StaleInnerCursor) error {
		*stale = append(*stale, s)
		return nil
	}})
}

func combInners(items []enumerators.NestedItem[int, string]) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Inner)
	}
	return out
}

// The outer data changes between an interruption in the middle of order 20
// (after its line 20.1) and the next run: the saved inner cursor is applied
// only to order 20, never to another order, and no line of a present order
// is skipped.
func TestNestedOuterDataChangedBetweenRuns(t *testing.T) {
	t.Parallel()
	data := map[int][]string{
		5:  {"5.0"},
		10: {"10.0", "10.1"},
		15: {"15.0", "15.1"},
		20: {"20.0", "20.1", "20.2"},
		30: {"30.0", "30.1"},
	}
	before := []int{10, 20, 30}

	for _, tc := range []struct {
		name      string
		after     []int // the outer ids on the next run
		want      []string
		wantStale []enumerators.StaleInnerCursor
	}{
		{
			name:  "unchanged",
			after: before,
			want:  []string{"20.2", "30.0", "30.1"},
		},
		{
			name:  "outer_before_the_cursor_deleted",
			after: []int{20, 30},
			want:  []string{"20.2", "30.0", "30.1"},
		},
		{
			name:  "outer_inserted_before_the_cursor",
			after: []int{5, 10, 20, 30},
			want:  []string{"20.2", "30.0", "30.1"},
		},
		{
			// Order 30 now sits where 20 was: its lines start at 30.0,
			// not at the saved inner position 2.
			name:      "current_outer_deleted",
			after:     []int{10, 30},
			want:      []string{"30.0", "30.1"},
			wantStale: []enumerators.StaleInnerCursor{{SavedKey: "20", FoundKey: "30", Found: true}},
		},
		{
			// Order 15 is new and processed in full; order 20 starts over
			// (20.0 and 20.1 run twice) rather than lose a line.
			name:      "outer_inserted_at_the_cursor",
			after:     []int{10, 15, 20, 30},
			want:      []string{"15.0", "15.1", "20.0", "20.1", "20.2", "30.0", "30.1"},
			wantStale: []enumerators.StaleInnerCursor{{SavedKey: "20", FoundKey: "15", Found: true}},
		},
		{
			name:      "current_outer_and_all_after_deleted",
			after:     []int{10},
			want:      nil,
			wantStale: []enumerators.StaleInnerCursor{{SavedKey: "20"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stale []enumerators.StaleInnerCursor
			saved := combStopAfter(t, combKeysetRun(before, data, nil, &stale), func(it enumerators.NestedItem[int, string]) bool {
				return it.Inner == "20.1"
			})
			ten, two := 10, 2
			require.Equal(t, combCursor{Outer: &ten, Key: "20", Inner: &two}, saved,
				"the outer cursor before order 20, its key, the inner cursor after 20.1")

			items, _, err := enumerators.Collect(t.Context(), combKeysetRun(tc.after, data, combRoundTrip(t, saved), &stale))
			require.NoError(t, err)
			require.Equal(t, tc.want, combInners(items))
			for _, it := range items {
				require.Contains(t, data[it.Outer], it.Inner, "every inner item is paired with its own outer item")
			}
			require.Equal(t, tc.wantStale, stale)
		})
	}
}

// With an index cursor (Slice), deleting an outer item before the cursor
// shifts the position onto another item: Nested notices by the key and does
// not apply the inner cursor to it.
func TestNestedStaleCursorNotAppliedToShiftedIndex(t *testing.T) {
	t.Parallel()
	data := map[string][]string{"a": {"a0"}, "b": {"b0", "b1", "b2"}, "c": {"c0", "c1", "c2"}}
	build := func(outer []string, c *combCursor, opts *enumerators.NestedOpts) enumerators.Enumerator[combItem, combCursor] {
		return enumerators.Nested(c, func(_ context.Context, oc *int) (enumerators.Enumerator[string, int], error) {
			return enumerators.Slice(outer, oc), nil
		}, combInner(data), combKey, opts)
	}
	saved := combStopAfter(t, build([]string{"a", "b", "c"}, nil, nil), func(it combItem) bool { return it.Inner == "b0" })

	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	items, _, err := enumerators.Collect(t.Context(), build([]string{"b", "c"}, combRoundTrip(t, saved), &enumerators.NestedOpts{Logger: logger}))
	require.NoError(t, err)
	require.Equal(t, combWant([]string{"c"}, data), items, "c is enumerated from c0, not from the position saved for b")
	require.Contains(t, logs.String(), "level=WARN")
	require.Contains(t, logs.String(), "saved_key=b found_key=c found=true")
}

func TestNestedOnStaleErrorEndsTheEnumeration(t *testing.T) {
	t.Parallel()
	errStale := errors.New("refuse to restart an order")
	data := map[int][]string{10: {"10.0", "10.1"}, 20: {"20.0"}}
	var stale []enumerators.StaleInnerCursor
	saved := combStopAfter(t, combKeysetRun([]int{10, 20}, data, nil, &stale), func(it enumerators.NestedItem[int, string]) bool {
		return it.Inner == "10.0"
	})
	e := enumerators.Nested(combRoundTrip(t, saved), func(_ context.Context, oc *int) (enumerators.Enumerator[int, int], error) {
		return combKeyset([]int{20}, oc), nil
	}, func(_ context.Context, id int, ic *int) (enumerators.Enumerator[string, int], error) {
		return enumerators.Slice(data[id], ic), nil
	}, strconv.Itoa, &enumerators.NestedOpts{OnStale: func(context.Context, enumerators.StaleInnerCursor) error { return errStale }})
	items, _, err := enumerators.Collect(t.Context(), e)
	require.ErrorIs(t, err, errStale)
	require.Empty(t, items)
}

// The key is the outer item's identity; when an outer item keeps its key but
// its inner data shrinks below the saved inner cursor, the inner enumerator
// reports the invalid cursor.
func TestNestedInnerCursorNoLongerFits(t *testing.T) {
	t.Parallel()
	outer := []string{"a"}
	build := func(data map[string][]string, c *combCursor) enumerators.Enumerator[combItem, combCursor] {
		return enumerators.Nested(c, func(_ context.Context, oc *int) (enumerators.Enumerator[string, int], error) {
			return enumerators.Slice(outer, oc), nil
		}, combInner(data), combKey, nil)
	}
	saved := combStopAfter(t, build(map[string][]string{"a": {"a0", "a1", "a2"}}, nil), func(it combItem) bool { return it.Inner == "a1" })
	_, _, err := enumerators.Collect(t.Context(), build(map[string][]string{"a": {"a0"}}, combRoundTrip(t, saved)))
	require.ErrorIs(t, err, enumerators.ErrInvalidCursor)
}

func TestNestedBuildErrorsSurface(t *testing.T) {
	t.Parallel()
	errBuild := errors.New("build failed")
	okOuter := func(_ context.Context, oc *int) (enumerators.Enumerator[string, int], error) {
		return enumerators.Slice([]string{"a"}, oc), nil
	}
	failOuter := func(context.Context, *int) (enumerators.Enumerator[string, int], error) { return nil, errBuild }
	failInner := func(context.Context, string, *int) (enumerators.Enumerator[string, int], error) { return nil, errBuild }

	_, _, err := enumerators.Collect(t.Context(), enumerators.Nested(nil, failOuter, combInner(nil), combKey, nil))
	require.ErrorIs(t, err, errBuild)
	_, _, err = enumerators.Collect(t.Context(), enumerators.Nested(nil, okOuter, failInner, combKey, nil))
	require.ErrorIs(t, err, errBuild)
	_, _, err = enumerators.Collect(t.Context(), enumerators.Nested(nil, okOuter, combInner(nil), nil, nil))
	require.Error(t, err, "a missing key function is an error")
}

func TestNestedProgressFollowsTheOuter(t *testing.T) {
	t.Parallel()
	outer := []string{"a", "b", "c", "d"}
	data := map[string][]string{"a": {"a0"}, "b": {"b0", "b1"}, "c": {"c0"}, "d": {"d0"}}
	e := enumerators.Nested(nil, func(_ context.Context, oc *int) (enumerators.Enumerator[string, int], error) {
		return enumerators.Slice(outer, oc), nil
	}, combInner(data), combKey, nil)
	pr, ok := e.(enumerators.ProgressReporter[combCursor])
	require.True(t, ok)

	var done []int64
	p, err := pr.Progress(t.Context(), nil)
	require.NoError(t, err)
	require.Equal(t, enumerators.Progress{Done: 0, Total: 4, Unit: "items"}, p)
	err = e.Enumerate(t.Context(), func(_ combItem, c combCursor) bool {
		p, err := pr.Progress(t.Context(), &c)
		require.NoError(t, err)
		require.Equal(t, int64(4), p.Total)
		done = append(done, p.Done)
		return true
	})
	require.NoError(t, err)
	// a0 ends a; b0 is within b; b1 ends b; c0, d0 end c, d.
	require.Equal(t, []int64{1, 1, 2, 3, 4}, done)

	// Before the first item of a resumed run, progress is where it resumed.
	resumeAt := 2
	resumed := enumerators.Nested(&combCursor{Outer: &resumeAt}, func(_ context.Context, oc *int) (enumerators.Enumerator[string, int], error) {
		return enumerators.Slice(outer, oc), nil
	}, combInner(data), combKey, nil).(enumerators.ProgressReporter[combCursor])
	p, err = resumed.Progress(t.Context(), nil)
	require.NoError(t, err)
	require.Equal(t, enumerators.Progress{Done: 2, Total: 4, Unit: "items"}, p)

	noProgress := enumerators.Nested(nil, func(context.Context, *int) (enumerators.Enumerator[string, int], error) {
		return combFailing(outer, 2), nil
	}, combInner(data), combKey, nil).(enumerators.ProgressReporter[combCursor])
	p, err = noProgress.Progress(t.Context(), nil)
	require.NoError(t, err)
	require.Equal(t, enumerators.Progress{Done: -1, Total: -1, Unit: "items"}, p)
}

// Keys go through the cursor's JSON as they are: non-ASCII, quotes,
// backslashes and the empty string.
func TestNestedConformanceWithUnusualKeys(t *testing.T) {
	t.Parallel()
	outer := []string{"", "ü", "订单/1", `"quoted" \ back`, "\u2028\t"}
	data := map[string][]string{}
	for _, o := range outer {
		data[o] = []string{o + "#0", o + "#1"}
	}
	enumtest.Run(t, enumtest.Case[combItem, combCursor]{
		Build: func(_ context.Context, c *combCursor) (enumerators.Enumerator[combItem, combCursor], error) {
			return enumerators.Nested(c, func(_ context.Context, oc *int) (enumerators.Enumerator[string, int], error) {
				return enumerators.Slice(outer, oc), nil
			}, combInner(data), combKey, &enumerators.NestedOpts{OnStale: func(_ context.Context, s enumerators.StaleInnerCursor) error {
				return fmt.Errorf("unexpected stale cursor %+v", s)
			}}), nil
		},
		Want: combWant(outer, data),
	})
}
