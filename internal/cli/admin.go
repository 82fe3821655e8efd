package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

// sets are the set names commands accept.
var sets = []queue.Set{queue.SetScheduled, queue.SetRetry, queue.SetDead}

func parseSet(s string) (queue.Set, bool) {
	i := slices.Index(sets, queue.Set(s))
	if i < 0 {
		return "", false
	}
	return sets[i], true
}

func needSet(s string) (queue.Set, error) {
	set, ok := parseSet(s)
	if !ok {
		return "", usageError("%q is not a set: scheduled, retry or dead", s)
	}
	return set, nil
}

type statsView struct {
	Processed      int64 `json:"processed"`
	Failed         int64 `json:"failed"`
	ProcessedToday int64 `json:"processed_today"`
	FailedToday    int64 `json:"failed_today"`
	Enqueued       int64 `json:"enqueued"`
	Queues         int   `json:"queues"`
	Scheduled      int64 `json:"scheduled"`
	Retry          int64 `json:"retry"`
	Dead           int64 `json:"dead"`
	Processes      int   `json:"processes"`
	Busy           int   `json:"busy"`
}

func cmdStats(ctx context.Context, e *Env, _ []string) error {
	c := e.Client
	days, total, err := c.Stats(ctx, 1)
	if err != nil {
		return err
	}
	v := statsView{Processed: total.Processed, Failed: total.Failed, ProcessedToday: days[0].Processed, FailedToday: days[0].Failed}
	qs, err := c.Queues(ctx)
	if err != nil {
		return err
	}
	v.Queues = len(qs)
	for _, q := range qs {
		v.Enqueued += q.Size
	}
	for _, s := range []struct {
		set queue.Set
		n   *int64
	}{{queue.SetScheduled, &v.Scheduled}, {queue.SetRetry, &v.Retry}, {queue.SetDead, &v.Dead}} {
		if *s.n, err = c.SetSize(ctx, s.set); err != nil {
			return err
		}
	}
	procs, err := c.Processes(ctx)
	if err != nil {
		return err
	}
	v.Processes = len(procs)
	for _, p := range procs {
		v.Busy += len(p.Busy)
	}
	if e.JSON {
		return e.PrintJSON(v)
	}
	tw := e.Table()
	fmt.Fprintf(tw, "Processed\t%d\t(today %d)\n", v.Processed, v.ProcessedToday)
	fmt.Fprintf(tw, "Failed\t%d\t(today %d)\n", v.Failed, v.FailedToday)
	fmt.Fprintf(tw, "Enqueued\t%d\t(%d queues)\n", v.Enqueued, v.Queues)
	fmt.Fprintf(tw, "Scheduled\t%d\t\n", v.Scheduled)
	fmt.Fprintf(tw, "Retry\t%d\t\n", v.Retry)
	fmt.Fprintf(tw, "Dead\t%d\t\n", v.Dead)
	fmt.Fprintf(tw, "Processes\t%d\t(%d jobs busy)\n", v.Processes, v.Busy)
	return tw.Flush()
}

type queueView struct {
	Name    string  `json:"name"`
	Size    int64   `json:"size"`
	Latency float64 `json:"latency_seconds"`
	Paused  bool    `json:"paused"`
}

