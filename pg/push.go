package pg

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/iterjob/iterjob/queue"
)

// The drainer pushes staged jobs to Redis through a pusher. Pushing the same
// row twice (after a drainer died between its push and its delete) must not
// create two jobs: each job is enqueued under the id EnqueueTx returned
// (queue.EnqueueOpts.ID), which the queue remembers for the client's
// IDRetention (24 h by default), so a second push within that time adds
// nothing, whether the first job still waits, runs or has finished.
type pusher interface {
	// push enqueues jobs, each under its staged id, in order. A job that was
	// pushed before counts as pushed. An error means some jobs may have
	// been pushed and others not: the caller pushes them all again.
	push(ctx context.Context, jobs []staged) error
}

// clientPusher pushes through a queue.Client.
type clientPusher struct {
	c   *queue.Client
	log *slog.Logger
}

func (p *clientPusher) push(ctx context.Context, jobs []staged) error {
	params := make([]queue.Params, len(jobs))
	for i, j := range jobs {
		o := &queue.EnqueueOpts{
			Queue:       j.queue,
			MaxAttempts: int(j.maxAttempts),
			Meta:        j.meta,
			ID:          j.jobID,
		}
		if j.runAt != nil {
			o.At = *j.runAt
		}
		params[i] = queue.Params{Kind: j.kind, Args: j.args, Opts: o}
	}
	res, err := p.c.EnqueueMany(ctx, params)
	if err != nil {
		return err
	}
	dups := 0
	for _, r := range res {
		if r.Duplicate {
			dups++
		}
	}
	if dups > 0 {
		p.log.InfoContext(ctx, "pg: staged jobs pushed again after a drainer stopped short were already in the queue",
			slog.Int("jobs", dups))
	}
	return nil
}

var _ pusher = (*clientPusher)(nil)

// describe names jobs for logs.
func describe(jobs []staged) string {
	if len(jobs) == 1 {
		return fmt.Sprintf("job %s (%s)", jobs[0].jobID, jobs[0].kind)
	}
	return fmt.Sprintf("%d jobs", len(jobs))
}
