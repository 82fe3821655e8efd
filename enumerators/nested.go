package enumerators

import (
	"context"
	"fmt"
	"log/slog"
)

// NestedCursor is the cursor of a Nested enumerator: where the outer
// enumeration stands, which outer item the inner cursor belongs to, and where
// the inner enumeration of that item stands.
//
// Between two outer items (after the last inner item of one) only Outer is
// set. Within an outer item, Outer is the outer cursor before that item (nil
// for the first outer item), Key its identity and Inner the inner cursor
// after the last inner item done.
type NestedCursor[OC, IC any] struct {
	// Outer resumes the outer enumeration at the current outer item; nil
	// starts it from the beginning.
	Outer *OC `json:"outer,omitempty"`
	// Key is the key (see Nested) of the outer item Inner belongs to.
	Key string `json:"key,omitempty"`
	// Inner resumes the inner enumeration of that outer item; nil starts it
	// from the beginning.
	Inner *IC `json:"inner,omitempty"`
}

// NestedItem is what a Nested enumerator yields: an inner item with the outer
// item it belongs to.
type NestedItem[O, I any] struct {
	Outer O
	Inner I
}

// StaleInnerCursor describes an inner cursor that Nested discarded because
// the outer item it was saved for is no longer at the saved position.
type StaleInnerCursor struct {
	// SavedKey is the key stored in the cursor.
	SavedKey string
	// FoundKey is the key of the outer item now at that position; empty when
	// Found is false.
	FoundKey string
	// Found is false when the outer enumeration has no item left there.
	Found bool
}

// NestedOpts are the optional settings of Nested; a nil *NestedOpts uses the
// zero value of every field.
type NestedOpts struct {
	// OnStale, if set, is called when a saved inner cursor is discarded (see
	// Nested). Returning nil goes on; returning an error ends the enumeration
	// with it, before any item is yielded, for jobs that prefer to fail
	// rather than restart an outer item.
	OnStale func(ctx context.Context, stale StaleInnerCursor) error
	// Logger, if set, logs each discarded inner cursor at Warn level.
	Logger *slog.Logger
}

// Nested enumerates, for each item of an outer enumeration, the items of an
// inner enumeration built from that outer item: for each order its lines,
// for each account its events. It yields every inner item with its outer
// item, in order; an outer item with no inner items yields nothing.
//
// outer builds the outer enumerator from its cursor (nil: from the start);
// inner builds the inner enumerator of one outer item from its cursor (nil:
// from the start); key returns a string that identifies an outer item (its
// primary key, and a version such as updated_at if the inner items may change
// while the key stays). All three are required and are called during
// Enumerate, with its context.
//
// The cursor after an inner item resumes at the next inner item of the same
// outer item; the cursor after the last inner item of an outer item resumes
// at the next outer item. Nothing is skipped or repeated while the data stays
// the same. To know that an inner item is the last, Nested reads one inner
// item ahead: an inner item is yielded once the inner enumerator produced the
// next one or finished.
//
// If the outer data changed between two runs, the outer item found at the
// saved position may not be the one the saved inner cursor belongs to (it was
// deleted, or another item was inserted between the previous outer item and
// it). Nested compares its key with the saved key; when they differ, it never
// applies the inner cursor to the wrong outer item: it discards it, calls
// opts.OnStale and logs to opts.Logger if set, and enumerates the found outer
// item from its first inner item. An inserted outer item is therefore
// processed in full, and the interrupted one, if still there, is processed
// again from its start (some of its inner items twice) rather than partly
// skipped. When no outer item is left at the saved position, the inner cursor
// is discarded the same way (StaleInnerCursor.Found is false) and the
// enumeration ends.
//
// How well Nested can place the outer item depends on the outer cursor: a
// keyset cursor (the last key done) is unaffected by rows inserted or deleted
// before it, but an index cursor (Slice) moves with them and may skip outer
// items; use Slice only for data that does not change.
//
// Nested always implements ProgressReporter: when the outer enumerator
// reports progress, Progress builds an outer enumerator from the start and
// returns its progress at the outer cursor, counted in outer items (or the
// outer's unit); otherwise it reports Done and Total as -1 (unknown).
//
// Errors from building or running either enumerator are returned wrapped, so
// errors.Is still matches them (an inner cursor that no longer fits its outer
// item's data is reported by the inner enumerator, typically as
// ErrInvalidCursor).
func Nested[O, OC, I, IC any](
	cursor *NestedCursor[OC, IC],
	outer func(ctx context.Context, cursor *OC) (Enumerator[O, OC], error),
	inner func(ctx context.Context, outer O, cursor *IC) (Enumerator[I, IC], error),
	key func(outer O) string,
	opts *NestedOpts,
) Enumerator[NestedItem[O, I], NestedCursor[OC, IC]] {
	if outer == nil || inner == nil || key == nil {
		return invalid[NestedItem[O, I], NestedCursor[OC, IC]](
			fmt.Errorf("enumerators: nested: outer, inner and key are required"))
	}
	n := &nestedEnum[O, OC, I, IC]{outer: outer, inner: inner, key: key}
	if cursor != nil {
		n.start = *cursor
	}
	if opts != nil {
		n.opts = *opts
	}
	return n
}

