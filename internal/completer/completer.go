// Package completer records how runs ended: succeeded jobs are
// acknowledged in batches (whatever piles up while one batch is written goes
// in the next), and every other outcome is written at once. Writes are
// retried through Redis outages until recorded or, after a hard stop, until
// the process must exit (the job is then recovered from its in-flight hash).
package completer

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/exec"
	"github.com/iterjob/iterjob/shutdown"
)

// Liveness is what the completer asks of the heartbeat when a write is
// refused as stale: Redis may have lost the job's in-flight entry with its
// data, which a heartbeat finds out and repairs (bumping Restores).
type Liveness interface {
	Beat(ctx context.Context) bool
	Restores() int64
}

// Config configures a Completer. Every field is required.
type Config struct {
	Consumer *consumer.Consumer
	Liveness Liveness
	Shutdown *shutdown.Controller
	// Forget is called with an execution once its end is recorded.
	Forget func(...*exec.Execution)
	// Buffer is how many acknowledgements may wait for the ack loop.
	Buffer        int
	FinishTimeout time.Duration
	Logger        *slog.Logger
}

// Completer implements exec.Completer.
type Completer struct {
	cfg  Config
	cons *consumer.Consumer
	log  *slog.Logger
	acks chan ack
	done chan struct{}
}

type ack struct {
	e *exec.Execution
	d consumer.Done
}

// New returns a completer; Start starts its ack loop.
func New(cfg Config) *Completer {
	return &Completer{cfg: cfg, cons: cfg.Consumer, log: cfg.Logger, acks: make(chan ack, cfg.Buffer), done: make(chan struct{})}
}

// Start starts the ack loop; it runs until Close.
func (c *Completer) Start() { go c.ackLoop() }

// Close ends the ack loop once the acknowledgements queued are written (no
// Complete may be called after it) and waits for it, up to timeout. It
// reports whether they were written.
func (c *Completer) Close(timeout time.Duration) bool {
	close(c.acks)
	select {
	case <-c.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Complete records a run's outcome (exec.Completer).
func (c *Completer) Complete(ctx context.Context, e *exec.Execution, o exec.Outcome) {
	j := e.Job
	if o.Action == exec.Ack {
		c.acks <- ack{e: e, d: consumer.Done{Job: j, Event: o.Event}}
		return
	}
	var do func(context.Context) error
	switch o.Action {
	case exec.Lost:
		c.cfg.Forget(e)
		return
	case exec.Requeue:
		do = func(ctx context.Context) error { return c.cons.Requeue(ctx, j, o.Event) }
	case exec.Schedule:
		do = func(ctx context.Context) error { return c.cons.Schedule(ctx, j, o.At, o.Event) }
	case exec.Cancel:
		do = func(ctx context.Context) error { return c.cons.Cancelled(ctx, j, o.Event) }
	case exec.Retry:
		do = func(ctx context.Context) error { return c.cons.Retry(ctx, j, o.At, o.Err, o.Event) }
	case exec.Dead:
		do = func(ctx context.Context) error { return c.cons.Kill(ctx, j, o.Err, o.Event) }
	}
	c.record(ctx, c.log.With(slog.String("jid", j.ID), slog.String("kind", j.Kind)), do)
	c.cfg.Forget(e)
}

// record runs a queue write, retrying while Redis is unreachable. After a
// hard stop it gives up after FinishTimeout: the process is exiting and the
// job will be recovered from its in-flight set.
func (c *Completer) record(ctx context.Context, log *slog.Logger, do func(context.Context) error) {
	ctx = context.WithoutCancel(ctx)
	wait := 10 * time.Millisecond
	var deadline time.Time
	checked := false
	for {
		gen := c.cfg.Liveness.Restores()
		err := do(ctx)
		if err == nil {
			return
		}
		if errors.Is(err, consumer.ErrLeaseLost) {
			// The job's in-flight entry is gone: handed to a newer run, or
			// lost by Redis with its data, which a heartbeat finds out (and
			// then puts the entry back).
			if !checked {
				checked = true
				c.cfg.Liveness.Beat(ctx)
				if c.cfg.Liveness.Restores() != gen {
					continue
				}
			}
			log.WarnContext(ctx, "runner: job finished by a stale run; left to its new owner", slog.Any("error", err))
			return
		}
		if c.cfg.Shutdown.State() == shutdown.HardStop {
			if deadline.IsZero() {
				deadline = time.Now().Add(c.cfg.FinishTimeout)
			} else if time.Now().After(deadline) {
				log.ErrorContext(ctx, "runner: could not record the end of a run before exiting; the job will be recovered from this process's in-flight set", slog.Any("error", err))
				return
			}
		}
		log.ErrorContext(ctx, "runner: recording the end of a run failed; retrying", slog.Any("error", err), slog.Duration("wait", wait))
		time.Sleep(wait)
		wait = min(wait*2, time.Second)
	}
}

// ackLoop acknowledges succeeded jobs in batches: whatever has piled up
// while the last batch was written goes in the next one.
func (c *Completer) ackLoop() {
	defer close(c.done)
	batch := make([]ack, 0, 256)
	done := make([]consumer.Done, 0, 256)
	for a := range c.acks {
		batch = append(batch[:0], a)
	drain:
		for len(batch) < 1000 {
			select {
			case a, ok := <-c.acks:
				if !ok {
					break drain
				}
				batch = append(batch, a)
			default:
				break drain
			}
		}
		done = done[:0]
		for _, a := range batch {
			done = append(done, a.d)
		}
		c.record(context.Background(), c.log, func(ctx context.Context) error { return c.ack(ctx, done) })
		es := make([]*exec.Execution, len(batch))
		for i, a := range batch {
			es[i] = a.e
		}
		c.cfg.Forget(es...)
	}
}

// ack acknowledges done; jobs found stale are acknowledged again once if a
// heartbeat finds that Redis lost their entries and puts them back.
func (c *Completer) ack(ctx context.Context, done []consumer.Done) error {
	gen := c.cfg.Liveness.Restores()
	stale, err := c.cons.Ack(ctx, done)
	if err != nil {
		return err
	}
	if len(stale) > 0 {
		c.cfg.Liveness.Beat(ctx)
		if c.cfg.Liveness.Restores() != gen {
			again := make([]consumer.Done, 0, len(stale))
			for _, d := range done {
				if slices.Contains(stale, d.Job.ID) {
					again = append(again, d)
				}
			}
			if stale, err = c.cons.Ack(ctx, again); err != nil {
				return err
			}
		}
	}
	for _, id := range stale {
		c.log.WarnContext(ctx, "runner: acknowledgement not applied: the job is not in flight here with this lease (acknowledged already by a retried call, or handed to a newer run)", slog.String("jid", id))
	}
	return nil
}
