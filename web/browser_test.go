package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/browsertest"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
	"github.com/iterjob/iterjob/web"
)

type walkArgs struct {
	Rows int64  `json:"rows"`
	Note string `json:"note,omitempty"`
}

// walk iterates Rows rows, a few milliseconds each, recording how its runs
// stopped; runs of a job whose id is in failOnce fail once.
type walk struct {
	mu       sync.Mutex
	stops    map[string][]iterable.StopReason
	done     map[string]bool
	failOnce map[int64]bool // rows count -> fail the first run
}

func (w *walk) BuildEnumerator(_ context.Context, a walkArgs, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(0, a.Rows, c), nil
}

func (w *walk) EachIteration(ctx context.Context, a walkArgs, row int64) error {
	w.mu.Lock()
	fail := w.failOnce[a.Rows]
	if fail {
		delete(w.failOnce, a.Rows)
	}
	w.mu.Unlock()
	if fail {
		return fmt.Errorf("row %d: <b>bad</b> data", row)
	}
	select {
	case <-time.After(4 * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *walk) OnStop(ctx context.Context, a walkArgs, r iterable.StopReason) error {
	info, _ := iterable.InfoFromContext(ctx)
	w.mu.Lock()
	w.stops[info.JobID] = append(w.stops[info.JobID], r)
	w.mu.Unlock()
	return nil
}

func (w *walk) OnComplete(ctx context.Context, _ walkArgs) error {
	w.mu.Lock()
	info, _ := iterable.InfoFromContext(ctx)
	w.done[info.JobID] = true
	w.mu.Unlock()
	return nil
}

func (w *walk) stopped(id string, r iterable.StopReason) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.stops[id] {
		if s == r {
			return true
		}
	}
	return false
}

func (w *walk) completed(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.done[id]
}

type fixture struct {
	// beforeEvents, if set, runs when a page connects to /events, before
	// the dashboard handles the connection.
	beforeEvents atomic.Pointer[func()]
	client       *queue.Client
	job          *walk
	url          string // the dashboard's root, mounted under /admin/jobs
	token        string // the app's secret for Auth
}

func start(t *testing.T, r testutil.Redis, opts web.Options) *fixture {
	t.Helper()
	ctx := t.Context()
	store, err := cursor.NewRedisStore(r.Client, cursor.RedisConfig{Namespace: r.Namespace})
	require.NoError(t, err)
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet, PublishEvents: true, JobData: store})
	require.NoError(t, err)
	job := &walk{stops: map[string][]iterable.StopReason{}, done: map[string]bool{}, failOnce: map[int64]bool{}}
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, "walk", job, nil)
	run, err := runner.New(runner.Config{
		Redis: r.Client, Registry: reg, Namespace: r.Namespace, Logger: quiet, Store: store,
		Concurrency: 4, PublishEvents: true, CheckpointInterval: 100 * time.Millisecond,
		PollInterval: 100 * time.Millisecond, CancelCheckInterval: 50 * time.Millisecond,
		HeartbeatInterval: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, run.Start(ctx))
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = run.Stop(sctx)
	})
	f := &fixture{client: client, job: job, token: "s3cret"}
	if opts.Auth == nil {
		opts.Auth = func(r *http.Request) bool {
			c, err := r.Cookie("app_session")
			return err == nil && c.Value == f.token
		}
	}
	opts.Logger = quiet
	dash, err := web.New(client, opts)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/admin/jobs/", http.StripPrefix("/admin/jobs", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fn := f.beforeEvents.Load(); fn != nil && r.URL.Path == "/events" {
			(*fn)()
		}
		dash.ServeHTTP(w, r)
	})))
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) { // the app's sign-in
		http.SetCookie(w, &http.Cookie{Name: "app_session", Value: f.token, Path: "/"})
		http.Redirect(w, r, "/admin/jobs/", http.StatusSeeOther)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.url = srv.URL + "/admin/jobs"
	return f
}

// login opens a tab signed in to the app.
func (f *fixture) login(t *testing.T, b *browsertest.Browser) *browsertest.Tab {
	tab := b.Tab()
	tab.Do(chromedp.Navigate(strings.TrimSuffix(f.url, "/admin/jobs") + "/login"))
	tab.WaitJS(10*time.Second, `document.body && document.body.dataset.page === "overview"`, "the overview after signing in")
	return tab
}

func (f *fixture) enqueue(t *testing.T, args walkArgs, opts *queue.EnqueueOpts) string {
	t.Helper()
	res, err := f.client.Enqueue(t.Context(), "walk", args, opts)
	require.NoError(t, err)
	return res.Job.ID
}

