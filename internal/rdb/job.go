package rdb

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

	"github.com/iterjob/iterjob/jobtype"
)

// Sentinels that queue re-exports (they are matched by users' errors.Is).
var (
	// ErrInvalidPayload is matched by the error of a job whose stored payload
	// is not a valid job envelope (malformed header or lengths, missing id,
	// kind or queue, or metadata that is not JSON).
	ErrInvalidPayload = errors.New("queue: invalid job payload")
	// ErrInvalidName is matched when a queue name, kind or job id is empty or
	// has characters outside [A-Za-z0-9_.:-].
	ErrInvalidName = errors.New("queue: invalid name")
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,200}$`)

// CheckName returns an error matching ErrInvalidName unless name is 1-200 of
// A-Z a-z 0-9 _ . : - (what says what the name names).
func CheckName(what, name string) error {
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

// UniqueHash is the name a uniqueness key is stored under: a hash, so keys of
// any bytes and length fit in an envelope header.
func UniqueHash(key string) string {
	if key == "" {
		return ""
	}
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:16])
}

// EncodeJob returns j's envelope text.
func EncodeJob(j *jobtype.Job) ([]byte, error) {
	var meta []byte
	if len(j.Meta) > 0 {
		var err error
		if meta, err = json.Marshal(j.Meta); err != nil {
			return nil, fmt.Errorf("queue: encode meta: %w", err)
		}
	}
	e := Envelope{
		ID: j.ID, Kind: j.Kind, Queue: j.Queue, Attempt: max(j.Attempt, 1), Recovered: j.Recovered,
		UniqueHash: UniqueHash(j.UniqueKey), MaxAttempts: j.MaxAttempts, EnqueuedAt: j.EnqueuedAt.UnixMicro(),
		Meta: meta, UniqueKey: j.UniqueKey, Args: j.Args,
	}
	return e.Append(make([]byte, 0, 96+len(e.Args)+len(e.Meta))), nil
}

// ParseJob parses a stored envelope into a Job; its errors match
// ErrInvalidPayload.
func ParseJob(s string) (*jobtype.Job, error) {
	e, err := ParseEnvelope(s)
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

// decodePanic is a panic of the payload decoder, turned into an error at
// the decode boundary: stored data must never crash a worker or an admin
// call, even through a bug of ours.
type decodePanic struct {
	value any
	stack []byte
}

func (e *decodePanic) Error() string { return fmt.Sprintf("decoder panicked: %v", e.value) }

// DecodeTrace returns the stack of a decoder panic in err's chain, if any.
func DecodeTrace(err error) []byte {
	if p, ok := errors.AsType[*decodePanic](err); ok {
		return p.stack
	}
	return nil
}

// DecodeJob decodes a stored envelope with parse (ParseJob but in tests)
// and never panics: an envelope that cannot be decoded, or that makes the
// decoder panic, gives an error matching ErrInvalidPayload (with the stack,
// see DecodeTrace).
func DecodeJob(s string, parse func(string) (*jobtype.Job, error)) (j *jobtype.Job, err error) {
	defer func() {
		if p := recover(); p != nil {
			j, err = nil, fmt.Errorf("%w: %w", ErrInvalidPayload, &decodePanic{value: p, stack: debug.Stack()})
		}
	}()
	return parse(s)
}
