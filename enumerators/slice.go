package enumerators

import (
	"context"
	"fmt"
)

// Slice enumerates items in order. Its cursor is the index of the next item
// to process, so the cursor after items[i] is i+1. A nil cursor starts at the
// beginning; a cursor outside [0, len(items)] is an error matching
// ErrInvalidCursor.
//
// The slice must hold the same items in the same order on every run of the
// job; build it from the job's arguments, not from data that changes.
func Slice[T any](items []T, cursor *int) Enumerator[T, int] {
	start := 0
	if cursor != nil {
		start = *cursor
		if start < 0 || start > len(items) {
			return invalid[T, int](fmt.Errorf("%w: slice index %d outside [0, %d]", ErrInvalidCursor, start, len(items)))
		}
	}
	return &sliceEnum[T]{items: items, start: start}
}

type sliceEnum[T any] struct {
	items []T
	start int
}

func (s *sliceEnum[T]) Enumerate(_ context.Context, yield func(T, int) bool) error {
	for i := s.start; i < len(s.items); i++ {
		if !yield(s.items[i], i+1) {
			return nil
		}
	}
	return nil
}

// Progress counts items: Done is the cursor, Total the slice length.
func (s *sliceEnum[T]) Progress(_ context.Context, cursor *int) (Progress, error) {
	done := s.start
	if cursor != nil {
		done = *cursor
	}
	return Progress{Done: int64(done), Total: int64(len(s.items)), Unit: "items"}, nil
}

// Range enumerates the integers from start up to, not including, end. Its
// cursor is the next integer to process, so the cursor after i is i+1. A nil
// cursor starts at start; a cursor outside [start, end] is an error matching
// ErrInvalidCursor. An empty range (end <= start) yields nothing.
func Range(start, end int64, cursor *int64) Enumerator[int64, int64] {
	if end < start {
		end = start
	}
	from := start
	if cursor != nil {
		from = *cursor
		if from < start || from > end {
			return invalid[int64, int64](fmt.Errorf("%w: range position %d outside [%d, %d]", ErrInvalidCursor, from, start, end))
		}
	}
	return &rangeEnum{start: start, from: from, end: end}
}

type rangeEnum struct {
	start, from, end int64
}

func (r *rangeEnum) Enumerate(_ context.Context, yield func(int64, int64) bool) error {
	for i := r.from; i < r.end; i++ {
		if !yield(i, i+1) {
			return nil
		}
	}
	return nil
}

// Progress counts integers: Done is how many lie before the cursor.
func (r *rangeEnum) Progress(_ context.Context, cursor *int64) (Progress, error) {
	at := r.from
	if cursor != nil {
		at = *cursor
	}
	return Progress{Done: at - r.start, Total: r.end - r.start, Unit: "items"}, nil
}