// The dashboard in a real browser, against real Redis and a running runner.
func TestDashboardInABrowser(t *testing.T) {
	r := testutil.RealRedis(t)
	b := browsertest.New(t)
	f := start(t, r, web.Options{})
	ctx := t.Context()
	tab := f.login(t, b)
	allow := `window.confirm = () => true`

	// Every page loads without console errors.
	long := f.enqueue(t, walkArgs{Rows: 100000}, nil)
	f.enqueue(t, walkArgs{Rows: 50}, &queue.EnqueueOpts{In: time.Hour})
	for _, p := range []string{"/", "/queues", "/queues/default", "/sets/scheduled", "/sets/retry", "/sets/dead", "/jobs/" + long} {
		tab.Do(chromedp.Navigate(f.url + p))
		tab.WaitJS(10*time.Second, `document.querySelector("h1")`, "page "+p)
		tab.Screenshot("page" + strings.ReplaceAll(p, "/", "_"))
	}

	// A progress bar advances while the job iterates.
	tab.Do(chromedp.Navigate(f.url + "/busy"))
	sel := `document.querySelector('tr[data-jid="` + long + `"] .bar')`
	tab.WaitJS(15*time.Second, sel+` && +`+sel+`.dataset.fraction > 0`, "the long job's bar to show progress")
	first := browsertest.Eval[float64](tab, `+`+sel+`.dataset.fraction`)
	tab.WaitJS(15*time.Second, `+`+sel+`.dataset.fraction > `+fmt.Sprint(first), "the bar to advance without a reload")
	require.Equal(t, "live", browsertest.Eval[string](tab, `document.getElementById("live").classList.contains("on") ? "live" : "off"`))
	tab.Screenshot("busy")

	// The cancel button stops the job: OnStop(cancelled).
	tab.Do(chromedp.Evaluate[chromedp.Void](allow), chromedp.Click(`tr[data-jid="`+long+`"] button[name="cancel"]`))
	testutil.Eventually(t, 15*time.Second, func() bool { return f.job.stopped(long, iterable.Cancelled) }, "the cancelled job's OnStop(cancelled)")

	// Retry from the dead set runs the job.
	f.job.mu.Lock()
	f.job.failOnce[60] = true
	f.job.mu.Unlock()
	dead := f.enqueue(t, walkArgs{Rows: 60}, &queue.EnqueueOpts{MaxAttempts: 1})
	testutil.Eventually(t, 15*time.Second, func() bool {
		info, err := f.client.Job(ctx, dead)
		return err == nil && info.State == "dead"
	}, "the job to die")
	tab.Do(chromedp.Navigate(f.url + "/sets/dead"))
	tab.WaitJS(10*time.Second, `document.querySelector('tr[data-jid="`+dead+`"]')`, "the dead job to be listed")
	require.Contains(t, browsertest.Eval[string](tab, `document.querySelector('tr[data-jid="`+dead+`"] .err').textContent`), "<b>bad</b> data", "the error is shown as text")
	tab.Screenshot("dead")
	tab.Do(chromedp.Click(`tr[data-jid="` + dead + `"] button[name="retry"]`))
	testutil.Eventually(t, 15*time.Second, func() bool { return f.job.completed(dead) }, "the retried job to run to completion")

	// Delete removes the row live on a second open page.
	doomed := f.enqueue(t, walkArgs{Rows: 10}, &queue.EnqueueOpts{In: time.Hour})
	other := f.login(t, b)
	for _, p := range []*browsertest.Tab{tab, other} {
		p.Do(chromedp.Navigate(f.url + "/sets/scheduled"))
		p.WaitJS(10*time.Second, `document.querySelector('tr[data-jid="`+doomed+`"]') && document.getElementById("live").classList.contains("on")`, "the scheduled job listed, live")
	}
	tab.Do(chromedp.Click(`tr[data-jid="` + doomed + `"] button[name="delete"]`))
	other.WaitJS(10*time.Second, `!document.querySelector('tr[data-jid="`+doomed+`"]')`, "the deleted job's row to leave the other page")
	_, err := f.client.Job(ctx, doomed)
	require.ErrorIs(t, err, queue.ErrNotFound)

	// A job whose args hold a script is shown as text, and the script never
	// runs.
	require.NoError(t, f.client.PauseQueue(ctx, "held"))
	xss := f.enqueue(t, walkArgs{Rows: 1, Note: `<script>window.pwned=1</script><img src=x onerror="window.pwned=2">`}, &queue.EnqueueOpts{Queue: "held"})
	for _, p := range []string{"/queues/held", "/jobs/" + xss} {
		tab.Do(chromedp.Navigate(f.url + p))
		tab.WaitJS(10*time.Second, `document.querySelector("h1")`, p)
		require.Contains(t, browsertest.Eval[string](tab, `document.querySelector("main").textContent`), `<script>window.pwned=1</script>`)
		require.Equal(t, "undefined", browsertest.Eval[string](tab, `typeof window.pwned`))
	}
	tab.Screenshot("job-with-script-args")

	tab.RequireNoErrors()
	other.RequireNoErrors()
}

