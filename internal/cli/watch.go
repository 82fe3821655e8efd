package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

// Watch's display.
const (
	barWidth      = 24
	redrawEvery   = 250 * time.Millisecond
	lingerDefault = 5 * time.Second
)

func setupWatch(fs *flag.FlagSet) RunFunc {
	jobID := fs.String("job", "", "follow only job `ID`, and end when it finishes")
	plainOut := fs.Bool("plain", false, "print a line per event, even on a terminal")
	bars := fs.Bool("bars", false, "draw progress bars, even when stdout is not a terminal")
	linger := fs.Duration("linger", lingerDefault, "how long a finished job's bar stays")
	return func(ctx context.Context, e *Env, _ []string) error {
		w := &watcher{e: e, jobs: make(map[string]*track), linger: *linger, only: *jobID}
		switch {
		case e.JSON:
			w.mode = modeJSON
		case *plainOut:
			w.mode = modePlain
		case *bars || isTerminal(e.Stdout):
			w.mode = modeBars
		default:
			w.mode = modePlain
		}
		return w.run(ctx)
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

type watchMode int

const (
	modePlain watchMode = iota // a line per event
	modeBars                   // progress bars redrawn in place
	modeJSON                   // an event per line, as JSON
)

// track is one iterable job on screen.
type track struct {
	id, kind, queue string
	progress        *jobtype.Progress
	status          string    // running, or how the job's run ended
	ended           time.Time // when it ended (zero while running)
	rate            float64   // items per second, from the last two progress reports
	lastItems       int64
	lastAt          time.Time
}

type watcher struct {
	e      *Env
	mode   watchMode
	only   string
	linger time.Duration
	jobs   map[string]*track
	order  []string // job ids in the order they appeared
	drawn  int      // lines drawn by the last redraw
	dirty  bool
}

func (w *watcher) run(ctx context.Context) error {
	var opts *queue.SubscribeOpts
	if w.only != "" {
		opts = &queue.SubscribeOpts{JobID: w.only}
	}
	// Subscribe first, then look at what runs: nothing between is missed.
	sub, err := w.e.Client.Subscribe(ctx, opts)
	if err != nil {
		return err
	}
	defer sub.Close()
	if w.only != "" {
		info, err := w.e.Client.Job(ctx, w.only)
		if err != nil {
			return notFound(err, w.only, "the namespace")
		}
		if info.Job == nil { // finished: only its iteration state is left
			t := &track{id: w.only, status: info.IterationStatus, progress: info.Progress, ended: time.Now()}
			w.add(t)
			if w.mode == modeJSON {
				return w.e.PrintJSON(map[string]any{"jid": w.only, "status": info.IterationStatus, "progress": info.Progress})
			}
			w.print(t, "")
			return nil
		}
		if info.State != jobtype.StateRunning {
			t := &track{id: w.only, kind: info.Job.Kind, queue: info.Job.Queue, status: string(info.State), progress: info.Progress, ended: time.Now()}
			w.add(t)
			if w.mode == modePlain {
				w.print(t, "")
			}
		}
	}
	if err := w.snapshot(ctx); err != nil {
		return err
	}
	w.dirty = true // draw the header at once
	if w.mode == modePlain && len(w.jobs) == 0 && w.only == "" {
		fmt.Fprintf(w.e.Stdout, "watching %s (namespace %s): no iterable job running yet; runners must publish events (PublishEvents)\n", w.e.RedisURL(), w.e.Namespace)
	}
	tick := time.NewTicker(redrawEvery)
	defer tick.Stop()
	for {
		if w.mode == modeBars {
			w.redraw(false)
		}
		select {
		case <-ctx.Done():
			if w.mode == modeBars {
				w.redraw(true)
			}
			return nil
		case ev, ok := <-sub.Events():
			if !ok { // the job followed finished
				if w.mode == modeBars {
					w.redraw(true)
				}
				return nil
			}
			w.handle(ev)
		case err := <-sub.Errors():
			if errors.Is(err, queue.ErrEventsTrimmed) || w.mode != modeBars {
				fmt.Fprintf(w.e.Stderr, "iterjob: %s\n", scrub(err, w.e.redisURL))
			}
		case <-tick.C:
			w.expire(time.Now())
		}
	}
}

// snapshot adds the iterable jobs running now, as of their last heartbeat.
func (w *watcher) snapshot(ctx context.Context) error {
	procs, err := w.e.Client.Processes(ctx)
	if err != nil {
		return err
	}
	var busy []jobtype.BusyJob
	for _, p := range procs {
		busy = append(busy, p.Busy...)
	}
	slices.SortFunc(busy, func(a, b jobtype.BusyJob) int { return a.StartedAt.Compare(b.StartedAt) })
	for _, b := range busy {
		if !b.Iterable || w.only != "" && b.ID != w.only {
			continue
		}
		// The progress is as of the job's last checkpoint, at a time not
		// told: the rate starts as the run's average, and the next event's
		// time starts the measure between events.
		t := &track{id: b.ID, kind: b.Kind, queue: b.Queue, status: "running"}
		t.note(b.Progress, time.Time{})
		w.add(t)
		if w.mode == modePlain {
			w.print(t, "running")
		}
	}
	return nil
}

func (w *watcher) add(t *track) {
	if _, ok := w.jobs[t.id]; !ok {
		w.order = append(w.order, t.id)
	}
	w.jobs[t.id] = t
	w.dirty = true
}

// note records a progress report and updates the rate.
func (t *track) note(p *jobtype.Progress, at time.Time) {
	if p == nil {
		return
	}
	t.progress = p
	switch {
	case !t.lastAt.IsZero() && at.After(t.lastAt) && p.ItemsProcessed >= t.lastItems:
		t.rate = float64(p.ItemsProcessed-t.lastItems) / at.Sub(t.lastAt).Seconds()
	case p.RunTime > 0:
		t.rate = float64(p.ItemsProcessed) / p.RunTime.Seconds()
	}
	t.lastItems, t.lastAt = p.ItemsProcessed, at
}

// handle applies one event.
func (w *watcher) handle(ev jobtype.Event) {
	if w.mode == modeJSON {
		b, err := ev.AppendJSON(nil)
		if err == nil {
			fmt.Fprintf(w.e.Stdout, "%s\n", b)
		}
		return
	}
	t, known := w.jobs[ev.JobID]
	switch ev.Type {
	case jobtype.EventResumed, jobtype.EventCheckpointed:
		if !known || !t.ended.IsZero() {
			t = &track{id: ev.JobID}
			w.add(t)
		}
	case jobtype.EventStarted:
		if !known && w.only == "" {
			return // a plain job, or an iterable one not yet checkpointed
		}
		if !known {
			t = &track{id: ev.JobID}
			w.add(t)
		}
		t.ended, t.progress, t.lastAt, t.rate = time.Time{}, nil, time.Time{}, 0
	default:
		if !known {
			if w.only == "" {
				return
			}
			t = &track{id: ev.JobID}
			w.add(t)
		}
	}
	t.kind, t.queue = ev.Kind, ev.Queue
	t.note(ev.Progress, ev.At)
	switch ev.Type {
	case jobtype.EventStarted, jobtype.EventResumed, jobtype.EventCheckpointed:
		t.status, t.ended = "running", time.Time{}
	case jobtype.EventSucceeded, jobtype.EventInterrupted, jobtype.EventCancelled, jobtype.EventFailed,
		jobtype.EventDead, jobtype.EventDeleted, jobtype.EventScheduled, jobtype.EventRetrying:
		t.status, t.ended = string(ev.Type), time.Now()
	default:
		t.status = string(ev.Type)
	}
	w.dirty = true
	if w.mode == modePlain {
		w.print(t, string(ev.Type))
	}
}

// expire drops the bars of jobs that ended more than linger ago.
func (w *watcher) expire(now time.Time) {
	if w.mode != modeBars {
		return
	}
	w.order = slices.DeleteFunc(w.order, func(id string) bool {
		t := w.jobs[id]
		if !t.ended.IsZero() && now.Sub(t.ended) > w.linger {
			delete(w.jobs, id)
			w.dirty = true
			return true
		}
		return false
	})
}

// print writes a plain line for t.
func (w *watcher) print(t *track, what string) {
	if what == "" {
		what = t.status
	}
	fmt.Fprintf(w.e.Stdout, "%s  %-12s %s %s  %s\n", time.Now().Format("15:04:05"), what, t.kind, t.id, t.summary())
}

// summary is "45.0% 4500/10000 items  900/s  ETA 6s".
func (t *track) summary() string {
	p := t.progress
	if p == nil {
		return "(no checkpoint yet)"
	}
	var parts []string
	parts = append(parts, progressLine(p))
	if t.rate > 0 && t.ended.IsZero() {
		parts = append(parts, fmt.Sprintf("%s/s", count(t.rate)))
	}
	if p.TimesInterrupted > 0 {
		parts = append(parts, fmt.Sprintf("interrupted %d×", p.TimesInterrupted))
	}
	return strings.Join(parts, "  ")
}

// count prints a rate: 950, 12.5k, 3.1M.
func count(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// bar is "[#########...............]".
func bar(fraction float64) string {
	if fraction < 0 {
		return "[" + strings.Repeat("?", barWidth) + "]"
	}
	n := min(int(fraction*barWidth+0.5), barWidth)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", barWidth-n) + "]"
}

// redraw draws the bars in place of the last drawing: the cursor goes up
// over the lines drawn before, each line is cleared and rewritten, and lines
// left over are cleared.
func (w *watcher) redraw(final bool) {
	if !w.dirty && !final {
		return
	}
	w.dirty = false
	var b strings.Builder
	if w.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", w.drawn)
	}
	running := 0
	for _, id := range w.order {
		if w.jobs[id].ended.IsZero() {
			running++
		}
	}
	lines := []string{fmt.Sprintf("iterjob watch  %s  namespace %s  %d running", w.e.RedisURL(), w.e.Namespace, running)}
	for _, id := range w.order {
		t := w.jobs[id]
		frac := -1.0
		if t.progress != nil {
			frac = t.progress.Fraction
		}
		if t.status == string(jobtype.EventSucceeded) {
			frac = 1
		}
		status := ""
		if t.status != "running" {
			status = "  " + t.status
		}
		lines = append(lines, fmt.Sprintf("%-14s %-10s %s %s%s", clip(t.kind, 14), clip(t.id, 10), bar(frac), t.summary(), status))
	}
	for _, l := range lines {
		b.WriteString("\x1b[2K")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	for range w.drawn - len(lines) {
		b.WriteString("\x1b[2K\n")
	}
	if extra := w.drawn - len(lines); extra > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", extra)
	}
	w.drawn = len(lines)
	_, _ = io.WriteString(w.e.Stdout, b.String())
}
