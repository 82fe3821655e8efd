package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/jobtype"
)

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
