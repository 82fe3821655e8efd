package runner_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// NotifyArgs are the arguments of the example job.
type NotifyArgs struct {
	Users []string `json:"users"`
}

// Notify sends one notification per user; its cursor is the next index.
type Notify struct{}

func (Notify) BuildEnumerator(_ context.Context, a NotifyArgs, c *int) (enumerators.Enumerator[string, int], error) {
	return enumerators.Slice(a.Users, c), nil
}

func (Notify) EachIteration(_ context.Context, _ NotifyArgs, user string) error {
	fmt.Println("notify", user)
	return nil
}

func (Notify) OnStart(context.Context, NotifyArgs) error { fmt.Println("OnStart"); return nil }
func (Notify) OnStop(_ context.Context, _ NotifyArgs, r iterable.StopReason) error {
	fmt.Println("OnStop", r)
	return nil
}

// Register an iterable job, enqueue it and run it to completion.
func ExampleRegisterIterable() {
	ctx := context.Background()
	mr := miniredis.NewMiniRedis()
	_ = mr.Start()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, "notify", Notify{}, nil) // types inferred from Notify's methods
	done := make(chan jobtype.Event, 1)
	r, _ := runner.New(runner.Config{
		Redis: rdb, Registry: reg, Logger: slog.New(slog.DiscardHandler),
		OnEvent: func(_ context.Context, ev jobtype.Event) {
			if ev.Type == jobtype.EventSucceeded {
				done <- ev
			}
		},
	})
	_ = r.Start(ctx)
	defer r.Stop(ctx)

	client, _ := queue.NewClient(rdb, queue.Config{Logger: slog.New(slog.DiscardHandler)})
	_, _ = client.Enqueue(ctx, "notify", NotifyArgs{Users: []string{"ada", "zoë"}}, nil)
	ev := <-done
	fmt.Println(ev.Type, ev.Progress.ItemsProcessed, "items, cursor", string(ev.Progress.Cursor))
	// Output:
	// OnStart
	// notify ada
	// notify zoë
	// OnStop completed
	// succeeded 2 items, cursor 2
}
