package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/rdb"
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
	EventDeleted      EventType = "deleted"      // the job was deleted through the admin API
)

// Event is one lifecycle transition of a job, as published on the events
// channel. Every event carries the job's id, kind, queue, attempt and meta,
// those of admin calls (RunNow, Kill, Delete, DeleteQueued, Cancel) and of
// jobs dropped at fetch because they were cancelled included; only a job
// whose stored payload cannot be read has its id alone.
type Event struct {
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

// emitter hands events to the in-process handler and encodes them for a
// script to publish atomically with the change it describes.
type emitter struct {
	publish bool
	handler func(context.Context, Event)
	log     *slog.Logger
}

// on reports whether events go anywhere: published, or handled in-process.
func (e emitter) on() bool { return e.publish || e.handler != nil }

// encode returns ev's JSON for publishing, or nil when publishing is off.
func (e emitter) encode(ctx context.Context, ev Event) []byte {
	if !e.publish {
		return nil
	}
	b, err := json.Marshal(ev)
	if err != nil {
		e.log.ErrorContext(ctx, "queue: encode event", slog.String("type", string(ev.Type)), slog.String("jid", ev.JobID), slog.Any("error", err))
		return nil
	}
	return b
}

// handle passes ev to the in-process handler, once the change it describes
// has happened.
func (e emitter) handle(ctx context.Context, ev Event) {
	if e.handler != nil {
		e.handler(ctx, ev)
	}
}

// send publishes an event that no script carries (started, checkpointed).
func (e emitter) send(ctx context.Context, db *rdb.DB, ev Event) {
	e.handle(ctx, ev)
	b := e.encode(ctx, ev)
	if b == nil {
		return
	}
	if err := db.C.Publish(ctx, db.Keys.Events(), b).Err(); err != nil {
		e.log.WarnContext(ctx, "queue: publish event", slog.String("type", string(ev.Type)), slog.String("jid", ev.JobID), slog.Any("error", err))
	}
}

// Subscription delivers lifecycle events published in a namespace. Events are
// fire-and-forget (Redis pub/sub): a subscriber sees the events published
// while it is connected, in order per publisher.
type Subscription struct {
	ps     *redis.PubSub
	ch     chan Event
	errs   chan error
	done   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

// Subscribe starts a subscription to the events of c's namespace. Events are
// only published when Config.PublishEvents is on for the clients and
// runners that cause them. Close the subscription when done.
func (c *Client) Subscribe(ctx context.Context) (*Subscription, error) {
	return subscribe(ctx, c.db)
}

func subscribe(ctx context.Context, db *rdb.DB) (*Subscription, error) {
	ps := db.C.Subscribe(ctx, db.Keys.Events())
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("queue: subscribe to events: %w", err)
	}
	s := &Subscription{ps: ps, ch: make(chan Event, 256), errs: make(chan error, 16), done: make(chan struct{})}
	s.wg.Add(1)
	go s.loop()
	return s, nil
}

func (s *Subscription) loop() {
	defer s.wg.Done()
	defer close(s.ch)
	msgs := s.ps.Channel()
	for {
		select {
		case <-s.done:
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			var ev Event
			if err := json.Unmarshal([]byte(m.Payload), &ev); err != nil {
				select {
				case s.errs <- fmt.Errorf("queue: undecodable event %q: %w", m.Payload, err):
				default:
				}
				continue
			}
			select {
			case s.ch <- ev:
			case <-s.done:
				return
			}
		}
	}
}

// Events returns the channel of events; it is closed by Close.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Errors returns events that could not be decoded (best effort, buffered).
func (s *Subscription) Errors() <-chan error { return s.errs }

// Close ends the subscription and waits for its goroutine.
func (s *Subscription) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.done)
		err = s.ps.Close()
		s.wg.Wait()
		if errors.Is(err, redis.ErrClosed) {
			err = nil
		}
	})
	return err
}
