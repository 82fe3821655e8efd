package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/jobtype"
)

// StateReader is a JobData that can also tell an iterable job's iteration
// status and progress (status "" when the job has none); cursor.RedisStore
// and cursor.MemoryStore are. With one as Config.JobData, Client.Job shows
// progress.
type StateReader interface {
	JobState(ctx context.Context, jobID string) (status string, progress *jobtype.Progress, err error)
}

// JobInfo is where a job is now and what is known of it.
type JobInfo struct {
	// Job is the job as stored (nil for a job that finished: only its
	// iteration state is left).
	Job *jobtype.Job
	// State is where the job is: queued, scheduled, running, retry or
	// dead; or, for a finished iterable job whose state is still kept,
	// the status of its last run (completed, cancelled).
	State jobtype.State
	// Process is the process running it (running).
	Process string
	// Progress is an iterable job's progress as of its last checkpoint
	// (with a StateReader as Config.JobData).
	Progress *jobtype.Progress
	// IterationStatus is the status of an iterable job's last run
	// (running, interrupted, failed, dead, cancelled, completed), "" for
	// others.
	IterationStatus string
}

// Job returns where job id is now, wherever it is: waiting in a set,
// running (on which process), waiting in a queue, or, for an iterable job,
// finished within its state's retention. It returns an error matching
// ErrNotFound for a job it cannot find. Finding a queued job scans the
// queues from their tails, like Cancel.
func (c *Client) Job(ctx context.Context, id string) (*JobInfo, error) {
	queues, err := c.db.QueueNames(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: job %s: list queues: %w", id, err)
	}
	info, err := c.locate(ctx, id, queues)
	if err != nil {
		return nil, err
	}
	if sr, ok := c.cfg.JobData.(StateReader); ok {
		status, p, err := sr.JobState(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("queue: job %s: iteration state: %w", id, err)
		}
		if status != "" {
			if info == nil {
				info = &JobInfo{State: jobtype.State(status)}
			}
			info.Progress, info.IterationStatus = p, status
		}
	}
	if info == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return info, nil
}

// locate finds job id in the queue's structures (nil: not there).
func (c *Client) locate(ctx context.Context, id string, queues []string) (*JobInfo, error) {
	q, set, err := c.db.Where(ctx, id, queues)
	if err != nil {
		return nil, fmt.Errorf("queue: job %s: %w", id, err)
	}
	if set != "" {
		env, err := c.db.ParkedEnvelope(ctx, q, id)
		if err != nil {
			return nil, fmt.Errorf("queue: job %s: %w", id, err)
		}
		errJSON, err := c.db.ParkedError(ctx, q, id)
		if err != nil {
			return nil, fmt.Errorf("queue: job %s: %w", id, err)
		}
		j := c.decodeOr(ctx, id, q, env)
		if errJSON != "" {
			var jerr jobtype.JobError
			if json.Unmarshal([]byte(errJSON), &jerr) == nil {
				j.LastError = &jerr
			}
		}
		j.State = jobtype.State(set)
		return &JobInfo{Job: j, State: j.State}, nil
	}
	q, proc, entry, err := c.db.HeldBy(ctx, id, queues)
	if err != nil {
		return nil, fmt.Errorf("queue: job %s: %w", id, err)
	}
	if proc != "" {
		lease, env, _ := strings.Cut(entry, "|")
		j := c.decodeOr(ctx, id, q, env)
		_, _ = fmt.Sscan(lease, &j.Lease)
		j.State = jobtype.StateRunning
		return &JobInfo{Job: j, State: j.State, Process: proc}, nil
	}
	prefix := "1|" + id + "|"
	for _, q := range queues {
		const page = 1000
		for end := int64(-1); ; end -= page {
			envs, err := c.db.QueueRange(ctx, q, end-page+1, end)
			if err != nil {
				return nil, fmt.Errorf("queue: job %s: %w", id, err)
			}
			for _, env := range envs {
				if strings.HasPrefix(env, prefix) {
					j := c.decodeOr(ctx, id, q, env)
					j.State = jobtype.StateQueued
					return &JobInfo{Job: j, State: j.State}, nil
				}
			}
			if len(envs) < page {
				break
			}
		}
	}
	return nil, nil
}

// decodeOr decodes env, or describes the undecodable payload.
func (c *Client) decodeOr(ctx context.Context, id, q, env string) *jobtype.Job {
	j, err := c.decode(ctx, env)
	if err != nil {
		return &jobtype.Job{ID: id, Queue: q, RawPayload: env, LastError: jobtype.NewJobError(err, rdb.DecodeTrace(err), 0, time.Time{})}
	}
	return j
}
