package enumerators

import (
	"context"
	"errors"
	"fmt"
)

// ErrLimit is matched by the error of a Limit enumerator built with a
// negative limit.
var ErrLimit = errors.New("enumerators: limit must not be negative")

// LimitCursor is the cursor of a Limit enumerator: the inner enumerator's
// cursor and how many items were yielded so far, over every run.
type LimitCursor[C any] struct {
	// Inner resumes the inner enumeration; nil starts it from the
	// beginning.
	Inner *C `json:"inner,omitempty"`
	// Count is the number of items yielded before this cursor.
	Count int64 `json:"count"`
}

// InnerCursor returns the cursor to build the inner enumerator from: nil
// for a nil c (the first run) or a c with no inner cursor.
func (c *LimitCursor[C]) InnerCursor() *C {
	if c == nil {
		return nil
	}
	return c.Inner
}

// Limit yields the first n items of e and stops, counting across runs: the
// count travels in the cursor, so a job interrupted after 40 of 100 items
// yields 60 more when it resumes, not 100. Build e from the saved cursor's
// InnerCursor and pass the saved cursor as cursor:
//
//	func (j Sample) BuildEnumerator(ctx context.Context, a Args, c *enumerators.LimitCursor[int64]) (enumerators.Enumerator[int64, enumerators.LimitCursor[int64]], error) {
//		return enumerators.Limit(enumerators.Range(0, a.Total, c.InnerCursor()), 1000, c), nil
//	}
//
// Once n items have been yielded the enumeration ends, and e is not even
// started by a run resumed after the last one, so the job completes. n is
// read on every run: raising it between runs lets a finished count go on
// only if the job runs again. Wrapped around Batches, n counts batches.
//
// Limit reports progress as items counted against n (Total is n).
// n < 0 gives an enumerator whose Enumerate fails with an error matching
// ErrLimit.
func Limit[T, C any](e Enumerator[T, C], n int64, cursor *LimitCursor[C]) Enumerator[T, LimitCursor[C]] {
	if n < 0 {
		return invalid[T, LimitCursor[C]](fmt.Errorf("%w: got %d", ErrLimit, n))
	}
	l := &limitEnum[T, C]{inner: e, n: n}
	if cursor != nil {
		l.count = cursor.Count
	}
	return l
}

type limitEnum[T, C any] struct {
	inner Enumerator[T, C]
	n     int64
	count int64
}

func (l *limitEnum[T, C]) Enumerate(ctx context.Context, yield func(T, LimitCursor[C]) bool) error {
	count := l.count
	if count >= l.n {
		return nil
	}
	return l.inner.Enumerate(ctx, func(item T, c C) bool {
		count++
		if !yield(item, LimitCursor[C]{Inner: &c, Count: count}) {
			return false
		}
		return count < l.n
	})
}

// Progress reports the items yielded against n.
func (l *limitEnum[T, C]) Progress(_ context.Context, cursor *LimitCursor[C]) (Progress, error) {
	done := l.count
	if cursor != nil {
		done = cursor.Count
	}
	return Progress{Done: min(done, l.n), Total: l.n, Unit: "items"}, nil
}
