package queue

import (
	"errors"
	"fmt"

	"github.com/iterjob/iterjob/internal/rdb"
)

// Sentinel errors.
var (
	// ErrInvalidPayload is matched by the error of a job whose stored payload
	// is not a valid job envelope (malformed header or lengths, missing id,
	// kind or queue, or metadata that is not JSON).
	ErrInvalidPayload = rdb.ErrInvalidPayload
	// ErrInvalidName is matched when a queue name, kind or job id is empty
	// or has characters outside [A-Za-z0-9_.:-].
	ErrInvalidName = rdb.ErrInvalidName
	// ErrNotFound is returned for a job id that names no job (in the place
	// asked).
	ErrNotFound = errors.New("queue: job not found")
	// ErrInvalidSchedule is matched by the error of an enqueue whose due
	// time (EnqueueOpts.At) is after the year 9999: due times are kept in
	// Unix milliseconds, and a far-future one would overflow.
	ErrInvalidSchedule = errors.New("queue: invalid schedule")
	// ErrUnknownKind is matched by the error of an enqueue whose kind the
	// client's Config.Kinds does not know: a typo, or a job type no runner
	// registered.
	ErrUnknownKind = errors.New("queue: unknown job kind")
	// ErrInvalidStartCursor is matched by the error of an enqueue whose
	// EnqueueOpts.StartCursor the client's Config.Kinds refuses (see
	// StartCursorChecker): not of the kind's cursor type, or a kind that is
	// not iterable.
	ErrInvalidStartCursor = errors.New("queue: invalid start cursor")
	// ErrNamespaceMismatch is matched by the error of a constructor given
	// parts configured for different namespaces (a cursor store for one, a
	// client or runner for another): their jobs and states would never
	// meet.
	ErrNamespaceMismatch = errors.New("iterjob: namespace mismatch")
)

// JobArgs is implemented by argument types that name their job kind, so the
// kind is written once, on the type, and the compiler checks every enqueue
// (Client.EnqueueArgs) and registration (runner.RegisterArgs):
//
//	type ReindexArgs struct{ Tenant string }
//
//	func (ReindexArgs) Kind() string { return "reindex" }
//
// Kind must return a constant.
type JobArgs interface {
	Kind() string
}

// Kinds tells a client which job kinds exist (see Config.Kinds).
// *runner.Registry implements it; KnownKinds builds one from names.
type Kinds interface {
	Known(kind string) bool
}

// StartCursorChecker is implemented by a Kinds that knows the kinds'
// cursor types, as *runner.Registry does: the client then checks
// EnqueueOpts.StartCursor when the job is enqueued, not when it first runs.
// It checks the cursor's shape (that it decodes into the cursor type), not
// whether the enumerator accepts its value.
type StartCursorChecker interface {
	CheckStartCursor(kind string, start []byte) error
}

// KnownKinds returns a Kinds knowing exactly the kinds given, for a process
// that enqueues jobs which other processes run.
func KnownKinds(kinds ...string) Kinds {
	m := make(kindSet, len(kinds))
	for _, k := range kinds {
		m[k] = struct{}{}
	}
	return m
}

type kindSet map[string]struct{}

func (s kindSet) Known(kind string) bool { _, ok := s[kind]; return ok }

// QueueDefault is the queue a job goes to when EnqueueOpts names none.
const QueueDefault = "default"

func checkName(what, name string) error { return rdb.CheckName(what, name) }

// NewID returns a random job id: 24 hex digits.
func NewID() string { return rdb.NewID() }

// Namespaced is implemented by parts that live in one namespace, such as
// *cursor.RedisStore.
type Namespaced interface {
	Namespace() string
}

// CheckNamespace returns an error matching ErrNamespaceMismatch if part
// lives in a namespace other than ns; what names the part in the message.
func CheckNamespace(what string, part any, ns string) error {
	if n, ok := part.(Namespaced); ok && n.Namespace() != ns {
		return fmt.Errorf("%w: %s is in namespace %q, not %q", ErrNamespaceMismatch, what, n.Namespace(), ns)
	}
	return nil
}
