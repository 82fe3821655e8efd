package queue_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/queue"
)

// Add schedules at run time, list them, remove one. Every runner of the
// namespace enqueues their ticks, once per tick between them all.
func ExampleClient_AddPeriodic() {
	ctx := context.Background()
	mr := miniredis.NewMiniRedis()
	_ = mr.Start()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	client, _ := queue.NewClient(rdb, queue.Config{})

	_ = client.AddPeriodic(ctx, queue.PeriodicJob{
		Name: "nightly-report", Spec: "30 2 * * *", TimeZone: "Europe/Paris",
		Kind: "report", Args: map[string]string{"period": "day"},
	})
	_ = client.AddPeriodic(ctx, queue.PeriodicJob{
		Name: "sweep", Spec: "@every 5m", Kind: "sweep", Missed: queue.MissedRunOnce,
	})
	err := client.AddPeriodic(ctx, queue.PeriodicJob{Name: "typo", Spec: "*/5 * * *", Kind: "sweep"})
	fmt.Println(err)

	list, _ := client.PeriodicJobs(ctx)
	for _, p := range list {
		fmt.Printf("%s %q %s %s %v\n", p.Name, p.Spec, p.Kind, p.Args, p.NextRun.After(time.Now()))
	}
	_ = client.RemovePeriodic(ctx, "sweep")
	list, _ = client.PeriodicJobs(ctx)
	fmt.Println(len(list))
	// Output:
	// queue: invalid periodic job "typo": invalid schedule: "*/5 * * *": expected 5 to 6 fields, found 4: [*/5 * * *]
	// nightly-report "30 2 * * *" report {"period":"day"} true
	// sweep "@every 5m" sweep null true
	// 1
}
