package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

// events streams the namespace's events to the pages as Server-Sent
// Events. A page connects with ?after= the events position taken before it
// read its data; a browser that reconnects sends the id of the last event it
// handled (Last-Event-ID), which wins. Either way the page misses nothing the
// stream still keeps; if the stream no longer has that event, the page is
// told to reload.
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ctx := r.Context()
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("after")
	}
	sub, err := d.client.Subscribe(ctx, &queue.SubscribeOpts{After: last})
	reload := false
	if errors.Is(err, queue.ErrEventsTrimmed) || errors.Is(err, queue.ErrInvalidEventID) {
		reload = true
		sub, err = d.client.Subscribe(ctx, nil)
	}
	if err != nil {
		d.log.WarnContext(ctx, "web: subscribe", "error", err)
		http.Error(w, "events unavailable", http.StatusServiceUnavailable)
		return
	}
	defer sub.Close()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	fmt.Fprint(w, "retry: 2000\n\n")
	if reload {
		fmt.Fprint(w, "event: reload\ndata: {}\n\n")
	}
	flusher.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
			flusher.Flush()
		case err := <-sub.Errors():
			d.log.WarnContext(ctx, "web: events", "error", err)
		case ev, ok := <-sub.Events():
			if !ok {
				return
			}
			b, err := json.Marshal(view(ev))
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "id: %s\nevent: job\ndata: %s\n\n", ev.ID, b)
			flusher.Flush()
		}
	}
}

// eventView is what a page needs of an event.
type eventView struct {
	Type     jobtype.EventType `json:"type"`
	JobID    string            `json:"jid"`
	Kind     string            `json:"kind"`
	Queue    string            `json:"queue"`
	Attempt  int               `json:"attempt"`
	Error    string            `json:"error,omitempty"`
	Progress *progressView     `json:"progress,omitempty"`
}

type progressView struct {
	Done        int64   `json:"done"`
	Total       int64   `json:"total"`
	Unit        string  `json:"unit"`
	Fraction    float64 `json:"fraction"`
	Items       int64   `json:"items"`
	Rate        float64 `json:"rate"` // items per second of run time
	ETA         string  `json:"eta,omitempty"`
	Cursor      string  `json:"cursor,omitempty"`
	Interrupted int     `json:"interrupted"`
}

func view(ev jobtype.Event) eventView {
	v := eventView{Type: ev.Type, JobID: ev.JobID, Kind: ev.Kind, Queue: ev.Queue, Attempt: ev.Attempt, Error: ev.Error}
	if p := ev.Progress; p != nil {
		pv := &progressView{Done: p.Done, Total: p.Total, Unit: p.Unit, Fraction: p.Fraction, Items: p.ItemsProcessed,
			Cursor: truncate(string(p.Cursor), 200), Interrupted: p.TimesInterrupted}
		if p.RunTime > 0 {
			pv.Rate = float64(p.ItemsProcessed) / p.RunTime.Seconds()
		}
		if p.ETA > 0 {
			pv.ETA = short(p.ETA)
		}
		v.Progress = pv
	}
	return v
}
