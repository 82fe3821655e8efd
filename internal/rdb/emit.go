package rdb

import (
	"context"
	"log/slog"

	"github.com/iterjob/iterjob/jobtype"
)

// Emitter hands events to an in-process handler and encodes them for a
// script to publish atomically with the change it describes.
type Emitter struct {
	Publish bool
	Handler func(context.Context, jobtype.Event)
	Log     *slog.Logger
}

// On reports whether events go anywhere: published, or handled in-process.
func (e Emitter) On() bool { return e.Publish || e.Handler != nil }

// Encode returns ev's JSON for publishing, or nil when publishing is off.
func (e Emitter) Encode(ctx context.Context, ev jobtype.Event) []byte {
	if !e.Publish {
		return nil
	}
	b, err := ev.AppendJSON(make([]byte, 0, 192))
	if err != nil {
		e.Log.ErrorContext(ctx, "iterjob: encode event", slog.String("type", string(ev.Type)), slog.String("jid", ev.JobID), slog.Any("error", err))
		return nil
	}
	return b
}

// Handle passes ev to the in-process handler, once the change it describes
// has happened.
func (e Emitter) Handle(ctx context.Context, ev jobtype.Event) {
	if e.Handler != nil {
		e.Handler(ctx, ev)
	}
}
