package iterjobtest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/iterjobtest"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// printT stands in for a *testing.T in these examples.
type printT struct{}

func (printT) Helper()                           {}
func (printT) Fatalf(format string, args ...any) { fmt.Printf("FAIL: "+format+"\n", args...) }

// Check that code under test enqueued a job, with its arguments, queue and
// schedule, on an embedded Redis.
func ExampleRequireEnqueued() {
	ctx := context.Background()
	mr := miniredis.NewMiniRedis()
	_ = mr.Start()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	client, _ := queue.NewClient(rdb, queue.Config{})

	// The code under test: a sign-up that schedules a welcome email.
	_, _ = client.Enqueue(ctx, "welcome_email", map[string]string{"to": "ada@example.com"},
		&queue.EnqueueOpts{Queue: "mail", In: time.Hour})

	var t printT // in a test: t *testing.T
	job := iterjobtest.RequireEnqueued(ctx, t, client, "welcome_email", &iterjobtest.Want{
		Args: map[string]string{"to": "ada@example.com"}, Queue: "mail", Scheduled: true,
	})
	fmt.Println(job.Kind, job.Queue)
	iterjobtest.RequireNotEnqueued(ctx, t, client, "welcome_email", &iterjobtest.Want{Queue: "default"})
	// Output:
	// welcome_email mail
}

// A crash between checkpoints: the next run resumes from the last saved
// cursor, so the items after it run again (EachIteration must be
// idempotent).
func ExampleIterateWith_crash() {
	ctx := context.Background()
	job := &greet{}
	names := []string{"Ada", "Grace", "Zoë", "Linus", "Ken"}

	crashed, _ := iterjobtest.IterateWith(ctx, job, names, nil, iterjobtest.Options{CheckpointEvery: 2, CrashAfter: 3})
	fmt.Println(crashed.Stop, string(crashed.Cursor), crashed.Total)
	rest, _ := iterjobtest.Iterate(ctx, job, names, crashed, 0)
	fmt.Println(rest.Stop, rest.Info.Executions)
	fmt.Println(job.seen)
	// Output:
	// crashed 2 2
	// completed 2
	// [Ada Grace Zoë Zoë Linus Ken stop:completed]
}

type mailer struct{ calls int }

func (f *mailer) Perform(context.Context, string) error {
	f.calls++
	if f.calls == 1 {
		return errors.New("smtp: 421 try again later")
	}
	return nil
}

// A plain job that fails is retried with its attempt raised, through the
// runner's middleware, as the runner would run it.
func ExamplePerform() {
	ctx := context.Background()
	var seen []string
	mw := func(ctx context.Context, j *jobtype.Job, next func(context.Context) error) error {
		err := next(ctx)
		seen = append(seen, fmt.Sprintf("attempt %d: %v", j.Attempt, err))
		return err
	}
	job := &mailer{}
	opts := iterjobtest.Options{Middleware: []runner.Middleware{mw}}
	first, _ := iterjobtest.Perform(ctx, job, "ada@example.com", nil, opts)
	fmt.Println(first.Action, first.Attempt)
	second, err := iterjobtest.Perform(ctx, job, "ada@example.com", first, opts)
	fmt.Println(second.Action, err)
	fmt.Println(seen)
	// Output:
	// retry 2
	// ack <nil>
	// [attempt 1: smtp: 421 try again later attempt 2: <nil>]
}
