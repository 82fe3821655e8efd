package exec

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
)

// plainHandler runs a Performer.
type plainHandler[A any] struct {
	job  iterable.Performer[A]
	opts KindOpts
}

// NewPlain returns the handler of a plain job kind: it decodes each job's
// arguments into an A and calls Perform.
func NewPlain[A any](job iterable.Performer[A], opts KindOpts) Handler {
	return &plainHandler[A]{job: job, opts: opts}
}

func (h *plainHandler[A]) Options() KindOpts { return h.opts }
func (h *plainHandler[A]) Iterable() bool    { return false }

func (h *plainHandler[A]) run(ctx context.Context, x *Executor, e *Execution) result {
	args, err := decodeArgs[A](e.Job.Args)
	if err != nil {
		return failed(iterable.SkipRetry(err), nil)
	}
	x.publish(ctx, jobtype.NewEvent(jobtype.EventStarted, e.Job, x.now()))
	trace, err := protect(func() error { return h.job.Perform(ctx, args) })
	if err == nil {
		return result{kind: resDone}
	}
	if r, ok := interruptedBy(ctx); ok {
		return r
	}
	return failed(err, trace)
}

// decodeArgs decodes a job's arguments into an A.
func decodeArgs[A any](raw json.RawMessage) (A, error) {
	var a A
	if len(raw) == 0 {
		raw = json.RawMessage("null")
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return a, fmt.Errorf("%w into %T: %v", ErrInvalidArgs, a, err)
	}
	return a, nil
}
