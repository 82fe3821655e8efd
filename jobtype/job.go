package jobtype

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"
)

// Job is one job: what was enqueued, and what the queue knows of its runs.
// Redis keeps it in a compact envelope, not as JSON; the JSON tags
// serve applications that log or serve jobs.
type Job struct {
	// ID is the job's id, unique in its namespace; it never changes, not
	// even across interruptions and retries.
	ID string `json:"jid"`
	// Kind names the code that runs the job.
	Kind string `json:"kind"`
	// Queue is the queue the job waits in.
	Queue string `json:"queue"`
	// Args are the job's arguments as JSON.
	Args json.RawMessage `json:"args"`
	// MaxAttempts caps the attempts before the job dies; 0 means the
	// runner's default for the kind.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// EnqueuedAt is when the job was first enqueued.
	EnqueuedAt time.Time `json:"enqueued_at"`
	// UniqueKey, when set, is held by this job until it finishes.
	UniqueKey string `json:"unique_key,omitempty"`
	// Meta holds annotations from the caller and middleware.
	Meta map[string]string `json:"meta,omitempty"`

	// Attempt is 1 on the first attempt and grows by one per failure;
	// interruptions and recoveries after a crash do not count.
	Attempt int `json:"-"`
	// Lease is the run number given by the fetch that took the job: it grows
	// with every run, and only the newest run may finish the job.
	Lease int64 `json:"-"`
	// Recovered counts the times the job was taken back from a worker that
	// died while running it.
	Recovered int `json:"-"`
	// State is where the job is: queued, scheduled, running, retry or dead
	// (admin listings only).
	State State `json:"-"`
	// LastError is the error of the last failed attempt, if any.
	LastError *JobError `json:"-"`
	// At is the time that orders the job in a sorted set: due time in the
	// scheduled and retry sets, time of death in the dead set (admin
	// listings only).
	At time.Time `json:"-"`
	// RawPayload is the payload as stored, for a job whose payload could not
	// be decoded (admin listings only; LastError says why). It is empty for
	// every job that decodes.
	RawPayload string `json:"-"`
}

// JobError is what the queue keeps of a failed attempt.
type JobError struct {
	Message string `json:"message"`
	// Class is the Go type of the most specific error in the chain (see
	// ErrorClass), such as "*csvrows.RowError".
	Class   string    `json:"class"`
	Trace   string    `json:"trace,omitempty"`
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
}

// MetaStartCursor is the Meta key holding the cursor (JSON) an iterable
// job's first run starts at (queue.EnqueueOpts.StartCursor).
const MetaStartCursor = "iterjob.start_cursor"

// MaxTraceBytes bounds the stack trace kept with a failed job.
const MaxTraceBytes = 4096

// NewJobError records err (and a stack trace, cut to MaxTraceBytes). Its
// class is ErrorClass(err, nil).
func NewJobError(err error, trace []byte, attempt int, at time.Time) *JobError {
	if len(trace) > MaxTraceBytes {
		trace = append(trace[:MaxTraceBytes:MaxTraceBytes], "\n…"...)
	}
	msg := "<nil>"
	if err != nil {
		msg = err.Error()
	}
	return &JobError{Message: msg, Class: ErrorClass(err, nil), Trace: string(trace), At: at, Attempt: attempt}
}

// The types of the standard library's pure wrappers: fmt.Errorf with one %w
// and with several, and errors.Join.
var stdWrappers = func() map[reflect.Type]bool {
	e := errors.New("")
	return map[reflect.Type]bool{
		reflect.TypeOf(fmt.Errorf("%w", e)):      true,
		reflect.TypeOf(fmt.Errorf("%w%w", e, e)): true,
		reflect.TypeOf(errors.Join(e, e)):        true,
	}
}()

// ErrorClass returns the Go type of the most specific error in err's chain,
// as "%T" prints it ("*csvrows.RowError"), or "<nil>". It follows
// Unwrap (and the Unwrap() []error of multi-errors, depth first, first error
// first) past pure wrappers, which add words but no type of their own: the
// errors of fmt.Errorf and errors.Join, and those for which wrapper reports
// true (nil: none more). The first error that is not one gives the class: a
// plain errors.New gives "*errors.errorString". A wrapper that wraps nothing
// is its own class.
func ErrorClass(err error, wrapper func(error) bool) string {
	if c := classOf(err, wrapper, 0); c != nil {
		return fmt.Sprintf("%T", c)
	}
	return fmt.Sprintf("%T", err)
}

// classOf returns the first error in err's chain that is not a pure
// wrapper, or nil. depth bounds the walk of a cyclic or absurdly deep chain.
func classOf(err error, wrapper func(error) bool, depth int) error {
	if err == nil || depth > 100 {
		return nil
	}
	if !stdWrappers[reflect.TypeOf(err)] && (wrapper == nil || !wrapper(err)) {
		return err
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		if c := classOf(u.Unwrap(), wrapper, depth+1); c != nil {
			return c
		}
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if c := classOf(e, wrapper, depth+1); c != nil {
				return c
			}
		}
	}
	return nil
}

// State is where a job is.
type State string

// Job states.
const (
	StateQueued    State = "queued"
	StateScheduled State = "scheduled"
	StateRunning   State = "running"
	StateRetry     State = "retry"
	StateDead      State = "dead"
)

// PanicError is the error of a run that panicked. The panic is recovered;
// the job is retried like any failure and the worker goes on. Its stack is
// kept with the job's error (JobError.Trace).
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("job panicked: %v", e.Value) }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
