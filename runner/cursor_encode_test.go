package runner_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/runner"
)

// pageCursor fails to encode past page 1 (a user bug: an unsupported value,
// a MarshalJSON that errors).
type pageCursor struct{ Page int }

func (c pageCursor) MarshalJSON() ([]byte, error) {
	if c.Page > 1 {
		return nil, errors.New("page cursor cannot be encoded")
	}
	return []byte(`{"Page":1}`), nil
}

type badCursorJob struct{}

func (badCursorJob) BuildEnumerator(context.Context, struct{}, *pageCursor) (enumerators.Enumerator[int, pageCursor], error) {
	return enumerators.EnumeratorFunc[int, pageCursor](func(_ context.Context, yield func(int, pageCursor) bool) error {
		yield(1, pageCursor{Page: 2})
		return nil
	}), nil
}

func (badCursorJob) EachIteration(context.Context, struct{}, int) error { return nil }

// The final save of a run goes through record(), which retries every error
// but a lost lease until it succeeds ("retrying through Redis outages"). An
// error that is not an outage, here cursor.Encode failing, is retried forever:
// the worker is wedged, the job never ends and, its process heartbeating,
// is never recovered either. (A checkpoint during the loop merely logs the
// same error.) The run should end, as a failure.
func TestRunWhoseCursorCannotBeEncodedEnds(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, "badcursor", badCursorJob{}, nil)
	ended := make(chan jobtype.EventType, 16)
	rr := startRunner(t, runner.Config{
		Redis: r.Client, Registry: reg, Namespace: r.Namespace, CheckpointInterval: time.Hour,
		HeartbeatInterval: time.Hour, DeadAfter: 2 * time.Hour, PollInterval: time.Hour,
		FinishTimeout: 500 * time.Millisecond, Backoff: func(int) time.Duration { return time.Hour },
		OnEvent: func(_ context.Context, ev jobtype.Event) {
			switch ev.Type {
			case jobtype.EventSucceeded, jobtype.EventRetrying, jobtype.EventDead, jobtype.EventFailed:
				select {
				case ended <- ev.Type:
				default:
				}
			}
		},
	})
	t.Cleanup(func() { rr.Shutdown().HardStop() }) // frees the wedged worker before Stop
	_, err := newClient(t, r).Enqueue(t.Context(), "badcursor", struct{}{}, nil)
	require.NoError(t, err)
	select {
	case typ := <-ended:
		t.Logf("the run ended: %s", typ)
	case <-time.After(5 * time.Second):
		t.Fatal("the run never ended: its worker retries the final save forever")
	}
}
