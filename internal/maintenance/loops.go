package maintenance

import (
	"context"
	"log/slog"
	"time"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/exec"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/shutdown"
)

// loop runs fn in a goroutine until Stop.
type loop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (l *loop) start(fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		fn(ctx)
	}()
}

// Stop ends the loop and waits for it.
func (l *loop) Stop() {
	l.cancel()
	<-l.done
}

// Promoter moves due scheduled and retry jobs to their queues: every
// PollInterval on average (±25 % jitter, so processes spread out), sooner
// when the earliest job is due sooner, and at once again while it moves full
// batches. It stops once the process is stopping.
type Promoter struct {
	loop
	cons     *consumer.Consumer
	sd       *shutdown.Controller
	interval time.Duration
	log      *slog.Logger
}

// NewPromoter returns a promoter; Start starts it.
func NewPromoter(cons *consumer.Consumer, sd *shutdown.Controller, interval time.Duration, log *slog.Logger) *Promoter {
	return &Promoter{cons: cons, sd: sd, interval: interval, log: log}
}

// Start starts the promoter.
func (p *Promoter) Start() { p.start(p.run) }

func (p *Promoter) run(ctx context.Context) {
	for ctx.Err() == nil && p.sd.State() < shutdown.Stopping {
		const limit = 500
		moved, next, err := p.cons.Promote(ctx, limit)
		if err != nil {
			if ctx.Err() == nil {
				p.log.ErrorContext(ctx, "runner: promoting due jobs failed", slog.Any("error", err))
			}
			sleep(ctx, p.interval)
			continue
		}
		if moved == limit {
			continue
		}
		wait := jitter(p.interval, 0.25)
		if !next.IsZero() {
			if d := time.Until(next); d < wait {
				wait = max(d, time.Millisecond)
			}
		}
		sleep(ctx, wait)
	}
}

// Running is what the cancel poller asks of the process's executions (the
// producer).
type Running interface {
	// Running returns the executions workers run now.
	Running() []*exec.Execution
	// Current calls fn if e is still the process's run of its job.
	Current(e *exec.Execution, fn func())
}

// CancelPoller reads the cancel flags of running jobs, all in one round
// trip, every interval, and asks the runs whose job was cancelled to stop.
type CancelPoller struct {
	loop
	cons     *consumer.Consumer
	jobs     Running
	interval time.Duration
	log      *slog.Logger
}

// NewCancelPoller returns a cancel poller; Start starts it.
func NewCancelPoller(cons *consumer.Consumer, jobs Running, interval time.Duration, log *slog.Logger) *CancelPoller {
	return &CancelPoller{cons: cons, jobs: jobs, interval: interval, log: log}
}

// Start starts the poller.
func (c *CancelPoller) Start() { c.start(c.run) }

func (c *CancelPoller) run(ctx context.Context) {
	for {
		sleep(ctx, c.interval)
		if ctx.Err() != nil {
			return
		}
		running := c.jobs.Running()
		if len(running) == 0 {
			continue
		}
		jobs := make([]*jobtype.Job, len(running))
		for i, e := range running {
			jobs[i] = e.Job
		}
		flags, err := c.cons.CancelRequested(ctx, jobs)
		if err != nil {
			c.log.ErrorContext(ctx, "runner: reading cancel flags failed", slog.Any("error", err))
			continue
		}
		for i, cancelled := range flags {
			if cancelled {
				// Only a run still current: its worker may have moved on.
				c.jobs.Current(running[i], running[i].Cancel)
			}
		}
	}
}
