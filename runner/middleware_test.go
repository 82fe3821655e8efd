package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/runner"
)

type panicky struct{}

func (panicky) Perform(context.Context, struct{}) error { panic("boom") }

// execute replaces the run's outcome with failed(err, trace) whenever the
// middleware chain returns an error that is not the very value the run
// failed with. A middleware that wraps the error it gets from next (tracing,
// logging, error-reporting middleware do) thereby throws away the panic's
// stack trace (and an iterable run's progress): the job in the retry or dead
// set has no trace, although the README promises "a bounded stack trace".
func TestWrappingMiddlewareKeepsThePanicTrace(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	reg := runner.NewRegistry()
	runner.Register(reg, "panicky", panicky{}, nil)
	wrap := func(ctx context.Context, _ *jobtype.Job, next func(context.Context) error) error {
		if err := next(ctx); err != nil {
			return fmt.Errorf("traced: %w", err)
		}
		return nil
	}
	startRunner(t, runner.Config{
		Redis: r.Client, Registry: reg, Namespace: r.Namespace,
		HeartbeatInterval: time.Hour, DeadAfter: 2 * time.Hour, PollInterval: time.Hour,
		Backoff:    func(int) time.Duration { return time.Hour },
		Middleware: []runner.Middleware{wrap},
	})
	ctx := t.Context()
	res, err := newClient(t, r).Enqueue(ctx, "panicky", struct{}{}, nil)
	require.NoError(t, err)
	retry := dq(r).Retry()
	require.True(t, testutil.WaitFor(10*time.Second, func() bool { return r.Client.ZScore(ctx, retry, res.Job.ID).Err() == nil }))
	var jerr jobtype.JobError
	require.NoError(t, json.Unmarshal([]byte(r.Client.HGet(ctx, dq(r).Errors(), res.Job.ID).Val()), &jerr))
	require.Contains(t, jerr.Message, "boom")
	require.Contains(t, jerr.Trace, "panicky", "the stack trace of the panic is kept")
}
