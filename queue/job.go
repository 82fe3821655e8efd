package queue

import (
	"errors"

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
)

// QueueDefault is the queue a job goes to when EnqueueOpts names none.
const QueueDefault = "default"

func checkName(what, name string) error { return rdb.CheckName(what, name) }

// NewID returns a random job id: 24 hex digits.
func NewID() string { return rdb.NewID() }