// A job deleted after a page read its list but before the page connected to
// the events stream still leaves the page: the page follows events from a
// position taken before it read.
func TestDashboardPageMissesNoEventBeforeItConnects(t *testing.T) {
	r := testutil.RealRedis(t)
	b := browsertest.New(t)
	f := start(t, r, web.Options{})
	tab := f.login(t, b)
	doomed := f.enqueue(t, walkArgs{Rows: 10}, &queue.EnqueueOpts{In: time.Hour})
	var once sync.Once
	deleted := make(chan struct{})
	hook := func() {
		once.Do(func() {
			defer close(deleted)
			if err := f.client.Delete(context.Background(), queue.SetScheduled, doomed); err != nil {
				t.Errorf("delete: %v", err)
			}
		})
	}
	f.beforeEvents.Store(&hook)
	tab.Do(chromedp.Navigate(f.url + "/sets/scheduled"))
	select {
	case <-deleted:
	case <-time.After(15 * time.Second):
		t.Fatal("the page never connected to /events")
	}
	tab.WaitJS(10*time.Second, `!document.querySelector('tr[data-jid="`+doomed+`"]')`, "the row of the job deleted before the page connected to leave the page")
	tab.RequireNoErrors()
}

// Without the app's authentication every route answers 401; a change
// without the CSRF token is refused; read-only mode hides and refuses
// changes.
func TestDashboardGuardsEveryRoute(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		f := start(t, r, web.Options{})
		id := f.enqueue(t, walkArgs{Rows: 5}, &queue.EnqueueOpts{In: time.Hour})
		get := func(c *http.Client, path string, cookie string) *http.Response {
			req, _ := http.NewRequest("GET", f.url+path, nil)
			if cookie != "" {
				req.Header.Set("Cookie", cookie)
			}
			res, err := c.Do(req)
			require.NoError(t, err)
			res.Body.Close()
			return res
		}
		for _, p := range []string{"/", "/busy", "/queues", "/sets/dead", "/jobs/" + id, "/events", "/assets/app.js"} {
			require.Equal(t, http.StatusUnauthorized, get(http.DefaultClient, p, "").StatusCode, p)
		}
		res, err := http.PostForm(f.url+"/sets/scheduled/jobs/"+id+"/delete", url.Values{"csrf": {"x"}})
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)

		// Signed in, but without the CSRF cookie and field.
		post := func(form url.Values, cookie string) int {
			req, _ := http.NewRequest("POST", f.url+"/sets/scheduled/jobs/"+id+"/delete", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Cookie", cookie)
			res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			require.NoError(t, err)
			res.Body.Close()
			return res.StatusCode
		}
		session := "app_session=" + f.token
		require.Equal(t, http.StatusForbidden, post(url.Values{}, session))
		require.Equal(t, http.StatusForbidden, post(url.Values{"csrf": {strings.Repeat("a", 32)}}, session+"; iterjob_csrf="+strings.Repeat("b", 32)))
		_, err = f.client.Job(t.Context(), id)
		require.NoError(t, err, "the job is still there")
		require.Equal(t, http.StatusSeeOther, post(url.Values{"csrf": {strings.Repeat("a", 32)}}, session+"; iterjob_csrf="+strings.Repeat("a", 32)))
		_, err = f.client.Job(t.Context(), id)
		require.ErrorIs(t, err, queue.ErrNotFound, "with the token, the delete went through")
	})
}

func TestDashboardReadOnly(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	f := start(t, r, web.Options{ReadOnly: true, Auth: func(*http.Request) bool { return true }})
	id := f.enqueue(t, walkArgs{Rows: 5}, &queue.EnqueueOpts{In: time.Hour})
	res, err := http.Get(f.url + "/sets/scheduled")
	require.NoError(t, err)
	var b strings.Builder
	_, _ = fmt.Fprint(&b, readAll(t, res))
	require.Contains(t, b.String(), id)
	for _, change := range []string{"formaction", "Delete", "Retry now", "Kill", `name="cancel"`} {
		require.NotContains(t, b.String(), change, "no buttons that change anything in read-only mode")
	}
	require.Contains(t, b.String(), "read-only")
	req, _ := http.NewRequest("POST", f.url+"/sets/scheduled/jobs/"+id+"/delete", strings.NewReader("csrf="+strings.Repeat("a", 32)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", "iterjob_csrf="+strings.Repeat("a", 32))
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	_, err = f.client.Job(t.Context(), id)
	require.NoError(t, err)
}
