package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

//go:embed index.html
var files embed.FS

var page = template.Must(template.ParseFS(files, "index.html"))

// TaskArgs are the arguments of both task kinds: a label the user sees and
// how many steps the task takes. FailAt makes a provisioning fail at that
// step (1-based), to show a failure.
type TaskArgs struct {
	Label  string `json:"label"`
	Steps  int64  `json:"steps"`
	FailAt int64  `json:"fail_at,omitempty"`
}

// Task is an iterable job over its steps; each step "works" for StepTime.
type Task struct{ StepTime time.Duration }

// BuildEnumerator resumes at the next step.
func (t Task) BuildEnumerator(_ context.Context, a TaskArgs, next *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(1, a.Steps+1, next), nil
}

// EachIteration does one step.
func (t Task) EachIteration(ctx context.Context, a TaskArgs, step int64) error {
	if step == a.FailAt {
		return fmt.Errorf("step %d of %d failed: the provider refused the request", step, a.Steps)
	}
	select {
	case <-time.After(t.StepTime):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// kinds are the task kinds the app offers, with their steps.
var kinds = map[string]TaskArgs{
	"import":    {Label: "Import contacts.csv", Steps: 60},
	"provision": {Label: "Provision a database", Steps: 30},
	"broken":    {Label: "Provision in a bad region", Steps: 30, FailAt: 12},
}

// TaskView is what the page shows of a task; sent as JSON over SSE.
type TaskView struct {
	ID       string  `json:"id"`
	Kind     string  `json:"kind"`
	Label    string  `json:"label"`
	State    string  `json:"state"` // waiting, running, succeeded, failed, retrying, dead, cancelled, removed
	Done     int64   `json:"done"`
	Total    int64   `json:"total"`
	Fraction float64 `json:"fraction"`
	ETA      string  `json:"eta,omitempty"`
	Error    string  `json:"error,omitempty"`
}

// app serves the page, starts tasks and streams their changes.
type app struct {
	client *queue.Client
	log    *slog.Logger

	mu    sync.Mutex
	tasks []string          // ids the app started, oldest first
	label map[string]string // id -> label
}

func newApp(client *queue.Client, log *slog.Logger) *app {
	return &app{client: client, log: log, label: map[string]string{}}
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.index)
	mux.HandleFunc("POST /tasks", a.start)
	mux.HandleFunc("GET /events", a.events)
	return mux
}

func (a *app) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	type button struct{ Kind, Label string }
	var bs []button
	for _, k := range []string{"import", "provision", "broken"} {
		bs = append(bs, button{k, kinds[k].Label})
	}
	if err := page.Execute(w, bs); err != nil {
		a.log.ErrorContext(r.Context(), "progress: render", slog.Any("error", err))
	}
}

// start enqueues a task of the kind posted and answers with its id.
func (a *app) start(w http.ResponseWriter, r *http.Request) {
	kind := r.FormValue("kind")
	args, ok := kinds[kind]
	if !ok {
		http.Error(w, "unknown task kind", http.StatusBadRequest)
		return
	}
	jobKind := "task"
	res, err := a.client.Enqueue(r.Context(), jobKind, args, &queue.EnqueueOpts{MaxAttempts: 1, Meta: map[string]string{"label": args.Label}})
	if err != nil {
		http.Error(w, "could not start the task", http.StatusInternalServerError)
		a.log.ErrorContext(r.Context(), "progress: enqueue", slog.Any("error", err))
		return
	}
	a.mu.Lock()
	a.tasks = append(a.tasks, res.Job.ID)
	a.label[res.Job.ID] = args.Label
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"id": res.Job.ID})
}