type nestedEnum[O, OC, I, IC any] struct {
	start NestedCursor[OC, IC]
	outer func(context.Context, *OC) (Enumerator[O, OC], error)
	inner func(context.Context, O, *IC) (Enumerator[I, IC], error)
	key   func(O) string
	opts  NestedOpts
}

func (n *nestedEnum[O, OC, I, IC]) Enumerate(ctx context.Context, yield func(NestedItem[O, I], NestedCursor[OC, IC]) bool) error {
	outerEnum, err := n.outer(ctx, n.start.Outer)
	if err != nil {
		return fmt.Errorf("enumerators: nested: build outer enumerator: %w", err)
	}
	var (
		before    = n.start.Outer // outer cursor before the current outer item
		resumeAt  = n.start.Inner // inner cursor to check against the first outer item
		stopped   bool
		stopErr   error
		pending   I
		pendingIC IC
		has       bool
	)
	err = outerEnum.Enumerate(ctx, func(o O, oc OC) bool {
		k := n.key(o)
		var from *IC
		if resumeAt != nil {
			if k == n.start.Key {
				from = resumeAt
			} else if stopErr = n.stale(ctx, StaleInnerCursor{SavedKey: n.start.Key, FoundKey: k, Found: true}); stopErr != nil {
				return false
			}
			resumeAt = nil
		}
		innerEnum, err := n.inner(ctx, o, from)
		if err != nil {
			stopErr = fmt.Errorf("enumerators: nested: build inner enumerator of %q: %w", k, err)
			return false
		}
		has = false
		err = innerEnum.Enumerate(ctx, func(item I, ic IC) bool {
			if has {
				// pending is not the last inner item: its cursor stays
				// within this outer item.
				after := pendingIC
				if !yield(NestedItem[O, I]{Outer: o, Inner: pending}, NestedCursor[OC, IC]{Outer: before, Key: k, Inner: &after}) {
					stopped = true
					return false
				}
			}
			pending, pendingIC, has = item, ic, true
			return true
		})
		if err != nil {
			stopErr = fmt.Errorf("enumerators: nested: inner enumeration of %q: %w", k, err)
			return false
		}
		if stopped {
			return false
		}
		next := oc
		before = &next
		if has {
			// The last inner item: its cursor moves to the next outer item.
			has = false
			if !yield(NestedItem[O, I]{Outer: o, Inner: pending}, NestedCursor[OC, IC]{Outer: before}) {
				stopped = true
				return false
			}
		}
		return true
	})
	if stopErr != nil {
		return stopErr
	}
	if err != nil {
		return fmt.Errorf("enumerators: nested: outer enumeration: %w", err)
	}
	if resumeAt != nil && !stopped {
		// The saved outer item and everything after it are gone.
		return n.stale(ctx, StaleInnerCursor{SavedKey: n.start.Key})
	}
	return nil
}

// stale reports a discarded inner cursor and returns OnStale's verdict.
func (n *nestedEnum[O, OC, I, IC]) stale(ctx context.Context, s StaleInnerCursor) error {
	if n.opts.Logger != nil {
		n.opts.Logger.WarnContext(ctx, "enumerators: nested: discarding an inner cursor saved for another outer item",
			slog.String("saved_key", s.SavedKey), slog.String("found_key", s.FoundKey), slog.Bool("found", s.Found))
	}
	if n.opts.OnStale == nil {
		return nil
	}
	if err := n.opts.OnStale(ctx, s); err != nil {
		return fmt.Errorf("enumerators: nested: stale inner cursor saved for %q: %w", s.SavedKey, err)
	}
	return nil
}

// Progress reports the outer enumerator's progress at the outer part of
// cursor, or Done and Total -1 when the outer enumerator does not report
// progress. It builds an outer enumerator from the start for that.
func (n *nestedEnum[O, OC, I, IC]) Progress(ctx context.Context, cursor *NestedCursor[OC, IC]) (Progress, error) {
	e, err := n.outer(ctx, nil)
	if err != nil {
		return Progress{}, fmt.Errorf("enumerators: nested: build outer enumerator: %w", err)
	}
	pr, ok := e.(ProgressReporter[OC])
	if !ok {
		return Progress{Done: -1, Total: -1, Unit: "items"}, nil
	}
	var at *OC
	if cursor != nil {
		at = cursor.Outer
	} else {
		at = n.start.Outer
	}
	return pr.Progress(ctx, at)
}
