package iterjobtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/iterjobtest"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// recT records the failures of an assertion.
type recT struct{ failed []string }

func (r *recT) Helper() {}
func (r *recT) Fatalf(format string, args ...any) {
	r.failed = append(r.failed, fmt.Sprintf(format, args...))
}

type InvoiceArgs struct {
	Customer string `json:"customer"`
	Cents    int    `json:"cents"`
}

func (InvoiceArgs) Kind() string { return "invoice" }

// The enqueue assertions match kind, args (as JSON), queue, schedule and
// meta, and say what was enqueued when nothing matches.
func TestRequireEnqueuedMatchesWhatWasEnqueued(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	ctx := t.Context()
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace})
	require.NoError(t, err)
	at := time.Now().Add(2 * time.Hour).Truncate(time.Millisecond)
	_, err = client.EnqueueArgs(ctx, InvoiceArgs{Customer: "acme", Cents: 1200}, &queue.EnqueueOpts{Queue: "billing", At: at, Meta: map[string]string{"tenant": "acme"}})
	require.NoError(t, err)
	_, err = client.Enqueue(ctx, "report", map[string]int{"year": 2026}, nil)
	require.NoError(t, err)

	ok := &recT{}
	job := iterjobtest.RequireEnqueuedArgs(ctx, ok, client, InvoiceArgs{Customer: "acme", Cents: 1200},
		&iterjobtest.Want{Queue: "billing", RunAt: at, Meta: map[string]string{"tenant": "acme"}})
	require.Empty(t, ok.failed)
	require.Equal(t, "invoice", job.Kind)
	iterjobtest.RequireEnqueued(ctx, ok, client, "report", &iterjobtest.Want{Args: map[string]any{"year": 2026}, Queue: "default"})
	iterjobtest.RequireNotEnqueued(ctx, ok, client, "invoice", &iterjobtest.Want{Queue: "default"})
	require.Empty(t, ok.failed)

	for _, c := range []struct {
		name string
		kind string
		want *iterjobtest.Want
	}{
		{"other args", "invoice", &iterjobtest.Want{Args: InvoiceArgs{Customer: "acme", Cents: 1}}},
		{"other queue", "invoice", &iterjobtest.Want{Queue: "default"}},
		{"not scheduled", "report", &iterjobtest.Want{Scheduled: true}},
		{"other time", "invoice", &iterjobtest.Want{RunAt: at.Add(time.Minute)}},
		{"other meta", "invoice", &iterjobtest.Want{Meta: map[string]string{"tenant": "globex"}}},
		{"other kind", "refund", nil},
	} {
		bad := &recT{}
		iterjobtest.RequireEnqueued(ctx, bad, client, c.kind, c.want)
		require.Len(t, bad.failed, 1, c.name)
		require.Contains(t, bad.failed[0], "invoice in billing", "%s: the message lists what was enqueued", c.name)
	}
	bad := &recT{}
	iterjobtest.RequireNotEnqueued(ctx, bad, client, "report", nil)
	require.Len(t, bad.failed, 1)
}

// A job that code under test enqueued runs from its record: arguments
// decoded as the runner decodes them, and its kind, queue, meta and start
// cursor; arguments that do not fit the job's type kill it.
func TestIterateEnqueuedRunsTheRecord(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	ctx := t.Context()
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace})
	require.NoError(t, err)
	_, err = client.EnqueueArgs(ctx, BackfillArgs{Rows: 6}, &queue.EnqueueOpts{Queue: "bulk", StartCursor: 3, Meta: map[string]string{"tenant": "acme"}})
	require.NoError(t, err)
	_, err = client.Enqueue(ctx, "backfill", map[string]any{"rows": "six"}, &queue.EnqueueOpts{Queue: "broken"})
	require.NoError(t, err)

	rec := iterjobtest.RequireEnqueuedArgs(ctx, t, client, BackfillArgs{Rows: 6}, &iterjobtest.Want{Queue: "bulk"})
	var seen []string
	mw := func(ctx context.Context, j *jobtype.Job, next func(context.Context) error) error {
		seen = append(seen, j.ID+" "+j.Kind+" "+j.Queue+" "+j.Meta["tenant"])
		return next(ctx)
	}
	job := &backfill{}
	first, err := iterjobtest.IterateEnqueued(ctx, job, rec, nil, iterjobtest.Options{InterruptAfter: 1, Middleware: []runner.Middleware{mw}})
	require.NoError(t, err)
	require.Equal(t, "requeue", first.Action)
	rest, err := iterjobtest.IterateEnqueued(ctx, job, rec, first, iterjobtest.Options{Middleware: []runner.Middleware{mw}})
	require.NoError(t, err)
	require.Equal(t, "ack", rest.Action)
	require.Equal(t, []int64{3, 4, 5}, job.done, "from the start cursor, resumed once")
	want := rec.ID + " backfill bulk acme"
	require.Equal(t, []string{want, want}, seen)

	broken := iterjobtest.RequireEnqueued(ctx, t, client, "backfill", &iterjobtest.Want{Queue: "broken"})
	run, err := iterjobtest.IterateEnqueued(ctx, &backfill{}, broken, nil, iterjobtest.Options{})
	require.ErrorIs(t, err, runner.ErrInvalidArgs)
	require.Equal(t, "dead", run.Action)
}
