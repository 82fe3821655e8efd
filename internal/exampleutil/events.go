package exampleutil

import (
	"context"
	"strconv"

	"github.com/iterjob/iterjob/jobtype"
)

// Events collects a runner's lifecycle events for a program to wait on.
type Events chan jobtype.Event

// NewEvents returns an empty Events.
func NewEvents() Events { return make(Events, 100) }

// Handle is a runner.Config.OnEvent.
func (e Events) Handle(_ context.Context, ev jobtype.Event) { e <- ev }

// Wait returns the next event of type typ, skipping others.
func (e Events) Wait(typ jobtype.EventType) jobtype.Event {
	for {
		if ev := <-e; ev.Type == typ {
			return ev
		}
	}
}

// Tally reads counts (item id 1..n -> times done, as HGETALL returns them)
// and says how many items were done once, more than once, and never.
func Tally(counts map[string]string, n int64) (once, more, never int64) {
	for id := int64(1); id <= n; id++ {
		switch counts[strconv.FormatInt(id, 10)] {
		case "1":
			once++
		case "":
			never++
		default:
			more++
		}
	}
	return once, more, never
}
