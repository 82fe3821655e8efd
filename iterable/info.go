package iterable

import (
	"context"
	"time"
)

// Info describes the run a job is in. The runner puts it in the context of
// every call it makes to a job.
type Info struct {
	JobID string
	Kind  string
	Queue string
	// Attempt is 1 on the first attempt and grows by one per failed attempt;
	// interruptions and crash recoveries do not count.
	Attempt int
	// Run is this run's lease number: it grows with every run of the job.
	Run int64
	// EnqueuedAt is when the job was first enqueued.
	EnqueuedAt time.Time
	// Iterable jobs only: the state when the run began.
	Executions       int
	TimesInterrupted int
	ItemsProcessed   int64
}

type infoKey struct{}

// WithInfo returns ctx carrying info. The runner and test helpers call it.
func WithInfo(ctx context.Context, info Info) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// InfoFromContext returns the run's Info, if ctx came from the runner.
func InfoFromContext(ctx context.Context) (Info, bool) {
	info, ok := ctx.Value(infoKey{}).(Info)
	return info, ok
}
