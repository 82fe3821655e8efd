package main

import (
	"log/slog"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/browsertest"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/shutdown"
)

// The running-tasks panel, in a real browser: a started task appears and its
// bar advances live until it succeeds; a failing task shows its error; a
// task deleted through the API (as from the dashboard) leaves the panel of
// every open page; a page opened later shows the tasks as they are; and no
// page raises a console error.
func TestPanelFollowsTasksLiveInABrowser(t *testing.T) {
	r := testutil.RealRedis(t)
	b := browsertest.New(t)
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	sd, err := shutdown.New(shutdown.Config{})
	require.NoError(t, err)
	srv, err := newServer(ctx, r.Client, r.Namespace, sd, log, 40*time.Millisecond)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.stop(t.Context()) })
	web := httptest.NewServer(srv.handler)
	t.Cleanup(web.Close)

	tab := b.Tab()
	tab.Do(chromedp.Navigate(web.URL + "/"))
	tab.WaitJS(10*time.Second, `document.getElementById("conn").textContent.includes("live")`, "the event stream to connect")

	// Start an import by clicking, and watch its bar move.
	tab.Do(chromedp.Click(`button[data-kind="import"]`))
	tab.WaitJS(10*time.Second, `document.querySelector(".task.running")`, "the import to show as running")
	tab.WaitJS(10*time.Second, `+document.querySelector(".task").dataset.percent > 0`, "the bar to move")
	first := browsertest.Eval[float64](tab, `+document.querySelector(".task").dataset.percent`)
	tab.WaitJS(10*time.Second, `+document.querySelector(".task").dataset.percent > `+ftoa(first), "the bar to advance")
	tab.Screenshot("running")
	tab.WaitJS(20*time.Second, `document.querySelector(".task").dataset.state === "succeeded"`, "the import to succeed")
	require.Equal(t, "100", browsertest.Eval[string](tab, `document.querySelector(".task").dataset.percent`))

	// A failing provisioning shows its error.
	tab.Do(chromedp.Click(`button[data-kind="broken"]`))
	tab.WaitJS(20*time.Second, `document.querySelectorAll(".task.failed").length === 1`, "the broken task to fail")
	msg := browsertest.Eval[string](tab, `document.querySelector(".task.failed .error").textContent`)
	require.Contains(t, msg, "step 12 of 30 failed")
	tab.Screenshot("failed")

	// A second page opened now shows both tasks as they are.
	other := b.Tab()
	other.Do(chromedp.Navigate(web.URL + "/"))
	other.WaitJS(10*time.Second, `document.querySelectorAll(".task").length === 2`, "the second page to show both tasks")
	require.Equal(t, "succeeded", browsertest.Eval[string](other, `document.querySelector(".task").dataset.state`))

	// Delete the failed task through the API: it leaves both pages.
	var failed string
	srv.app.mu.Lock()
	ids := append([]string(nil), srv.app.tasks...)
	srv.app.mu.Unlock()
	for _, id := range ids {
		if info, err := srv.client.Job(ctx, id); err == nil && info.State == "dead" {
			failed = id
		}
	}
	require.NotEmpty(t, failed, "the failed task is in the dead set")
	require.NoError(t, srv.client.Delete(ctx, queue.SetDead, failed))
	for _, p := range []*browsertest.Tab{tab, other} {
		p.WaitJS(10*time.Second, `!document.querySelector('.task[data-id="`+failed+`"]')`, "the deleted task to leave the panel")
		require.Equal(t, 1, browsertest.Eval[int](p, `document.querySelectorAll(".task").length`))
		p.RequireNoErrors()
	}
	tab.Screenshot("after-delete")
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
