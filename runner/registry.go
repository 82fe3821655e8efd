package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
)

// ErrUnknownKind is the error of a job whose kind no handler is registered
// for. Such a job is retried with backoff, like any failure, so a deploy that
// has not reached every worker yet loses nothing.
var ErrUnknownKind = errors.New("runner: unknown job kind")

// ErrInvalidArgs is the error of a job whose arguments do not decode into
// its kind's argument type. Such a job goes straight to the dead set: it can
// never succeed as it is (retry it from the dead set after a fix).
var ErrInvalidArgs = errors.New("runner: job arguments do not decode")

// Registry maps job kinds to their code. Register kinds before starting a
// runner; a registry is safe for concurrent use.
type Registry struct {
	mu    sync.RWMutex
	kinds map[string]handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{kinds: make(map[string]handler)}
}

// Kinds returns the registered kinds.
func (r *Registry) Kinds() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.kinds))
	for k := range r.kinds {
		out = append(out, k)
	}
	return out
}

func (r *Registry) add(kind string, h handler) {
	if kind == "" {
		panic("runner: Register with an empty kind")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.kinds[kind]; dup {
		panic(fmt.Sprintf("runner: kind %q registered twice", kind))
	}
	r.kinds[kind] = h
}

func (r *Registry) lookup(kind string) (handler, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.kinds[kind]
	return h, ok
}

// Register registers a plain job for kind: the runner decodes each job's
// arguments into an A and calls Perform. opts may be nil. Registering a kind
// twice panics, as a programming error.
func Register[A any](r *Registry, kind string, job iterable.Performer[A], opts *KindOpts) {
	r.add(kind, &plainHandler[A]{job: job, opts: optsOrZero(opts)})
}

// RegisterIterable registers an iterable job for kind: arguments A, items T,
// cursor C (any type that round-trips through encoding/json). opts may be
// nil. Registering a kind twice panics, as a programming error.
//
// The type arguments are usually inferred from job:
//
//	runner.RegisterIterable(reg, "reindex", Reindex{}, nil)
func RegisterIterable[A, T, C any](r *Registry, kind string, job iterable.Job[A, T, C], opts *KindOpts) {
	h := &iterHandler[A, T, C]{job: job, opts: optsOrZero(opts)}
	h.starter, _ = job.(iterable.Starter[A])
	h.resumer, _ = job.(iterable.Resumer[A])
	h.stopper, _ = job.(iterable.Stopper[A])
	h.completer, _ = job.(iterable.Completer[A])
	r.add(kind, h)
}

func optsOrZero(o *KindOpts) KindOpts {
	if o == nil {
		return KindOpts{}
	}
	return *o
}

// handler runs the jobs of one kind.
type handler interface {
	options() KindOpts
	iterable() bool
	// run runs e's job and says how its run ended.
	run(ctx context.Context, r *Runner, e *execution) outcome
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

// plainHandler runs a Performer.
type plainHandler[A any] struct {
	job  iterable.Performer[A]
	opts KindOpts
}

func (h *plainHandler[A]) options() KindOpts { return h.opts }
func (h *plainHandler[A]) iterable() bool    { return false }

func (h *plainHandler[A]) run(ctx context.Context, r *Runner, e *execution) outcome {
	args, err := decodeArgs[A](e.job.Args)
	if err != nil {
		return failed(iterable.SkipRetry(err), nil)
	}
	r.publish(ctx, jobtype.NewEvent(jobtype.EventStarted, e.job, r.now()))
	trace, err := protect(func() error { return h.job.Perform(ctx, args) })
	if err == nil {
		return outcome{kind: outAck}
	}
	if o, ok := e.interruptedBy(ctx); ok {
		return o
	}
	return failed(err, trace)
}
