package jobtype

import (
	"encoding/json"
	"time"
)

// EventType names a job's lifecycle transition.
type EventType string

// Lifecycle events.
const (
	EventEnqueued     EventType = "enqueued"     // added to a queue
	EventScheduled    EventType = "scheduled"    // added to the scheduled set (due later, snoozed, throttled)
	EventStarted      EventType = "started"      // a run began (first run of an iterable job, or any run of a plain one)
	EventResumed      EventType = "resumed"      // a later run of an iterable job began
	EventCheckpointed EventType = "checkpointed" // an iterable job saved its cursor
	EventInterrupted  EventType = "interrupted"  // a run stopped early; the job was re-enqueued
	EventSucceeded    EventType = "succeeded"    // the job finished
	EventFailed       EventType = "failed"       // an attempt failed
	EventRetrying     EventType = "retrying"     // the failed job waits in the retry set
	EventDead         EventType = "dead"         // the job went to the dead set
	EventCancelled    EventType = "cancelled"    // the job was cancelled
	EventDeleted      EventType = "deleted"      // the job was deleted through queue.Client
)

// Event is one lifecycle transition of a job, as published on the events
// channel. Every event carries the job's id, kind, queue, attempt and meta,
// those of admin calls (RunNow, Kill, Delete, DeleteQueued, Cancel) and of
// jobs dropped at fetch because they were cancelled included; only a job
// whose stored payload cannot be read has its id alone.
type Event struct {
	// ID is the event's id in the namespace's events stream, set on the
	// events a subscription delivers (queue.Subscribe): resume after it
	// with SubscribeOpts.After.
	ID    string    `json:"id,omitempty"`
	Type  EventType `json:"type"`
	JobID string    `json:"jid"`
	Kind  string    `json:"kind,omitempty"`
	Queue string    `json:"queue,omitempty"`
	// Attempt is the job's attempt (1 on the first): the one that ran, for
	// the events of a run (started to dead), or the next one, for a job
	// waiting (enqueued by RunNow from the retry set: the attempt it will
	// run as).
	Attempt int       `json:"attempt,omitempty"`
	At      time.Time `json:"at"`
	// Error is the failure's message (failed, retrying, dead).
	Error string `json:"error,omitempty"`
	// RunAt is when the job runs next (scheduled, retrying).
	RunAt *time.Time `json:"run_at,omitempty"`
	// Progress is an iterable job's progress (resumed, checkpointed,
	// interrupted, succeeded, failed, cancelled).
	Progress *Progress `json:"progress,omitempty"`
	// Meta is the job's metadata.
	Meta map[string]string `json:"meta,omitempty"`
}

// Progress is an iterable job's progress as carried by events and the admin
// API.
type Progress struct {
	Cursor           json.RawMessage `json:"cursor,omitempty"`
	ItemsProcessed   int64           `json:"items_processed"`
	TimesInterrupted int             `json:"times_interrupted"`
	Executions       int             `json:"executions"`
	RunTime          time.Duration   `json:"run_time"`
	// Done and Total are in Unit ("items", "rows", "bytes"); Total is -1
	// when unknown.
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
	Unit  string `json:"unit,omitempty"`
	// Fraction is Done/Total, or -1 when Total is unknown.
	Fraction float64 `json:"fraction"`
	// ETA is the estimated time left, from the rate so far; 0 when unknown.
	ETA time.Duration `json:"eta,omitempty"`
}

// NewEvent returns an event of type t for job j at time at.
func NewEvent(t EventType, j *Job, at time.Time) Event {
	return Event{Type: t, JobID: j.ID, Kind: j.Kind, Queue: j.Queue, Attempt: j.Attempt, At: at, Meta: j.Meta}
}

// BusyJob is a job a process is running, as queue.Client.Processes shows it.
type BusyJob struct {
	ID        string    `json:"jid"`
	Kind      string    `json:"kind"`
	Queue     string    `json:"queue"`
	Run       int64     `json:"run"`
	StartedAt time.Time `json:"started_at"`
	Iterable  bool      `json:"iterable"`
	// Progress is an iterable job's progress as of its last checkpoint.
	Progress *Progress `json:"progress,omitempty"`
}
