package queue

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"runtime/debug"
	"time"

	"github.com/iterjob/iterjob/internal/rdb"
)

// Sentinel errors.
var (
	// ErrInvalidPayload is matched by the error of a job whose stored payload
	// is not a valid job envelope (malformed header or lengths, missing id,
	// kind or queue, or metadata that is not JSON).
	ErrInvalidPayload = errors.New("queue: invalid job payload")
	// ErrInvalidName is matched when a queue name or kind is empty or has
	// characters outside [A-Za-z0-9_.:-].
	ErrInvalidName = errors.New("queue: invalid name")
	// ErrNotFound is returned for a job id that names no job (in the place
	// asked).
	ErrNotFound = errors.New("queue: job not found")
	// ErrLeaseLost is returned when a run finishes a job whose lease moved on
	// to a newer run (the run was presumed dead and the job handed over).
	ErrLeaseLost = errors.New("queue: job lease lost to a newer run")
	// ErrInvalidSchedule is matched by the error of an enqueue whose due
	// time (EnqueueOpts.At) is after the year 9999: due times are kept in
	// Unix milliseconds, and a far-future one would overflow.
	ErrInvalidSchedule = errors.New("queue: invalid schedule")
	// ErrReaped is returned by Fetch when this process was presumed dead and
	// reaped: its in-flight jobs were handed to others. It must Heartbeat
	// (which registers it again and reports the reap) before fetching.
	ErrReaped = errors.New("queue: process presumed dead and reaped")
)

// QueueDefault is the queue a job goes to when EnqueueOpts names none.
const QueueDefault = "default"

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,200}$`)

func checkName(what, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %s %q (1-200 of A-Z a-z 0-9 _ . : -)", ErrInvalidName, what, name)
	}
	return nil
}

// Job is one job: what was enqueued, and what the queue knows of its runs.
// It is stored as an envelope (see internal/rdb), not as JSON; the JSON tags
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

// NewID returns a random job id: 24 hex digits.
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// uniqueHash is the name a uniqueness key is stored under: a hash, so keys of
// any bytes and length fit in an envelope header.
func uniqueHash(key string) string {
	if key == "" {
		return ""
	}
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:16])
}

// envelope returns j's envelope.
func (j *Job) envelope() (rdb.Envelope, error) {
	var meta []byte
	if len(j.Meta) > 0 {
		var err error
		if meta, err = json.Marshal(j.Meta); err != nil {
			return rdb.Envelope{}, fmt.Errorf("queue: encode meta: %w", err)
		}
	}
	return rdb.Envelope{
		ID: j.ID, Kind: j.Kind, Queue: j.Queue, Attempt: max(j.Attempt, 1), Recovered: j.Recovered,
		UniqueHash: uniqueHash(j.UniqueKey), MaxAttempts: j.MaxAttempts, EnqueuedAt: j.EnqueuedAt.UnixMicro(),
		Meta: meta, UniqueKey: j.UniqueKey, Args: j.Args,
	}, nil
}

// encodeEnvelope returns j's envelope text.
func (j *Job) encodeEnvelope() ([]byte, error) {
	e, err := j.envelope()
	if err != nil {
		return nil, err
	}
	return e.Append(make([]byte, 0, 96+len(e.Args)+len(e.Meta))), nil
}

// decodePanic is a panic of the payload decoder, turned into an error at
// the decode boundary: stored data must never crash a worker or an admin
// call, even through a bug of ours.
type decodePanic struct {
	value any
	stack []byte
}

func (e *decodePanic) Error() string { return fmt.Sprintf("decoder panicked: %v", e.value) }

// decodeTrace returns the stack of a decoder panic in err's chain, if any.
func decodeTrace(err error) []byte {
	if p, ok := errors.AsType[*decodePanic](err); ok {
		return p.stack
	}
	return nil
}

// decodeSafely decodes a stored envelope with parse (parseEnvelope but in
// tests) and never panics: an envelope that cannot be decoded, or that makes
// the decoder panic, gives an error matching ErrInvalidPayload.
func decodeSafely(s string, parse func(string) (*Job, error)) (j *Job, err error) {
	defer func() {
		if p := recover(); p != nil {
			j, err = nil, fmt.Errorf("%w: %w", ErrInvalidPayload, &decodePanic{value: p, stack: debug.Stack()})
		}
	}()
	return parse(s)
}

// parseEnvelope parses a stored envelope into a Job.
func parseEnvelope(s string) (*Job, error) {
	e, err := rdb.ParseEnvelope(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPayload, err)
	}
	j := &Job{
		ID: e.ID, Kind: e.Kind, Queue: e.Queue, Args: e.Args, MaxAttempts: e.MaxAttempts,
		EnqueuedAt: time.UnixMicro(e.EnqueuedAt), UniqueKey: e.UniqueKey,
		Attempt: max(e.Attempt, 1), Recovered: e.Recovered,
	}
	if len(e.Meta) > 0 {
		if err := json.Unmarshal(e.Meta, &j.Meta); err != nil {
			return nil, fmt.Errorf("%w %s: meta: %v", ErrInvalidPayload, e.ID, err)
		}
	}
	return j, nil
}
