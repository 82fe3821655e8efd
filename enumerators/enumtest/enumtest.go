// Package enumtest is the conformance suite every enumerator must pass: run
// it from your own tests for a custom enumerator.
//
// The suite checks the contract of enumerators.Enumerator: from no cursor the
// enumerator yields every item in order; built again from the cursor after
// any item (sent through the same JSON encoding the cursor store uses) it
// yields exactly the items after that one; stopping early returns nil and
// releases what the enumerator holds; a failing source surfaces its error.
package enumtest

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
)

// Case describes one enumerator under test.
type Case[T, C any] struct {
	// Build returns the enumerator resumed from cursor (nil: from the start).
	// Required.
	Build func(ctx context.Context, cursor *C) (enumerators.Enumerator[T, C], error)

	// Want is every item the enumerator yields from the start, in order.
	Want []T

	// Stride, when above 1, checks resumption from every Stride-th cursor
	// (plus the first and the last) instead of from every cursor, for long
	// enumerations. Zero means 1.
	Stride int

	// Open, if set, reports how many resources (rows, files, connections)
	// the enumerators built so far still hold. The suite requires it to be
	// zero after each enumeration ends, early or not.
	Open func() int

	// Failing, if set, returns an enumerator whose source fails after
	// yielding some items; Enumerate must return an error matching FailErr
	// (errors.Is).
	Failing func(ctx context.Context) (enumerators.Enumerator[T, C], error)
	FailErr error
}

// Run runs the whole suite as subtests of t.
func Run[T, C any](t *testing.T, c Case[T, C]) {
	t.Helper()
	require.NotNil(t, c.Build, "enumtest: Case.Build is required")

	t.Run("FromStart", func(t *testing.T) {
		items, _ := collect(t, c, nil)
		require.Equal(t, c.Want, items, "items from the start")
		c.checkReleased(t)
	})

	t.Run("ResumeFromEveryCursor", func(t *testing.T) {
		_, cursors := collect(t, c, nil)
		require.Len(t, cursors, len(c.Want), "one cursor per item")
		stride := max(c.Stride, 1)
		for i := 0; i < len(cursors); i++ {
			if i%stride != 0 && i != len(cursors)-1 {
				continue
			}
			resumed := roundTrip(t, cursors[i])
			items, _ := collect(t, c, resumed)
			want := c.Want[i+1:]
			if len(want) == 0 {
				require.Empty(t, items, "resuming after the last item (index %d) yields nothing", i)
			} else {
				require.Equal(t, want, items, "resuming after item %d (cursor %+v)", i, cursors[i])
			}
			c.checkReleased(t)
		}
	})

	// A check that does not apply to the case (nothing to stop, no failing
	// source) is not run rather than reported as skipped: skips in a test
	// run are kept for what could not be checked, such as a missing service.
	if len(c.Want) > 0 {
		t.Run("StopEarly", func(t *testing.T) { c.stopEarly(t) })
	}
	if c.Failing != nil {
		t.Run("SourceErrorSurfaces", func(t *testing.T) { c.sourceError(t) })
	}
}

func (c Case[T, C]) stopEarly(t *testing.T) {
	for _, stopAfter := range []int{1, len(c.Want) / 2} {
		if stopAfter == 0 {
			continue
		}
		e, err := c.Build(t.Context(), nil)
		require.NoError(t, err)
		var got []T
		calls := 0
		err = e.Enumerate(t.Context(), func(item T, _ C) bool {
			calls++
			got = append(got, item)
			return len(got) < stopAfter
		})
		require.NoError(t, err, "stopping early is not an error")
		require.Equal(t, stopAfter, calls, "yield was called again after it returned false")
		require.Equal(t, c.Want[:stopAfter], got)
		c.checkReleased(t)
	}
}

func (c Case[T, C]) sourceError(t *testing.T) {
	e, err := c.Failing(t.Context())
	if err != nil {
		require.ErrorIs(t, err, c.FailErr)
		return
	}
	err = e.Enumerate(t.Context(), func(T, C) bool { return true })
	require.Error(t, err, "a failing source must return an error")
	if c.FailErr != nil {
		require.ErrorIs(t, err, c.FailErr)
	}
	c.checkReleased(t)
}

func collect[T, C any](t *testing.T, c Case[T, C], from *C) ([]T, []C) {
	t.Helper()
	e, err := c.Build(t.Context(), from)
	require.NoError(t, err, "build")
	items, cursors, err := enumerators.Collect(t.Context(), e)
	require.NoError(t, err, "enumerate")
	return items, cursors
}

// roundTrip sends a cursor through the store's encoding, as a real resume
// does.
func roundTrip[C any](t *testing.T, c C) *C {
	t.Helper()
	raw, err := cursor.Encode(c)
	require.NoError(t, err, "encode cursor")
	back, err := cursor.Decode[C](raw)
	require.NoError(t, err, "decode cursor %s", raw)
	require.NotNil(t, back, "a cursor after an item must not encode as null (%s)", raw)
	return back
}

func (c Case[T, C]) checkReleased(t *testing.T) {
	t.Helper()
	if c.Open != nil {
		require.Zero(t, c.Open(), "resources still held after the enumeration ended")
	}
}

// ErrSource is a ready-made error for Case.FailErr.
var ErrSource = errors.New("enumtest: source failed")
