package enumerators

import (
	"context"
	"errors"
	"fmt"
)

// ErrBatchSize is matched by the error of a Batches enumerator built with a
// batch size below 1.
var ErrBatchSize = errors.New("enumerators: batch size must be at least 1")

// batchPrealloc caps the capacity allocated up front for one batch, so a huge
// n over a short enumeration does not reserve memory it never fills.
const batchPrealloc = 4096

// Batches groups the items of e into slices of n items, in order; the last
// batch holds what is left and may be shorter. An empty e yields no batch.
//
// The cursor of a batch is the cursor of its last item, so the job's cursor
// moves only once the whole batch succeeded: an interrupted or failed batch
// is processed again from its first item, and resuming from a batch's cursor
// yields the next batch. To resume, build e from that cursor and wrap it
// again with the same n:
//
//	enumerators.Batches(enumerators.Range(0, total, cursor), 100)
//
// Each batch is a fresh slice that belongs to the caller: it may be kept or
// changed, and later batches never write to it. That costs one allocation
// per batch (not per item).
//
// If e fails, the items gathered since the last full batch are dropped (their
// cursors were never handed out, so a retry reads them again) and e's error
// is returned as is.
//
// When e implements ProgressReporter, so does the batch enumerator, with the
// same progress (counted in e's units, not in batches).
//
// n < 1 gives an enumerator whose Enumerate fails with an error matching
// ErrBatchSize.
func Batches[T, C any](e Enumerator[T, C], n int) Enumerator[[]T, C] {
	if n < 1 {
		return invalid[[]T, C](fmt.Errorf("%w: got %d", ErrBatchSize, n))
	}
	b := &batchEnum[T, C]{inner: e, n: n}
	if pr, ok := e.(ProgressReporter[C]); ok {
		return &batchProgressEnum[T, C]{batchEnum: b, pr: pr}
	}
	return b
}

type batchEnum[T, C any] struct {
	inner Enumerator[T, C]
	n     int
}

func (b *batchEnum[T, C]) Enumerate(ctx context.Context, yield func([]T, C) bool) error {
	var (
		batch   []T
		last    C
		stopped bool
	)
	err := b.inner.Enumerate(ctx, func(item T, c C) bool {
		if batch == nil {
			batch = make([]T, 0, min(b.n, batchPrealloc))
		}
		batch = append(batch, item)
		last = c
		if len(batch) < b.n {
			return true
		}
		full := batch
		batch = nil
		if !yield(full, last) {
			stopped = true
			return false
		}
		return true
	})
	if err != nil || stopped || len(batch) == 0 {
		return err
	}
	yield(batch, last)
	return nil
}

// batchProgressEnum is a batchEnum whose inner enumerator reports progress.
type batchProgressEnum[T, C any] struct {
	*batchEnum[T, C]
	pr ProgressReporter[C]
}

// Progress returns the inner enumerator's progress at cursor.
func (b *batchProgressEnum[T, C]) Progress(ctx context.Context, cursor *C) (Progress, error) {
	return b.pr.Progress(ctx, cursor)
}
