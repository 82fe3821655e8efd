package queue_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/queue"
)

// Enqueue now, later, and uniquely.
func ExampleClient_Enqueue() {
	ctx := context.Background()
	mr := miniredis.NewMiniRedis()
	_ = mr.Start()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	client, _ := queue.NewClient(rdb, queue.Config{})

	now, _ := client.Enqueue(ctx, "send_email", map[string]string{"to": "ada@example.com"}, nil)
	later, _ := client.Enqueue(ctx, "send_email", map[string]string{"to": "zoë@example.com"},
		&queue.EnqueueOpts{In: time.Hour, Queue: "mail"})
	opts := &queue.EnqueueOpts{UniqueKey: "backfill:acme"}
	first, _ := client.Enqueue(ctx, "backfill", nil, opts)
	second, _ := client.Enqueue(ctx, "backfill", nil, opts)

	fmt.Println(now.Job.Queue, now.Scheduled)
	fmt.Println(later.Job.Queue, later.Scheduled)
	fmt.Println(second.Duplicate, second.Job.ID == first.Job.ID)
	// Output:
	// default false
	// mail true
	// true true
}
