package runner

import (
	"context"
	"log/slog"
	"time"

	"github.com/iterjob/iterjob/internal/periodic"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/shutdown"
)

// periodicService runs the runner's scheduler of periodic jobs: it adds the
// schedules of Config.Periodic at start, then enqueues due ticks until the
// runner is stopping.
type periodicService struct {
	client *queue.Client
	sched  *periodic.Scheduler
	jobs   []queue.PeriodicJob
	sd     *shutdown.Controller
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

func newPeriodicService(cfg Config, sd *shutdown.Controller, now func() time.Time) (*periodicService, error) {
	client, err := queue.NewClient(cfg.Redis, queue.Config{
		Namespace: cfg.Namespace, Logger: cfg.Logger, PublishEvents: cfg.PublishEvents,
		OnEvent: cfg.OnEvent, EventsMax: cfg.EventsMax,
	})
	if err != nil {
		return nil, err
	}
	s := &periodicService{client: client, jobs: cfg.Periodic, sd: sd, log: cfg.Logger}
	s.sched = periodic.New(periodic.Config{
		DB: rdb.New(cfg.Redis, cfg.Namespace), Enqueue: s.enqueue, Logger: cfg.Logger,
		Now: now, Reload: cfg.PollInterval,
	})
	return s, nil
}

// enqueue enqueues the job of schedule d's tick under id.
func (s *periodicService) enqueue(ctx context.Context, d *periodic.Def, tick time.Time, id string) (string, error) {
	meta := make(map[string]string, len(d.Meta)+2)
	for k, v := range d.Meta {
		meta[k] = v
	}
	meta["periodic"] = d.Name
	meta["periodic_tick"] = tick.UTC().Format(time.RFC3339)
	res, err := s.client.Enqueue(ctx, d.Kind, d.Args, &queue.EnqueueOpts{
		Queue: d.Queue, MaxAttempts: d.MaxAttempts, Meta: meta, ID: id,
	})
	if err != nil {
		return "", err
	}
	if !res.Duplicate {
		s.log.InfoContext(ctx, "runner: periodic job enqueued", slog.String("schedule", d.Name),
			slog.String("job_id", res.Job.ID), slog.Time("tick", tick))
	}
	return res.Job.ID, nil
}

// add stores the configured schedules.
func (s *periodicService) add(ctx context.Context) error {
	for _, p := range s.jobs {
		if err := s.client.AddPeriodic(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (s *periodicService) start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		// Stop scheduling once the process is stopping, as the promoter
		// does.
		select {
		case <-s.sd.Reached(shutdown.Stopping):
			cancel()
		case <-ctx.Done():
		}
	}()
	go func() {
		defer close(s.done)
		s.sched.Run(ctx)
		cancel()
		<-watched
	}()
}

func (s *periodicService) stop() {
	s.cancel()
	<-s.done
}
