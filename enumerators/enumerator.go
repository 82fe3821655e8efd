package enumerators

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"
)

// ErrInvalidCursor is matched (with errors.Is) by every error an enumerator
// returns because the cursor it was built from does not fit its data: an index
// past the end, a key tuple of the wrong length, a CSV offset beyond the file.
var ErrInvalidCursor = errors.New("enumerators: invalid cursor")

// ErrThrottled is matched by a *ThrottledError.
var ErrThrottled = errors.New("enumerators: throttled")

// Enumerator yields items in a fixed order, each paired with the cursor that
// resumes after it: an enumerator built again from that cursor yields the
// next item first. Nothing is skipped and nothing repeated.
//
// Enumerate is a plain loop: it calls yield for each item until the items run
// out (it returns nil) or yield returns false (it releases what it holds and
// returns nil), or the source fails (it returns the error). It must not call
// yield again after yield returned false.
type Enumerator[T, C any] interface {
	Enumerate(ctx context.Context, yield func(item T, cursor C) bool) error
}

// EnumeratorFunc adapts a function to the Enumerator interface.
type EnumeratorFunc[T, C any] func(ctx context.Context, yield func(item T, cursor C) bool) error

// Enumerate calls f.
func (f EnumeratorFunc[T, C]) Enumerate(ctx context.Context, yield func(item T, cursor C) bool) error {
	return f(ctx, yield)
}

// Progress is how far an enumeration has come, counted in one unit.
type Progress struct {
	// Done is the number of units before the cursor, or -1 when the
	// enumerator cannot place a cursor (the runner then counts items).
	Done int64 `json:"done"`
	// Total is the number of units in the whole enumeration, or -1 when
	// unknown.
	Total int64 `json:"total"`
	// Unit names what is counted: "items", "rows" or "bytes".
	Unit string `json:"unit"`
}

// ProgressReporter is implemented by enumerators that know their size. The
// runner calls Progress at checkpoints (never per item) with the cursor
// reached so far, nil before the first item, to record progress and an ETA.
// An implementation must be cheap: no second read of the data.
type ProgressReporter[C any] interface {
	Progress(ctx context.Context, cursor *C) (Progress, error)
}

// ThrottledError ends an enumeration early because the system is under
// pressure. The runner checkpoints the job and schedules it to run again
// after RetryAfter. It is not a failure and does not consume a retry.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("enumerators: throttled, retry after %s", e.RetryAfter)
}

// Is reports whether target is ErrThrottled or another *ThrottledError.
func (e *ThrottledError) Is(target error) bool {
	if target == ErrThrottled {
		return true
	}
	_, ok := target.(*ThrottledError)
	return ok
}

// All returns a range-over-func view of e, for tests and for code that
// drives an enumerator by hand. After the loop, call finish to learn whether
// the enumeration failed:
//
//	seq, finish := enumerators.All(ctx, e)
//	for item, cursor := range seq { ... }
//	if err := finish(); err != nil { ... }
//
// The sequence may be ranged over once.
func All[T, C any](ctx context.Context, e Enumerator[T, C]) (seq iter.Seq2[T, C], finish func() error) {
	var err error
	seq = func(yield func(T, C) bool) {
		err = e.Enumerate(ctx, yield)
	}
	return seq, func() error { return err }
}

// Collect runs e to the end and returns its items and the cursor after each.
func Collect[T, C any](ctx context.Context, e Enumerator[T, C]) ([]T, []C, error) {
	var items []T
	var cursors []C
	err := e.Enumerate(ctx, func(item T, c C) bool {
		items = append(items, item)
		cursors = append(cursors, c)
		return true
	})
	return items, cursors, err
}

// invalid returns an enumerator that fails at once with err.
func invalid[T, C any](err error) Enumerator[T, C] {
	return EnumeratorFunc[T, C](func(context.Context, func(T, C) bool) error { return err })
}
