package queue_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/queue"
)

// SendEmailArgs names its kind: enqueue and registration
// (runner.RegisterArgs) both take it from the type.
type SendEmailArgs struct {
	To string `json:"to"`
}

func (SendEmailArgs) Kind() string { return "send_email" }

// Typed enqueue: the kind comes from the arguments' type, and a client that
// knows the kinds refuses the others.
func ExampleClient_EnqueueArgs() {
	ctx := context.Background()
	mr := miniredis.NewMiniRedis()
	_ = mr.Start()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	// In a process that also runs the jobs, pass its *runner.Registry.
	client, _ := queue.NewClient(rdb, queue.Config{Kinds: queue.KnownKinds("send_email")})

	res, _ := client.EnqueueArgs(ctx, SendEmailArgs{To: "ada@example.com"}, nil)
	fmt.Println(res.Job.Kind, string(res.Job.Args))

	_, err := client.Enqueue(ctx, "send_emial", SendEmailArgs{}, nil)
	fmt.Println(errors.Is(err, queue.ErrUnknownKind))
	// Output:
	// send_email {"to":"ada@example.com"}
	// true
}