// events streams the tasks' changes as Server-Sent Events: first the state
// of every task the app started (unless the browser resumes with
// Last-Event-ID), then every event of a task from the events stream, each
// with its stream id, so a reconnecting browser misses nothing.
func (a *app) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ctx := r.Context()
	last := r.Header.Get("Last-Event-ID")
	sub, err := a.client.Subscribe(ctx, &queue.SubscribeOpts{After: last})
	if errors.Is(err, queue.ErrEventsTrimmed) || errors.Is(err, queue.ErrInvalidEventID) {
		last = "" // too old or foreign: start over with a snapshot
		sub, err = a.client.Subscribe(ctx, nil)
	}
	if err != nil {
		http.Error(w, "events unavailable", http.StatusServiceUnavailable)
		return
	}
	defer sub.Close()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	if last == "" {
		// Subscribed first, then the snapshot: an event in between is sent
		// twice, which the page applies idempotently.
		for _, v := range a.snapshot(ctx) {
			send(w, "", v)
		}
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
		case ev, ok := <-sub.Events():
			if !ok {
				return
			}
			if ev.Kind != "task" {
				continue
			}
			if v, ok := a.view(ev); ok {
				send(w, ev.ID, v)
				flusher.Flush()
			}
		}
	}
}

func send(w http.ResponseWriter, id string, v TaskView) {
	b, _ := json.Marshal(v)
	if id != "" {
		fmt.Fprintf(w, "id: %s\n", id)
	}
	fmt.Fprintf(w, "event: task\ndata: %s\n\n", b)
}

// snapshot returns the tasks the app started that still exist, as they are.
func (a *app) snapshot(ctx context.Context) []TaskView {
	a.mu.Lock()
	ids := slices.Clone(a.tasks)
	a.mu.Unlock()
	var out []TaskView
	for _, id := range ids {
		info, err := a.client.Job(ctx, id)
		if err != nil {
			continue // finished and forgotten, or deleted
		}
		v := TaskView{ID: id, Kind: "task", Label: a.labelOf(id, nil), State: stateName(info.State), Total: -1, Fraction: -1}
		if info.Job != nil {
			v.Label = a.labelOf(id, info.Job.Meta)
		}
		progressInto(&v, info.Progress)
		out = append(out, v)
	}
	return out
}

// view turns an event into the task's new view; ok is false for events the
// page does not show.
func (a *app) view(ev jobtype.Event) (TaskView, bool) {
	v := TaskView{ID: ev.JobID, Kind: ev.Kind, Label: a.labelOf(ev.JobID, ev.Meta), Total: -1, Fraction: -1, Error: ev.Error}
	switch ev.Type {
	case jobtype.EventEnqueued, jobtype.EventScheduled:
		v.State = "waiting"
	case jobtype.EventStarted, jobtype.EventResumed, jobtype.EventCheckpointed, jobtype.EventInterrupted:
		v.State = "running"
	case jobtype.EventSucceeded:
		v.State = "succeeded"
	case jobtype.EventFailed:
		v.State = "failed"
	case jobtype.EventRetrying:
		v.State = "retrying"
	case jobtype.EventDead:
		v.State = "failed"
	case jobtype.EventCancelled:
		v.State = "cancelled"
	case jobtype.EventDeleted:
		v.State = "removed"
	default:
		return v, false
	}
	progressInto(&v, ev.Progress)
	if v.State == "succeeded" && v.Total > 0 {
		v.Done, v.Fraction = v.Total, 1
	}
	return v, true
}

func (a *app) labelOf(id string, meta map[string]string) string {
	if l := meta["label"]; l != "" {
		return l
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if l := a.label[id]; l != "" {
		return l
	}
	return "task " + id
}

func progressInto(v *TaskView, p *jobtype.Progress) {
	if p == nil {
		return
	}
	v.Done, v.Total, v.Fraction = p.Done, p.Total, p.Fraction
	if p.ETA > 0 {
		v.ETA = p.ETA.Round(time.Second).String()
	}
}

func stateName(s jobtype.State) string {
	switch s {
	case jobtype.StateQueued, jobtype.StateScheduled:
		return "waiting"
	case jobtype.StateRunning:
		return "running"
	case jobtype.StateRetry:
		return "retrying"
	case jobtype.StateDead:
		return "failed"
	case "completed":
		return "succeeded"
	}
	return string(s)
}
