package runner

import (
	"fmt"
	"sync"

	"github.com/iterjob/iterjob/internal/exec"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/queue"
)

// ErrUnknownKind is the error of a job whose kind no handler is registered
// for. Such a job is retried with backoff, like any failure, so a deploy that
// has not reached every worker yet loses nothing.
var ErrUnknownKind = exec.ErrUnknownKind

// ErrInvalidArgs is the error of a job whose arguments do not decode into
// its kind's argument type. Such a job goes straight to the dead set: it can
// never succeed as it is (retry it from the dead set after a fix).
var ErrInvalidArgs = exec.ErrInvalidArgs

// Registry maps job kinds to their code. Register kinds before starting a
// runner; a registry is safe for concurrent use.
type Registry struct {
	mu    sync.RWMutex
	kinds map[string]exec.Handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{kinds: make(map[string]exec.Handler)}
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

// Known reports whether kind is registered; it makes a registry usable as
// queue.Config.Kinds, so a client refuses kinds no runner here knows.
func (r *Registry) Known(kind string) bool {
	_, ok := r.lookup(kind)
	return ok
}

// CheckStartCursor returns an error unless start (JSON) decodes into the
// cursor type of kind, an iterable kind registered here; it makes a
// registry given as queue.Config.Kinds check EnqueueOpts.StartCursor at
// enqueue (queue.StartCursorChecker).
func (r *Registry) CheckStartCursor(kind string, start []byte) error {
	h, ok := r.lookup(kind)
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownKind, kind)
	}
	return exec.CheckStartCursor(h, start)
}

func (r *Registry) add(kind string, h exec.Handler) {
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

func (r *Registry) lookup(kind string) (exec.Handler, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.kinds[kind]
	return h, ok
}

// Register registers a plain job for kind: the runner decodes each job's
// arguments into an A and calls Perform. opts may be nil. Registering a kind
// twice panics, as a programming error.
func Register[A any](r *Registry, kind string, job iterable.Performer[A], opts *KindOpts) {
	r.add(kind, exec.NewPlain(job, optsOrZero(opts)))
}

// RegisterIterable registers an iterable job for kind: arguments A, items T,
// cursor C (any type that round-trips through encoding/json). opts may be
// nil. Registering a kind twice panics, as a programming error.
//
// The type arguments are usually inferred from job:
//
//	runner.RegisterIterable(reg, "reindex", Reindex{}, nil)
func RegisterIterable[A, T, C any](r *Registry, kind string, job iterable.Job[A, T, C], opts *KindOpts) {
	r.add(kind, exec.NewIterable(job, optsOrZero(opts)))
}

func optsOrZero(o *KindOpts) exec.KindOpts {
	if o == nil {
		return exec.KindOpts{}
	}
	return exec.KindOpts(*o)
}

// RegisterArgs registers a plain job under the kind its arguments' type
// names (queue.JobArgs), the kind Client.EnqueueArgs uses: the kind is
// written once, on the type.
func RegisterArgs[A queue.JobArgs](r *Registry, job iterable.Performer[A], opts *KindOpts) {
	var a A
	Register(r, a.Kind(), job, opts)
}

// RegisterIterableArgs registers an iterable job under the kind its
// arguments' type names (queue.JobArgs).
func RegisterIterableArgs[A queue.JobArgs, T, C any](r *Registry, job iterable.Job[A, T, C], opts *KindOpts) {
	var a A
	RegisterIterable(r, a.Kind(), job, opts)
}
