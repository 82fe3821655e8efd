package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

var funcs = template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return short(time.Since(t)) + " ago"
	},
	"in": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		if d := time.Until(t); d > 0 {
			return "in " + short(d)
		}
		return "now"
	},
	"dur":  short,
	"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"pct": func(f float64) string {
		if f < 0 {
			return ""
		}
		return strconv.FormatFloat(math.Min(f, 1)*100, 'f', 1, 64)
	},
	"rate": func(p *jobtype.Progress) string {
		if p == nil || p.RunTime <= 0 {
			return ""
		}
		return strconv.FormatFloat(float64(p.ItemsProcessed)/p.RunTime.Seconds(), 'f', 1, 64)
	},
	"pretty": func(raw json.RawMessage) string { return readable(raw, "  ") },
	"args":   func(raw json.RawMessage) string { return readable(raw, "") },
	"bytes": func(n int64) string {
		switch {
		case n >= 1<<30:
			return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
		}
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	},
	"num": func(n int64) string { return group(n) },
	"div": func(a, b int64) float64 {
		if b == 0 {
			return 0
		}
		return float64(a) / float64(b)
	},
	"add":  func(a, b int) int { return a + b },
	"sub":  func(a, b int) int { return a - b },
	"trim": func(s string, n int) string { return truncate(s, n) },
}

