package runner_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/runner"
)

// badProgress is an enumerator over three items whose Progress method
// panics (user code with a bug, e.g. a division by a zero total).
type badProgress struct {
	inner enumerators.Enumerator[int64, int64]
}

func (b badProgress) Enumerate(ctx context.Context, yield func(int64, int64) bool) error {
	return b.inner.Enumerate(ctx, yield)
}

func (badProgress) Progress(context.Context, *int64) (enumerators.Progress, error) {
	var total int64
	return enumerators.Progress{Done: 3 / total}, nil // panics: integer divide by zero
}

type badProgressJob struct{}

func (badProgressJob) BuildEnumerator(_ context.Context, _ struct{}, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return badProgress{enumerators.Range(0, 3, c)}, nil
}

func (badProgressJob) EachIteration(context.Context, struct{}, int64) error { return nil }

// User code runs unprotected at the end of an iterable run: end() -> saveFinal
// -> snapshot -> the enumerator's Progress (and cursor.Encode, i.e. the
// cursor type's MarshalJSON). Inside the item loop the same calls are covered
// by protect (they run under Enumerate), but at the end of the run a panic
// there kills the worker goroutine and so the whole process, every other
// job's run with it (PanicError: "The panic is recovered; the job is retried
// like any failure and the worker goes on"). The runner runs in a child
// process so the crash can be observed.
func TestPanicInProgressAtTheEndOfARunDoesNotCrashTheProcess(t *testing.T) {
	if os.Getenv("ITERJOB_REVIEW_CHILD") == "1" {
		progressPanicChild(t)
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPanicInProgressAtTheEndOfARunDoesNotCrashTheProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "ITERJOB_REVIEW_CHILD=1")
	out, err := cmd.CombinedOutput()
	if len(out) > 3000 {
		out = out[:3000]
	}
	require.NoError(t, err, "the worker process crashed:\n%s", out)
}

func progressPanicChild(t *testing.T) {
	r := testutil.Miniredis(t)
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, "bad", badProgressJob{}, nil)
	ended := make(chan jobtype.EventType, 16)
	startRunner(t, runner.Config{
		Redis: r.Client, Registry: reg, Namespace: r.Namespace, CheckpointInterval: time.Hour,
		HeartbeatInterval: time.Hour, DeadAfter: 2 * time.Hour, PollInterval: time.Hour,
		Backoff: func(int) time.Duration { return time.Hour },
		OnEvent: func(_ context.Context, ev jobtype.Event) {
			switch ev.Type {
			case jobtype.EventSucceeded, jobtype.EventRetrying, jobtype.EventDead:
				ended <- ev.Type
			}
		},
	})
	_, err := newClient(t, r).Enqueue(t.Context(), "bad", struct{}{}, nil)
	require.NoError(t, err)
	select {
	case typ := <-ended:
		t.Logf("the run ended: %s", typ)
	case <-time.After(10 * time.Second):
		t.Fatal("the run never ended")
	}
}
