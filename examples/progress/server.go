package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
	"github.com/iterjob/iterjob/shutdown"
)

// server is the app with its worker: a queue client and a runner in one
// process, as a small app would start.
type server struct {
	client  *queue.Client
	run     *runner.Runner
	app     *app
	handler http.Handler
}

// newServer starts a runner for the "task" kind (each step taking step)
// and returns the app serving over it. Events are published, and tasks
// checkpoint often, so the panel moves smoothly.
func newServer(ctx context.Context, rdb redis.UniversalClient, ns string, sd *shutdown.Controller, log *slog.Logger, step time.Duration) (*server, error) {
	// The client reads tasks' progress (Client.Job) from the runners'
	// cursor store.
	store, err := cursor.NewRedisStore(rdb, cursor.RedisConfig{Namespace: ns})
	if err != nil {
		return nil, err
	}
	client, err := queue.NewClient(rdb, queue.Config{Namespace: ns, Logger: log, PublishEvents: true, JobData: store})
	if err != nil {
		return nil, err
	}
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, "task", Task{StepTime: step}, nil)
	run, err := runner.New(runner.Config{
		Redis: rdb, Registry: reg, Namespace: ns, Logger: log, Shutdown: sd, Store: store,
		PublishEvents: true, CheckpointInterval: 250 * time.Millisecond,
		PollInterval: 200 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	if err := run.Start(ctx); err != nil {
		return nil, err
	}
	a := newApp(client, log)
	return &server{client: client, run: run, app: a, handler: a.routes()}, nil
}

func (s *server) stop(ctx context.Context) error { return s.run.Stop(ctx) }
