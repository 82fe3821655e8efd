package iterjobtest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/iterjobtest"
)

// Start a job at a cursor, as queue.EnqueueOpts.StartCursor does: the same
// decoding and the same check of the cursor's shape.
func ExampleOptions_startCursor() {
	ctx := context.Background()
	job := &backfill{}

	run, _ := iterjobtest.IterateWith(ctx, job, BackfillArgs{Rows: 10}, nil, iterjobtest.Options{StartCursor: 7})
	fmt.Println(run.Info.Kind, run.Action, job.done)

	bad, err := iterjobtest.IterateWith(ctx, job, BackfillArgs{Rows: 10}, nil, iterjobtest.Options{StartCursor: "row-7"})
	fmt.Println(bad.Action, errors.Is(err, cursor.ErrInvalid), errors.Is(err, iterable.ErrSkipRetry))
	// Output:
	// backfill ack [7 8 9]
	// dead true true
}

// A failed iterable job is retried later, on the clock the test sets, and
// the retry resumes after the last item that succeeded.
func ExampleOptions_retry() {
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	opts := iterjobtest.Options{
		Now:     func() time.Time { return now },
		Backoff: func(attempt int) time.Duration { return time.Duration(attempt) * time.Minute },
	}
	job := &flaky{failAt: 2}

	failed, err := iterjobtest.IterateWith(ctx, job, 4, nil, opts)
	fmt.Println(failed.Action, failed.RunAt.Format(time.TimeOnly), string(failed.Cursor), err)
	retried, err := iterjobtest.IterateWith(ctx, job, 4, failed, opts)
	fmt.Println(retried.Action, retried.Info.Attempt, err)
	fmt.Println(job.done, job.hooks)
	// Output:
	// retry 03:05:05 2 boom
	// ack 2 <nil>
	// [0 1 2 3] [start stop:failed resume complete stop:completed]
}
