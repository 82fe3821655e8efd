package runner_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/csvrows"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// csvImport is an iterable job over CSV data whose fourth line is malformed.
type csvImport struct {
	mu   sync.Mutex
	rows []int
}

type csvRow struct {
	ID   int    `csv:"id"`
	Name string `csv:"name"`
}

const malformedCSV = "id,name\n1,a\n2,b\nthree,c\n4,d\n"

func (j *csvImport) BuildEnumerator(_ context.Context, _ struct{}, c *csvrows.Cursor) (enumerators.Enumerator[csvRow, csvrows.Cursor], error) {
	return csvrows.FromReader[csvRow](strings.NewReader(malformedCSV), c, csvrows.Config{}), nil
}

func (j *csvImport) EachIteration(_ context.Context, _ struct{}, r csvRow) error {
	j.mu.Lock()
	j.rows = append(j.rows, r.ID)
	j.mu.Unlock()
	return nil
}

// A CSV job that meets a malformed row dies with the row's error: its class
// is the CSV error's type, not the wrapper's, and its message names the line
// without a stuttering prefix.
func TestCSVJobWithAMalformedRowDiesWithTheRowsErrorClass(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts *queue.EnqueueOpts
		mw   []runner.Middleware
		msg  string
	}{
		{"max attempts 1", &queue.EnqueueOpts{MaxAttempts: 1}, nil,
			`csvrows: line 4: column "id": strconv.ParseInt: parsing "three": invalid syntax`},
		{"skip retry", nil, []runner.Middleware{func(ctx context.Context, _ *jobtype.Job, next func(context.Context) error) error {
			err := next(ctx)
			if errors.Is(err, csvrows.ErrRow) {
				return iterable.SkipRetry(err)
			}
			return err
		}}, `iterable: skip retries: csvrows: line 4: column "id": strconv.ParseInt: parsing "three": invalid syntax`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
				b := setup(t, r)
				job := &csvImport{}
				runner.RegisterIterable(b.reg, "import", job, nil)
				b.start(t, func(c *runner.Config) { c.Middleware = tc.mw })
				res, err := b.client.Enqueue(t.Context(), "import", struct{}{}, tc.opts)
				require.NoError(t, err)

				ev := b.ev.wait(t, res.Job.ID, jobtype.EventDead)
				require.Equal(t, tc.msg, ev.Error)
				require.Equal(t, []jobtype.EventType{jobtype.EventStarted, jobtype.EventFailed, jobtype.EventDead}, b.ev.types(res.Job.ID),
					"not retried")
				dead, err := b.client.SetJobs(t.Context(), queue.SetDead, 0, 10)
				require.NoError(t, err)
				require.Len(t, dead, 1)
				require.Equal(t, "*csvrows.RowError", dead[0].LastError.Class)
				require.Equal(t, tc.msg, dead[0].LastError.Message)
				require.NotContains(t, dead[0].LastError.Message, "enumerator:")
				job.mu.Lock()
				require.Equal(t, []int{1, 2}, job.rows, "the rows before the malformed one were done")
				job.mu.Unlock()
			})
		})
	}
}

// An enumerator's own error is recorded as it is: its message and its type.
func TestEnumeratorErrorIsRecordedAsItIs(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	b := setup(t, r)
	runner.RegisterIterable(b.reg, "broken", brokenEnum{}, &runner.KindOpts{MaxAttempts: 1})
	b.start(t, nil)
	res, err := b.client.Enqueue(t.Context(), "broken", struct{}{}, nil)
	require.NoError(t, err)
	ev := b.ev.wait(t, res.Job.ID, jobtype.EventDead)
	require.Equal(t, "source unavailable", ev.Error)
	dead, err := b.client.SetJobs(t.Context(), queue.SetDead, 0, 1)
	require.NoError(t, err)
	require.Equal(t, "*errors.errorString", dead[0].LastError.Class)
}

type brokenEnum struct{}

func (brokenEnum) BuildEnumerator(context.Context, struct{}, *int) (enumerators.Enumerator[int, int], error) {
	return enumerators.EnumeratorFunc[int, int](func(context.Context, func(int, int) bool) error {
		return errors.New("source unavailable")
	}), nil
}

func (brokenEnum) EachIteration(context.Context, struct{}, int) error { return nil }

// Every event of a real run, in process and as published, carries the job's
// kind, queue, attempt and meta.
func TestRunEventsDescribeTheJob(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		b := setup(t, r)
		job := newRecorder()
		job.failAt[5] = 1
		runner.RegisterIterable(b.reg, "count", job, nil)
		sub, err := b.client.Subscribe(ctx, nil)
		require.NoError(t, err)
		defer sub.Close()
		b.start(t, func(c *runner.Config) {
			c.PublishEvents = true
			c.Queues = []queue.QueueWeight{{Name: "reports", Weight: 1}}
		})
		res, err := b.client.Enqueue(ctx, "count", countArgs{N: 10}, &queue.EnqueueOpts{Queue: "reports", Meta: map[string]string{"tenant": "acme"}})
		require.NoError(t, err)
		b.ev.wait(t, res.Job.ID, jobtype.EventSucceeded)

		want := []struct {
			typ     jobtype.EventType
			attempt int
		}{
			{jobtype.EventStarted, 1}, {jobtype.EventFailed, 1}, {jobtype.EventRetrying, 1},
			{jobtype.EventResumed, 2}, {jobtype.EventSucceeded, 2},
		}
		check := func(how string, ev jobtype.Event, i int) {
			t.Helper()
			require.Equal(t, want[i].typ, ev.Type, "%s event %d", how, i)
			require.Equal(t, res.Job.ID, ev.JobID)
			require.Equal(t, "count", ev.Kind, "%s %s", how, ev.Type)
			require.Equal(t, "reports", ev.Queue, "%s %s", how, ev.Type)
			require.Equal(t, want[i].attempt, ev.Attempt, "%s %s", how, ev.Type)
			require.Equal(t, map[string]string{"tenant": "acme"}, ev.Meta, "%s %s", how, ev.Type)
		}
		b.ev.mu.Lock()
		var handled []jobtype.Event
		for _, ev := range b.ev.all {
			if ev.JobID == res.Job.ID {
				handled = append(handled, ev)
			}
		}
		b.ev.mu.Unlock()
		require.Len(t, handled, len(want))
		for i, ev := range handled {
			check("handled", ev, i)
		}
		for i := range want {
			select {
			case ev := <-sub.Events():
				check("published", ev, i)
			case <-time.After(10 * time.Second):
				t.Fatalf("published event %d (%s) missing", i, want[i].typ)
			}
		}
	})
}
