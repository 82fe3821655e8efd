package queue_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/queue"
)

// Stream lifecycle events, for example to push job progress to a browser.
func ExampleClient_Subscribe() {
	ctx := context.Background()
	mr := miniredis.NewMiniRedis()
	_ = mr.Start()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	client, _ := queue.NewClient(rdb, queue.Config{PublishEvents: true})

	sub, _ := client.Subscribe(ctx, nil)
	defer sub.Close()
	res, _ := client.Enqueue(ctx, "export", nil, &queue.EnqueueOpts{Meta: map[string]string{"user": "42"}})
	_, _ = client.Cancel(ctx, res.Job.ID)

	for range 2 {
		ev := <-sub.Events()
		fmt.Println(ev.Type, ev.JobID == res.Job.ID, ev.Meta["user"])
	}
	// Output:
	// enqueued true 42
	// cancelled true 42
}

// Show a list, then keep it current: take the events position before
// reading, so that a change made between the read and Subscribe still
// arrives.
func ExampleClient_EventsPosition() {
	ctx := context.Background()
	mr := miniredis.NewMiniRedis()
	_ = mr.Start()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	client, _ := queue.NewClient(rdb, queue.Config{PublishEvents: true})
	_, _ = client.Enqueue(ctx, "report", nil, &queue.EnqueueOpts{Queue: "reports"})

	pos, _ := client.EventsPosition(ctx)
	jobs, _ := client.QueueJobs(ctx, "reports", 0, 100)
	fmt.Println("listed", len(jobs))

	// Meanwhile, another process adds a job.
	_, _ = client.Enqueue(ctx, "report", nil, &queue.EnqueueOpts{Queue: "reports"})

	sub, _ := client.Subscribe(ctx, &queue.SubscribeOpts{After: pos})
	defer sub.Close()
	ev := <-sub.Events()
	fmt.Println(ev.Type, ev.Queue)
	// Output:
	// listed 1
	// enqueued reports
}
