package pg

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/iterjob/iterjob/queue"
)

// The drainer pushes staged jobs to Redis through a pusher. Pushing the same
// row twice (after a drainer died between its push and its delete) must not
// create two jobs.
//
// INTERIM (until queue can enqueue under a caller-chosen job id, once): the
// only implementation, clientPusher, goes through queue.Client.EnqueueMany
// and makes each push unique with the queue's uniqueness keys:
// UniqueKey "iterjob-outbox:<job id>", held for outboxUniqueFor. A second
// push while the key is held is reported Duplicate, and the drainer takes it
// as done. The job keeps the id EnqueueTx returned only if the client runs
// StagedIDMiddleware.
//
// Known gap of the interim: the queue releases a uniqueness key when its job
// finishes (ack, death, cancel), TTL or not. So if a drainer dies after a
// push and before its delete commits (a window of one DELETE round trip),
// and the pushed job has already finished when the next drainer pushes the
// row again, the job runs a second time. While the first copy waits or runs,
// the second push is a duplicate, as it must be. A queue-level "enqueue
// under this id once" that remembers the id after the job finishes closes
// the gap; switching to it replaces clientPusher and nothing else.
type pusher interface {
	// push enqueues jobs, each under its staged id, in order. A job that was
	// pushed before counts as pushed. An error means some jobs may have
	// been pushed and others not: the caller pushes them all again.
	push(ctx context.Context, jobs []staged) error
}

const (
	// outboxKeyPrefix starts the uniqueness key of a pushed staged job.
	outboxKeyPrefix = "iterjob-outbox:"
	// outboxUniqueFor is how long a pushed job's uniqueness key is held
	// (unless the job finishes first: see pusher).
	outboxUniqueFor = 24 * time.Hour
)

// StagedIDMiddleware is a queue.Middleware that gives a job pushed by a
// Drainer the id EnqueueTx returned for it. Add it to the Middleware of the
// queue.Config of the Client a Drainer pushes through; without it the jobs
// get new ids in the queue (each is still pushed once) and the drainer logs
// an error.
//
// INTERIM: it goes away when the queue can enqueue under a chosen id.
func StagedIDMiddleware(ctx context.Context, job *queue.Job, next func(context.Context, *queue.Job) error) error {
	if id, ok := strings.CutPrefix(job.UniqueKey, outboxKeyPrefix); ok && id != "" {
		job.ID = id
	}
	return next(ctx, job)
}

// clientPusher pushes through a queue.Client (INTERIM: see pusher).
type clientPusher struct {
	c      *queue.Client
	log    *slog.Logger
	warned atomic.Bool
}

func (p *clientPusher) push(ctx context.Context, jobs []staged) error {
	params := make([]queue.Params, len(jobs))
	for i, j := range jobs {
		o := &queue.EnqueueOpts{
			Queue:       j.queue,
			MaxAttempts: int(j.maxAttempts),
			Meta:        j.meta,
			UniqueKey:   outboxKeyPrefix + j.jobID,
			UniqueFor:   outboxUniqueFor,
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
	for i, r := range res {
		if r.Duplicate {
			dups++
		}
		if r.Job.ID != jobs[i].jobID && !p.warned.Swap(true) {
			p.log.ErrorContext(ctx, "pg: staged jobs get new ids in the queue: add pg.StagedIDMiddleware to the drainer's queue.Config.Middleware",
				slog.String("staged_id", jobs[i].jobID), slog.String("queue_id", r.Job.ID))
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