func cmdQueues(ctx context.Context, e *Env, _ []string) error {
	qs, err := e.Client.Queues(ctx)
	if err != nil {
		return err
	}
	out := make([]queueView, len(qs))
	for i, q := range qs {
		out[i] = queueView{Name: q.Name, Size: q.Size, Latency: q.Latency.Seconds(), Paused: q.Paused}
	}
	if e.JSON {
		return e.PrintJSON(out)
	}
	tw := e.Table()
	fmt.Fprintln(tw, "QUEUE\tSIZE\tLATENCY\tPAUSED")
	for _, q := range qs {
		paused := ""
		if q.Paused {
			paused = "paused"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", q.Name, q.Size, human(q.Latency), paused)
	}
	return tw.Flush()
}

// jobView is a job as the CLI prints it in JSON: jobtype.Job's JSON leaves
// out what only listings know (state, attempt, error).
type jobView struct {
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	Queue       string            `json:"queue"`
	State       jobtype.State     `json:"state,omitempty"`
	Args        json.RawMessage   `json:"args"`
	Meta        map[string]string `json:"meta,omitempty"`
	Attempt     int               `json:"attempt"`
	MaxAttempts int               `json:"max_attempts,omitempty"`
	EnqueuedAt  time.Time         `json:"enqueued_at"`
	At          *time.Time        `json:"at,omitempty"`
	UniqueKey   string            `json:"unique_key,omitempty"`
	LastError   *jobtype.JobError `json:"last_error,omitempty"`
	RawPayload  string            `json:"raw_payload,omitempty"`
}

func viewJob(j *jobtype.Job) jobView {
	v := jobView{
		ID: j.ID, Kind: j.Kind, Queue: j.Queue, State: j.State, Args: j.Args, Meta: j.Meta,
		Attempt: j.Attempt, MaxAttempts: j.MaxAttempts, EnqueuedAt: j.EnqueuedAt,
		UniqueKey: j.UniqueKey, LastError: j.LastError, RawPayload: j.RawPayload,
	}
	if !j.At.IsZero() {
		at := j.At
		v.At = &at
	}
	if len(v.Args) == 0 || !json.Valid(v.Args) {
		// Never fail the listing over one job's arguments.
		b, _ := json.Marshal(string(j.Args))
		if len(j.Args) == 0 {
			b = []byte("null")
		}
		v.Args = b
	}
	return v
}

func setupJobs(fs *flag.FlagSet) RunFunc {
	offset := fs.Int("offset", 0, "skip the first `N` jobs")
	limit := fs.Int("limit", 25, "list at most `N` jobs")
	inQueue := fs.String("queue", "", "list only the set's jobs of `QUEUE`")
	return func(ctx context.Context, e *Env, args []string) error {
		if *offset < 0 || *limit <= 0 {
			return usageError("--offset must be >= 0 and --limit > 0")
		}
		var (
			jobs []*jobtype.Job
			err  error
		)
		set, isSet := parseSet(args[0])
		switch {
		case isSet && *inQueue != "":
			jobs, err = e.Client.SetJobsIn(ctx, *inQueue, set, *offset, *limit)
		case isSet:
			jobs, err = e.Client.SetJobs(ctx, set, *offset, *limit)
		case *inQueue != "":
			return usageError("--queue goes with a set, not with queue %q", args[0])
		default:
			jobs, err = e.Client.QueueJobs(ctx, args[0], *offset, *limit)
		}
		if err != nil {
			return err
		}
		if e.JSON {
			out := make([]jobView, len(jobs))
			for i, j := range jobs {
				out[i] = viewJob(j)
			}
			return e.PrintJSON(out)
		}
		tw := e.Table()
		when := "ENQUEUED"
		switch set {
		case queue.SetDead:
			when = "DIED"
		case queue.SetScheduled, queue.SetRetry:
			when = "DUE"
		}
		fmt.Fprintf(tw, "ID\tKIND\tQUEUE\tATTEMPT\t%s\tERROR\tARGS\n", when)
		now := time.Now()
		for _, j := range jobs {
			at := j.EnqueuedAt
			if isSet {
				at = j.At
			}
			msg := ""
			if j.LastError != nil {
				msg = j.LastError.Message
			}
			args := string(j.Args)
			if j.RawPayload != "" {
				args = "(unreadable payload)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", j.ID, j.Kind, j.Queue, j.Attempt, relative(at, now), clip(msg, 40), clip(args, 40))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(jobs) == 0 {
			fmt.Fprintln(e.Stdout, "(no jobs)")
		}
		return nil
	}
}

type jobInfoView struct {
	State           jobtype.State     `json:"state"`
	Process         string            `json:"process,omitempty"`
	IterationStatus string            `json:"iteration_status,omitempty"`
	Job             *jobView          `json:"job,omitempty"`
	Progress        *jobtype.Progress `json:"progress,omitempty"`
}

func cmdJob(ctx context.Context, e *Env, args []string) error {
	info, err := e.Client.Job(ctx, args[0])
	if errors.Is(err, queue.ErrNotFound) {
		return fmt.Errorf("job %s not found", args[0])
	}
	if err != nil {
		return err
	}
	v := jobInfoView{State: info.State, Process: info.Process, IterationStatus: info.IterationStatus, Progress: info.Progress}
	if info.Job != nil {
		jv := viewJob(info.Job)
		v.Job = &jv
	}
	if e.JSON {
		return e.PrintJSON(v)
	}
	tw := e.Table()
	now := time.Now()
	state := string(info.State)
	if info.Process != "" {
		state += " on " + info.Process
	}
	fmt.Fprintf(tw, "ID\t%s\n", args[0])
	fmt.Fprintf(tw, "State\t%s\n", state)
	if j := info.Job; j != nil {
		fmt.Fprintf(tw, "Kind\t%s\n", j.Kind)
		fmt.Fprintf(tw, "Queue\t%s\n", j.Queue)
		fmt.Fprintf(tw, "Attempt\t%d\n", j.Attempt)
		fmt.Fprintf(tw, "Enqueued\t%s (%s)\n", j.EnqueuedAt.Format(time.RFC3339), relative(j.EnqueuedAt, now))
		if !j.At.IsZero() {
			fmt.Fprintf(tw, "At\t%s (%s)\n", j.At.Format(time.RFC3339), relative(j.At, now))
		}
		if j.RawPayload != "" {
			fmt.Fprintf(tw, "Payload\t%q (unreadable)\n", clip(j.RawPayload, 200))
		} else {
			fmt.Fprintf(tw, "Args\t%s\n", clip(string(j.Args), 500))
		}
		if len(j.Meta) > 0 {
			var kv []string
			for _, k := range slices.Sorted(maps.Keys(j.Meta)) {
				kv = append(kv, k+"="+j.Meta[k])
			}
			fmt.Fprintf(tw, "Meta\t%s\n", strings.Join(kv, " "))
		}
	}
	if info.IterationStatus != "" {
		fmt.Fprintf(tw, "Iteration\t%s\n", info.IterationStatus)
	}
	if p := info.Progress; p != nil {
		fmt.Fprintf(tw, "Progress\t%s\n", progressLine(p))
		fmt.Fprintf(tw, "\t%d items processed, %d executions, interrupted %d times, run time %s\n", p.ItemsProcessed, p.Executions, p.TimesInterrupted, human(p.RunTime))
		if len(p.Cursor) > 0 {
			fmt.Fprintf(tw, "Cursor\t%s\n", clip(string(p.Cursor), 200))
		}
	}
	if j := info.Job; j != nil && j.LastError != nil {
		le := j.LastError
		fmt.Fprintf(tw, "Error\t%s: %s (attempt %d, %s)\n", le.Class, le.Message, le.Attempt, relative(le.At, now))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if j := info.Job; j != nil && j.LastError != nil && j.LastError.Trace != "" {
		fmt.Fprintf(e.Stdout, "\n%s\n", strings.TrimRight(j.LastError.Trace, "\n"))
	}
	return nil
}

// progressLine is "4500/10000 items (45.0%), ETA 6s".
func progressLine(p *jobtype.Progress) string {
	unit := p.Unit
	if unit == "" {
		unit = "items"
	}
	var b strings.Builder
	if p.Total >= 0 {
		fmt.Fprintf(&b, "%d/%d %s", p.Done, p.Total, unit)
	} else {
		fmt.Fprintf(&b, "%d %s", p.Done, unit)
	}
	if p.Fraction >= 0 {
		fmt.Fprintf(&b, " (%.1f%%)", 100*p.Fraction)
	}
	if p.ETA > 0 {
		fmt.Fprintf(&b, ", ETA %s", human(p.ETA))
	}
	return b.String()
}

// actionView is the JSON of a command that moved one job.
type actionView struct {
	Action string        `json:"action"`
	ID     string        `json:"id"`
	From   string        `json:"from,omitempty"`
	Was    jobtype.State `json:"was,omitempty"`
}

func (e *Env) done(v actionView, text string) error {
	if e.JSON {
		return e.PrintJSON(v)
	}
	_, err := fmt.Fprintln(e.Stdout, text)
	return err
}

func notFound(err error, id, where string) error {
	if errors.Is(err, queue.ErrNotFound) {
		return fmt.Errorf("job %s not found in %s: %w", id, where, err)
	}
	return err
}

func cmdRetry(ctx context.Context, e *Env, args []string) error {
	set, err := needSet(args[0])
	if err != nil {
		return err
	}
	if err := e.Client.RunNow(ctx, set, args[1]); err != nil {
		return notFound(err, args[1], "the "+string(set)+" set")
	}
	return e.done(actionView{Action: "retry", ID: args[1], From: string(set)}, fmt.Sprintf("job %s moved from the %s set to its queue", args[1], set))
}

func cmdDelete(ctx context.Context, e *Env, args []string) error {
	id := args[1]
	if set, ok := parseSet(args[0]); ok {
		if err := e.Client.Delete(ctx, set, id); err != nil {
			return notFound(err, id, "the "+string(set)+" set")
		}
	} else if err := e.Client.DeleteQueued(ctx, args[0], id); err != nil {
		return notFound(err, id, "queue "+args[0])
	}
	return e.done(actionView{Action: "delete", ID: id, From: args[0]}, fmt.Sprintf("job %s deleted from %s", id, args[0]))
}

func cmdKill(ctx context.Context, e *Env, args []string) error {
	set, err := needSet(args[0])
	if err != nil {
		return err
	}
	if set == queue.SetDead {
		return usageError("kill moves a scheduled or retry job to the dead set")
	}
	if err := e.Client.Kill(ctx, set, args[1]); err != nil {
		return notFound(err, args[1], "the "+string(set)+" set")
	}
	return e.done(actionView{Action: "kill", ID: args[1], From: string(set)}, fmt.Sprintf("job %s moved from the %s set to the dead set", args[1], set))
}

func cmdCancel(ctx context.Context, e *Env, args []string) error {
	was, err := e.Client.Cancel(ctx, args[0])
	if err != nil {
		return notFound(err, args[0], "the namespace")
	}
	text := fmt.Sprintf("job %s cancelled (it was %s)", args[0], was)
	if was == jobtype.StateRunning {
		text += "; its runner stops it within about a second"
	}
	return e.done(actionView{Action: "cancel", ID: args[0], Was: was}, text)
}

func cmdPause(ctx context.Context, e *Env, args []string) error {
	if err := e.Client.PauseQueue(ctx, args[0]); err != nil {
		return err
	}
	return e.done(actionView{Action: "pause", ID: args[0]}, "queue "+args[0]+" paused")
}

func cmdResume(ctx context.Context, e *Env, args []string) error {
	if err := e.Client.ResumeQueue(ctx, args[0]); err != nil {
		return err
	}
	return e.done(actionView{Action: "resume", ID: args[0]}, "queue "+args[0]+" resumed")
}

// human prints a duration rounded to what a person reads: 850ms, 12s, 3m4s,
// 2h5m, 3d4h.
func human(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 48*time.Hour:
		if d = d.Round(time.Second); d >= time.Hour {
			d = d.Round(time.Minute)
		}
		return trimZeroSeconds(d.String())
	}
	days := d / (24 * time.Hour)
	return fmt.Sprintf("%dd%dh", days, (d-days*24*time.Hour)/time.Hour)
}

// trimZeroSeconds turns "3m0s" into "3m" and "2h5m0s" into "2h5m".
func trimZeroSeconds(s string) string {
	if strings.HasSuffix(s, "m0s") {
		return s[:len(s)-2]
	}
	return s
}

// relative is "3m ago" or "in 5s".
func relative(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if d := now.Sub(t); d >= 0 {
		return human(d) + " ago"
	}
	return "in " + human(t.Sub(now))
}

// clip cuts s to n runes, marking the cut.
func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
