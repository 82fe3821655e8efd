package iterable

import (
	"errors"
	"fmt"
	"time"
)

// Errors a job returns to steer the runner. Wrap them, or build them with
// SkipRetry, Snooze and Cancel; the runner finds them with errors.Is/As.
var (
	// ErrSkipRetry is matched by errors from SkipRetry.
	ErrSkipRetry = errors.New("iterable: skip retries")
	// ErrSnooze is matched by errors from Snooze.
	ErrSnooze = errors.New("iterable: snooze")
	// ErrCancel is matched by errors from Cancel.
	ErrCancel = errors.New("iterable: cancel")
)

// SkipRetryError sends a failed job straight to the dead set.
type SkipRetryError struct{ Err error }

// SkipRetry wraps err so the job is not retried: it goes to the dead set with
// err as its error.
func SkipRetry(err error) error { return &SkipRetryError{Err: err} }

func (e *SkipRetryError) Error() string { return "iterable: skip retries: " + errString(e.Err) }
func (e *SkipRetryError) Unwrap() error { return e.Err }

// Is matches ErrSkipRetry and any *SkipRetryError.
func (e *SkipRetryError) Is(target error) bool {
	_, ok := target.(*SkipRetryError)
	return ok || target == ErrSkipRetry
}

// SnoozeError puts the job back to run after a delay, without counting an
// attempt. An iterable job keeps its cursor.
type SnoozeError struct{ Duration time.Duration }

// Snooze returns an error that reschedules the job to run after d, as a
// pause rather than a failure: no attempt is consumed.
func Snooze(d time.Duration) error { return &SnoozeError{Duration: d} }

func (e *SnoozeError) Error() string { return fmt.Sprintf("iterable: snooze for %s", e.Duration) }

// Is matches ErrSnooze and any *SnoozeError.
func (e *SnoozeError) Is(target error) bool {
	_, ok := target.(*SnoozeError)
	return ok || target == ErrSnooze
}

// CancelError ends the job for good: it is not retried or re-enqueued, and
// OnStop sees Cancelled.
type CancelError struct{ Err error }

// Cancel wraps err (which may be nil) so the job is cancelled.
func Cancel(err error) error { return &CancelError{Err: err} }

func (e *CancelError) Error() string { return "iterable: cancel: " + errString(e.Err) }
func (e *CancelError) Unwrap() error { return e.Err }

// Is matches ErrCancel and any *CancelError.
func (e *CancelError) Is(target error) bool {
	_, ok := target.(*CancelError)
	return ok || target == ErrCancel
}

func errString(err error) string {
	if err == nil {
		return "no reason given"
	}
	return err.Error()
}
