package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/jobtype"
)

// emitter hands events to the in-process handler and encodes them for a
// script to publish atomically with the change it describes.
type emitter struct {
	publish bool
	handler func(context.Context, jobtype.Event)
	log     *slog.Logger
}

// on reports whether events go anywhere: published, or handled in-process.
func (e emitter) on() bool { return e.publish || e.handler != nil }

// encode returns ev's JSON for publishing, or nil when publishing is off.
func (e emitter) encode(ctx context.Context, ev jobtype.Event) []byte {
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
func (e emitter) handle(ctx context.Context, ev jobtype.Event) {
	if e.handler != nil {
		e.handler(ctx, ev)
	}
}

// send publishes an event that no script carries (started, checkpointed).
func (e emitter) send(ctx context.Context, db *rdb.DB, ev jobtype.Event) {
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
	ch     chan jobtype.Event
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
	s := &Subscription{ps: ps, ch: make(chan jobtype.Event, 256), errs: make(chan error, 16), done: make(chan struct{})}
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
			var ev jobtype.Event
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
func (s *Subscription) Events() <-chan jobtype.Event { return s.ch }

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