// readable re-encodes JSON for people: characters that encoding/json
// escapes for HTML (<, >, &) are shown as they are, since html/template
// escapes the page itself. indent "" means compact.
func readable(raw json.RawMessage, indent string) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return string(raw)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if enc.Encode(v) != nil {
		return string(raw)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func short(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// pageNum reads ?page= (1-based).
func pageNum(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

type overviewData struct {
	Days                      []queue.DayStats
	Total                     queue.DayStats
	MaxDay                    int64
	Queues                    []queue.QueueInfo
	Scheduled, Retry, Dead    int64
	Busy, Processes, Capacity int
	Server                    queue.ServerInfo
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var o overviewData
	var err error
	if o.Days, o.Total, err = d.client.Stats(ctx, 14); err != nil {
		d.fail(w, r, http.StatusBadGateway, err)
		return
	}
	slices.Reverse(o.Days) // oldest first, for the chart
	for _, day := range o.Days {
		o.MaxDay = max(o.MaxDay, day.Processed+day.Failed)
	}
	if o.Queues, err = d.client.Queues(ctx); err != nil {
		d.fail(w, r, http.StatusBadGateway, err)
		return
	}
	for _, s := range []struct {
		set queue.Set
		n   *int64
	}{{queue.SetScheduled, &o.Scheduled}, {queue.SetRetry, &o.Retry}, {queue.SetDead, &o.Dead}} {
		if *s.n, err = d.client.SetSize(ctx, s.set); err != nil {
			d.fail(w, r, http.StatusBadGateway, err)
			return
		}
	}
	procs, err := d.client.Processes(ctx)
	if err != nil {
		d.fail(w, r, http.StatusBadGateway, err)
		return
	}
	o.Processes = len(procs)
	for _, p := range procs {
		o.Busy += len(p.Busy)
		if c, ok := p.Extra["concurrency"].(float64); ok {
			o.Capacity += int(c)
		}
	}
	if o.Server, err = d.client.Server(ctx); err != nil {
		// Not every server answers INFO (some managed ones restrict it).
		d.log.DebugContext(ctx, "web: redis info", "error", err)
	}
	d.render(w, r, http.StatusOK, "overview", "Overview", o)
}

func (d *Dashboard) busy(w http.ResponseWriter, r *http.Request) {
	procs, err := d.client.Processes(r.Context())
	if err != nil {
		d.fail(w, r, http.StatusBadGateway, err)
		return
	}
	slices.SortFunc(procs, func(a, b queue.Process) int { return strings.Compare(a.ID, b.ID) })
	for _, p := range procs {
		slices.SortFunc(p.Busy, func(a, b jobtype.BusyJob) int { return a.StartedAt.Compare(b.StartedAt) })
	}
	d.render(w, r, http.StatusOK, "busy", "Busy", procs)
}

func (d *Dashboard) queues(w http.ResponseWriter, r *http.Request) {
	qs, err := d.client.Queues(r.Context())
	if err != nil {
		d.fail(w, r, http.StatusBadGateway, err)
		return
	}
	d.render(w, r, http.StatusOK, "queues", "Queues", qs)
}

// listing is a page of jobs.
type listing struct {
	Queue    queue.QueueInfo
	Set      queue.Set
	SetTitle string
	Kind     string
	Jobs     []*jobtype.Job
	Page     int
	HasNext  bool
	// Scanned and From describe a filtered listing: jobs looked at, and
	// where the next page starts.
	Scanned, From, Next int
	Filtered            bool
}

func (d *Dashboard) queue(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("queue")
	qs, err := d.client.Queues(ctx)
	if err != nil {
		d.fail(w, r, http.StatusBadGateway, err)
		return
	}
	i := slices.IndexFunc(qs, func(q queue.QueueInfo) bool { return q.Name == name })
	if i < 0 {
		d.fail(w, r, http.StatusNotFound, fmt.Errorf("no queue %q", name))
		return
	}
	l := listing{Queue: qs[i], Page: pageNum(r)}
	n := d.opts.PageSize
	jobs, err := d.client.QueueJobs(ctx, name, (l.Page-1)*n, n+1)
	if err != nil {
		d.fail(w, r, http.StatusBadGateway, err)
		return
	}
	l.Jobs, l.HasNext = cut(jobs, n)
	d.render(w, r, http.StatusOK, "queue", "Queue "+name, l)
}

var setTitles = map[queue.Set]string{queue.SetScheduled: "Scheduled", queue.SetRetry: "Retries", queue.SetDead: "Dead"}

// maxScan caps the jobs one filtered page looks at, so a filter that
// matches little stays fast on a huge set; the page then links on from
// where it stopped.
const maxScan = 5000

func (d *Dashboard) set(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	set := queue.Set(r.PathValue("set"))
	title, ok := setTitles[set]
	if !ok {
		d.fail(w, r, http.StatusNotFound, fmt.Errorf("no set %q", set))
		return
	}
	n := d.opts.PageSize
	l := listing{Set: set, SetTitle: title, Kind: r.URL.Query().Get("kind"), Page: pageNum(r)}
	if l.Kind == "" {
		jobs, err := d.client.SetJobs(ctx, set, (l.Page-1)*n, n+1)
		if err != nil {
			d.fail(w, r, http.StatusBadGateway, err)
			return
		}
		l.Jobs, l.HasNext = cut(jobs, n)
		d.render(w, r, http.StatusOK, "set", title, l)
		return
	}
	// Filtered by kind: scan forward from ?from= in chunks.
	l.Filtered = true
	l.From, _ = strconv.Atoi(r.URL.Query().Get("from"))
	l.From = max(l.From, 0)
	at := l.From
	for len(l.Jobs) < n && l.Scanned < maxScan {
		chunk, err := d.client.SetJobs(ctx, set, at, 500)
		if err != nil {
			d.fail(w, r, http.StatusBadGateway, err)
			return
		}
		for i, j := range chunk {
			l.Scanned++
			if j.Kind == l.Kind {
				l.Jobs = append(l.Jobs, j)
				if len(l.Jobs) == n {
					at += i + 1
					l.Next, l.HasNext = at, true
					break
				}
			}
		}
		if l.HasNext {
			break
		}
		at += len(chunk)
		if len(chunk) < 500 {
			break
		}
		if l.Scanned >= maxScan {
			l.Next, l.HasNext = at, true
		}
	}
	d.render(w, r, http.StatusOK, "set", title, l)
}

func cut(jobs []*jobtype.Job, n int) ([]*jobtype.Job, bool) {
	if len(jobs) > n {
		return jobs[:n], true
	}
	return jobs, false
}

func (d *Dashboard) job(w http.ResponseWriter, r *http.Request) {
	info, err := d.client.Job(r.Context(), r.PathValue("id"))
	if errors.Is(err, queue.ErrNotFound) {
		d.fail(w, r, http.StatusNotFound, fmt.Errorf("job %s not found: it finished and was forgotten, or was deleted", r.PathValue("id")))
		return
	}
	if err != nil {
		d.fail(w, r, http.StatusBadGateway, err)
		return
	}
	d.render(w, r, http.StatusOK, "job", "Job "+r.PathValue("id"), struct {
		ID   string
		Info *queue.JobInfo
	}{r.PathValue("id"), info})
}

// Changes.

func (d *Dashboard) cancel(ctx context.Context, r *http.Request) error {
	_, err := d.client.Cancel(ctx, r.PathValue("id"))
	return err
}

func (d *Dashboard) pause(ctx context.Context, r *http.Request) error {
	return d.client.PauseQueue(ctx, r.PathValue("queue"))
}

func (d *Dashboard) resume(ctx context.Context, r *http.Request) error {
	return d.client.ResumeQueue(ctx, r.PathValue("queue"))
}

func (d *Dashboard) deleteQueued(ctx context.Context, r *http.Request) error {
	return d.client.DeleteQueued(ctx, r.PathValue("queue"), r.PathValue("id"))
}

func (d *Dashboard) setAction(ctx context.Context, r *http.Request) error {
	return d.apply(ctx, queue.Set(r.PathValue("set")), r.PathValue("action"), r.PathValue("id"))
}

func (d *Dashboard) apply(ctx context.Context, set queue.Set, action, id string) error {
	if _, ok := setTitles[set]; !ok {
		return fmt.Errorf("no set %q", set)
	}
	switch action {
	case "retry":
		return d.client.RunNow(ctx, set, id)
	case "delete":
		return d.client.Delete(ctx, set, id)
	case "kill":
		return d.client.Kill(ctx, set, id)
	}
	return fmt.Errorf("unknown action %q", action)
}

// bulk applies an action to the jobs checked on a page; jobs that moved
// meanwhile are skipped.
func (d *Dashboard) bulk(ctx context.Context, r *http.Request) error {
	set, action := queue.Set(r.PathValue("set")), r.PostFormValue("action")
	if action != "retry" && action != "delete" {
		return fmt.Errorf("unknown bulk action %q", action)
	}
	var errs []error
	for _, id := range r.PostForm["jid"] {
		if err := d.apply(ctx, set, action, id); err != nil && !errors.Is(err, queue.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
