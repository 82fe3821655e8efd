package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/jobtype"
)

// ErrEventsTrimmed is sent on Subscription.Errors when a subscription asked
// to resume after an event the stream no longer keeps (it keeps
// Config.EventsMax events): events between that one and the oldest kept were
// missed. The subscription goes on from the oldest kept.
var ErrEventsTrimmed = errors.New("queue: events to resume after were trimmed from the stream")

// ErrInvalidEventID is returned by Subscribe for a SubscribeOpts.After that
// is not an event id.
var ErrInvalidEventID = errors.New("queue: invalid event id")

// SubscribeOpts choose what a subscription delivers. A nil *SubscribeOpts
// means every event from now on.
type SubscribeOpts struct {
	// After resumes after the event with this id (jobtype.Event.ID): a
	// subscriber that reconnects with the id of the last event it handled
	// misses nothing the stream still keeps. "" starts with the events that
	// come after Subscribe; "0" starts with the oldest the stream keeps.
	After string
	// JobID, if set, delivers only that job's events, and ends the
	// subscription (closes Events) after its final one: succeeded, dead,
	// cancelled or deleted.
	JobID string
}

// Subscription delivers the lifecycle events of a namespace, in the order
// they happened, from the namespace's events stream (a capped Redis stream:
// see Config.EventsMax). Events are written only when PublishEvents is on
// for the clients and runners that cause them.
type Subscription struct {
	db     *rdb.DB
	jobID  string
	ch     chan jobtype.Event
	errs   chan error
	done   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

// pollBlock is how long one read of the stream waits for new events; Close
// waits at most this long.
const pollBlock = 200 * time.Millisecond

// Subscribe starts a subscription to the events of c's namespace (see
// SubscribeOpts). Close it when done.
func (c *Client) Subscribe(ctx context.Context, opts *SubscribeOpts) (*Subscription, error) {
	var o SubscribeOpts
	if opts != nil {
		o = *opts
	}
	s := &Subscription{db: c.db, jobID: o.JobID, ch: make(chan jobtype.Event, 256), errs: make(chan error, 16), done: make(chan struct{})}
	from, skip, err := s.start(ctx, o.After)
	if err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.loop(from, skip)
	return s, nil
}

// EventsPosition returns a position in the namespace's events stream that
// stands for "after every event written so far", for SubscribeOpts.After.
// A page or cache that shows state and then follows events takes the
// position first, reads the state, then subscribes after the position: an
// event that lands between the read and Subscribe is delivered, not lost.
func (c *Client) EventsPosition(ctx context.Context) (string, error) {
	id, err := c.db.LastEventID(ctx)
	if err != nil {
		return "", fmt.Errorf("queue: events position: %w", err)
	}
	// An index past any batch's last event: none of that batch is
	// delivered again.
	return id + "/" + strconv.Itoa(math.MaxInt32), nil
}

// start returns the stream id to read after, and how many events of the
// batch at that id (already read) to deliver after: -1 none.
func (s *Subscription) start(ctx context.Context, after string) (string, int, error) {
	switch after {
	case "":
		id, err := s.db.LastEventID(ctx)
		if err != nil {
			return "", 0, fmt.Errorf("queue: subscribe to events: %w", err)
		}
		return id, -1, nil
	case "0":
		return "0-0", -1, nil
	}
	sid, idx, ok := strings.Cut(after, "/")
	n, err := strconv.Atoi(idx)
	if !ok || err != nil || n < 0 || !validStreamID(sid) {
		return "", 0, fmt.Errorf("%w: %q", ErrInvalidEventID, after)
	}
	if _, found, err := s.db.EventAt(ctx, sid); err != nil {
		return "", 0, fmt.Errorf("queue: subscribe to events: %w", err)
	} else if !found {
		first, err := s.db.FirstEventID(ctx)
		if err != nil {
			return "", 0, fmt.Errorf("queue: subscribe to events: %w", err)
		}
		if first != "" && streamLess(sid, first) {
			s.report(fmt.Errorf("%w: %s", ErrEventsTrimmed, after))
		}
		return sid, -1, nil
	}
	return sid, n, nil
}

func validStreamID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return ok && err1 == nil && err2 == nil
}

// streamLess reports whether stream id a comes before b.
func streamLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	x, _ := strconv.ParseUint(am, 10, 64)
	y, _ := strconv.ParseUint(bm, 10, 64)
	if x != y {
		return x < y
	}
	x, _ = strconv.ParseUint(as, 10, 64)
	y, _ = strconv.ParseUint(bs, 10, 64)
	return x < y
}

func (s *Subscription) report(err error) {
	select {
	case s.errs <- err:
	default:
	}
}

func (s *Subscription) loop(after string, skip int) {
	defer s.wg.Done()
	defer close(s.ch)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.done
		cancel()
	}()
	if skip >= 0 {
		// The rest of the batch the subscriber had seen part of.
		b, found, err := s.db.EventAt(ctx, after)
		if err == nil && found && !s.deliver(b, skip+1) {
			return
		}
	}
	wait := 10 * time.Millisecond
	for ctx.Err() == nil {
		batches, err := s.db.ReadEvents(ctx, after, 100, pollBlock)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.report(fmt.Errorf("queue: read events: %w", err))
			sleep(ctx, wait)
			wait = min(2*wait, 2*time.Second)
			continue
		}
		wait = 10 * time.Millisecond
		for _, b := range batches {
			if !s.deliver(b, 0) {
				return
			}
			after = b.ID
		}
	}
}

// deliver sends the events of batch b from index from on; false means the
// subscription is over.
func (s *Subscription) deliver(b rdb.EventBatch, from int) bool {
	var evs []jobtype.Event
	if err := json.Unmarshal([]byte(b.Events), &evs); err != nil {
		s.report(fmt.Errorf("queue: undecodable events %s: %w", b.ID, err))
		return true
	}
	for i := from; i < len(evs); i++ {
		ev := evs[i]
		ev.ID = b.ID + "/" + strconv.Itoa(i)
		if s.jobID != "" && ev.JobID != s.jobID {
			continue
		}
		select {
		case s.ch <- ev:
		case <-s.done:
			return false
		}
		if s.jobID != "" && final(ev.Type) {
			return false
		}
	}
	return true
}

// final reports whether an event of type t is the last of its job.
func final(t jobtype.EventType) bool {
	switch t {
	case jobtype.EventSucceeded, jobtype.EventDead, jobtype.EventCancelled, jobtype.EventDeleted:
		return true
	}
	return false
}

// Events returns the channel of events. It is closed by Close, and, for a
// subscription to one job, after the job's final event.
func (s *Subscription) Events() <-chan jobtype.Event { return s.ch }

// Errors returns problems met while reading (best effort, buffered): events
// that could not be decoded, reads that failed (retried), ErrEventsTrimmed.
func (s *Subscription) Errors() <-chan error { return s.errs }

// Close ends the subscription and waits for its goroutine.
func (s *Subscription) Close() error {
	s.closed.Do(func() {
		close(s.done)
		s.wg.Wait()
	})
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
