package queue

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"time"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/jobtype"
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

// envelopeOf returns j's envelope.
func envelopeOf(j *jobtype.Job) (rdb.Envelope, error) {
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
func encodeEnvelope(j *jobtype.Job) ([]byte, error) {
	e, err := envelopeOf(j)
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
func decodeSafely(s string, parse func(string) (*jobtype.Job, error)) (j *jobtype.Job, err error) {
	defer func() {
		if p := recover(); p != nil {
			j, err = nil, fmt.Errorf("%w: %w", ErrInvalidPayload, &decodePanic{value: p, stack: debug.Stack()})
		}
	}()
	return parse(s)
}

// parseEnvelope parses a stored envelope into a Job.
func parseEnvelope(s string) (*jobtype.Job, error) {
	e, err := rdb.ParseEnvelope(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPayload, err)
	}
	j := &jobtype.Job{
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
