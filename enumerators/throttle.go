package enumerators

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

const (
	// ThrottleWaitDefault is ThrottleConfig.Wait when it is zero.
	ThrottleWaitDefault = 30 * time.Second
	// ThrottleCheckEveryDefault is ThrottleConfig.CheckEvery when it is zero.
	ThrottleCheckEveryDefault = time.Second
)

// ErrThrottleConfig is matched by the error of a Throttle enumerator built
// from an invalid ThrottleConfig.
var ErrThrottleConfig = errors.New("enumerators: invalid throttle config")

// ThrottleConfig configures Throttle.
type ThrottleConfig struct {
	// Pressure reports whether the system is under pressure now (replication
	// lag above a bound, a queue too deep, a rate limit reached). It is
	// called with the context given to Enumerate. An error from it ends the
	// enumeration with that error. Required.
	Pressure func(ctx context.Context) (bool, error)

	// Wait is how long the job should wait before it runs again once it was
	// throttled: the RetryAfter of the ThrottledError. Zero means
	// ThrottleWaitDefault (30 s). Negative is invalid.
	Wait time.Duration

	// CheckEvery is the least time between two calls of Pressure, so an
	// expensive check (a replication lag query) is not run per item.
	// Pressure is always called before the first item; after that, before
	// an item only when CheckEvery has passed since the last call returned
	// (a timer sets a flag, so no clock is read per item). Zero means
	// ThrottleCheckEveryDefault (1 s); a negative value checks before every
	// item.
	CheckEvery time.Duration

	// after replaces time.AfterFunc in tests: it calls f once d has passed,
	// unless cancel is called first.
	after func(d time.Duration, f func()) (cancel func())
}

func (c ThrottleConfig) withDefaults() ThrottleConfig {
	if c.Wait == 0 {
		c.Wait = ThrottleWaitDefault
	}
	if c.CheckEvery == 0 {
		c.CheckEvery = ThrottleCheckEveryDefault
	}
	if c.after == nil {
		c.after = func(d time.Duration, f func()) func() {
			t := time.AfterFunc(d, f)
			return func() { t.Stop() }
		}
	}
	return c
}

func (c ThrottleConfig) validate() error {
	if c.Pressure == nil {
		return fmt.Errorf("%w: Pressure is required", ErrThrottleConfig)
	}
	if c.Wait < 0 {
		return fmt.Errorf("%w: Wait %s is negative", ErrThrottleConfig, c.Wait)
	}
	return nil
}

// Throttle passes the items of e through while cfg.Pressure reports no
// pressure. When it reports pressure before an item, the enumeration ends
// without yielding that item and Enumerate returns a *ThrottledError whose
// RetryAfter is cfg.Wait (it matches ErrThrottled with errors.Is). The items
// yielded before keep their cursors, so the runner checkpoints the cursor of
// the last item done, and the job resumes after Wait with that item's
// successor. The runner, not the enumerator, schedules the next run.
//
// Pressure is checked lazily, before an item is yielded: an enumeration with
// no items left completes even under pressure, and Pressure is not called.
// Wrap a Batches enumerator to check between batches rather than items.
//
// When e implements ProgressReporter, so does the throttled enumerator, with
// the same progress.
//
// An invalid cfg gives an enumerator whose Enumerate fails with an error
// matching ErrThrottleConfig.
func Throttle[T, C any](e Enumerator[T, C], cfg ThrottleConfig) Enumerator[T, C] {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return invalid[T, C](err)
	}
	t := &throttleEnum[T, C]{inner: e, cfg: cfg}
	if pr, ok := e.(ProgressReporter[C]); ok {
		return &throttleProgressEnum[T, C]{throttleEnum: t, pr: pr}
	}
	return t
}

type throttleEnum[T, C any] struct {
	inner Enumerator[T, C]
	cfg   ThrottleConfig
}

// Enumerate checks Pressure before the first item and then whenever a
// timer of CheckEvery, started after each check, has fired: the per-item
// cost is one atomic load (reading the clock per item would cost more than
// the rest of the loop).
func (t *throttleEnum[T, C]) Enumerate(ctx context.Context, yield func(T, C) bool) error {
	var (
		due     atomic.Bool
		cancel  func()
		stopErr error
	)
	due.Store(true)
	defer func() {
		if cancel != nil {
			cancel()
		}
	}()
	err := t.inner.Enumerate(ctx, func(item T, c C) bool {
		if t.cfg.CheckEvery < 0 || due.Load() {
			due.Store(false)
			busy, err := t.cfg.Pressure(ctx)
			if err != nil {
				stopErr = fmt.Errorf("enumerators: throttle pressure check: %w", err)
				return false
			}
			if busy {
				stopErr = &ThrottledError{RetryAfter: t.cfg.Wait}
				return false
			}
			if t.cfg.CheckEvery > 0 {
				cancel = t.cfg.after(t.cfg.CheckEvery, func() { due.Store(true) })
			}
		}
		return yield(item, c)
	})
	if stopErr != nil {
		return stopErr
	}
	return err
}

// throttleProgressEnum is a throttleEnum whose inner enumerator reports
// progress.
type throttleProgressEnum[T, C any] struct {
	*throttleEnum[T, C]
	pr ProgressReporter[C]
}

// Progress returns the inner enumerator's progress at cursor.
func (t *throttleProgressEnum[T, C]) Progress(ctx context.Context, cursor *C) (Progress, error) {
	return t.pr.Progress(ctx, cursor)
}
