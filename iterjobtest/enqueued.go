package iterjobtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

// T is the part of testing.TB the assertions use.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Want describes an enqueued job; zero fields match anything.
type Want struct {
	// Args, if set, must equal the job's arguments once both are encoded
	// as JSON (so a struct matches the map it encodes to).
	Args any
	// Queue, if set, is the job's queue.
	Queue string
	// Scheduled requires the job to wait in the scheduled set; RunAt, if
	// set, is when it must be due (within a second).
	Scheduled bool
	RunAt     time.Time
	// Meta entries the job must carry.
	Meta map[string]string
}

// maxLook bounds the jobs the assertions read per queue and set: they are
// for tests, not for production namespaces.
const maxLook = 10000

// RequireEnqueued fails t unless client's namespace holds a waiting job of
// kind that matches want (nil: any job of kind), in a queue or in the
// scheduled set, and returns the first such job. It reads through the admin
// API, so it works on miniredis as on a real Redis.
func RequireEnqueued(ctx context.Context, t T, client *queue.Client, kind string, want *Want) *jobtype.Job {
	t.Helper()
	found, all, err := enqueued(ctx, client, kind, want)
	if err != nil {
		t.Fatalf("iterjobtest: list enqueued jobs: %v", err)
		return nil
	}
	if len(found) == 0 {
		t.Fatalf("iterjobtest: no enqueued %s job matches %s; enqueued: %s", kind, describeWant(want), describe(all))
		return nil
	}
	return found[0]
}

// RequireEnqueuedArgs is RequireEnqueued for typed arguments: the kind and
// the args come from args.
func RequireEnqueuedArgs(ctx context.Context, t T, client *queue.Client, args queue.JobArgs, want *Want) *jobtype.Job {
	t.Helper()
	w := Want{}
	if want != nil {
		w = *want
	}
	w.Args = args
	return RequireEnqueued(ctx, t, client, args.Kind(), &w)
}

// RequireNotEnqueued fails t if a waiting job of kind matches want.
func RequireNotEnqueued(ctx context.Context, t T, client *queue.Client, kind string, want *Want) {
	t.Helper()
	found, _, err := enqueued(ctx, client, kind, want)
	if err != nil {
		t.Fatalf("iterjobtest: list enqueued jobs: %v", err)
		return
	}
	if len(found) > 0 {
		t.Fatalf("iterjobtest: %d enqueued %s job(s) match %s, want none: %s", len(found), kind, describeWant(want), describe(found))
	}
}

func enqueued(ctx context.Context, client *queue.Client, kind string, want *Want) (found, all []*jobtype.Job, err error) {
	if want == nil {
		want = &Want{}
	}
	var wantArgs []byte
	if want.Args != nil {
		if wantArgs, err = json.Marshal(want.Args); err != nil {
			return nil, nil, fmt.Errorf("encode Want.Args: %w", err)
		}
	}
	qs, err := client.Queues(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, q := range qs {
		jobs, err := client.QueueJobs(ctx, q.Name, 0, maxLook)
		if err != nil {
			return nil, nil, err
		}
		all = append(all, jobs...)
	}
	sched, err := client.SetJobs(ctx, queue.SetScheduled, 0, maxLook)
	if err != nil {
		return nil, nil, err
	}
	for _, j := range sched {
		j.State = jobtype.StateScheduled
	}
	all = append(all, sched...)
	for _, j := range all {
		if j.Kind == kind && matches(j, want, wantArgs) {
			found = append(found, j)
		}
	}
	return found, all, nil
}

func matches(j *jobtype.Job, w *Want, args []byte) bool {
	if w.Queue != "" && j.Queue != w.Queue {
		return false
	}
	scheduled := j.State == jobtype.StateScheduled
	if (w.Scheduled || !w.RunAt.IsZero()) && !scheduled {
		return false
	}
	if !w.RunAt.IsZero() {
		if d := j.At.Sub(w.RunAt); d > time.Second || d < -time.Second {
			return false
		}
	}
	for k, v := range w.Meta {
		if j.Meta[k] != v {
			return false
		}
	}
	if args != nil && !jsonEqual(args, j.Args) {
		return false
	}
	return true
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	ca, _ := json.Marshal(x)
	cb, _ := json.Marshal(y)
	return bytes.Equal(ca, cb)
}

func describeWant(w *Want) string {
	if w == nil {
		return "anything"
	}
	var parts []string
	if w.Args != nil {
		b, _ := json.Marshal(w.Args)
		parts = append(parts, "args "+string(b))
	}
	if w.Queue != "" {
		parts = append(parts, "queue "+w.Queue)
	}
	if w.Scheduled {
		parts = append(parts, "scheduled")
	}
	if !w.RunAt.IsZero() {
		parts = append(parts, "due "+w.RunAt.UTC().Format(time.RFC3339))
	}
	if len(w.Meta) > 0 {
		parts = append(parts, fmt.Sprintf("meta %v", w.Meta))
	}
	if len(parts) == 0 {
		return "anything"
	}
	return strings.Join(parts, ", ")
}

func describe(jobs []*jobtype.Job) string {
	if len(jobs) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, j := range jobs {
		if i == 10 {
			fmt.Fprintf(&b, " … and %d more", len(jobs)-10)
			break
		}
		fmt.Fprintf(&b, "\n  %s %s in %s args %s", j.ID, j.Kind, j.Queue, j.Args)
		if j.State == jobtype.StateScheduled {
			fmt.Fprintf(&b, " due %s", j.At.UTC().Format(time.RFC3339))
		}
	}
	return b.String()
}
