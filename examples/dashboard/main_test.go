package main

import (
	"flag"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/browsertest"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/shutdown"
	"github.com/iterjob/iterjob/web"
)

var update = flag.Bool("update", false, "write the README's screenshot, docs/dashboard-busy.png")

// The example's dashboard, mounted under /jobs/, shows its iterable jobs
// iterating on the busy page: three progress bars that advance.
func TestBusyPageShowsTheJobsIterating(t *testing.T) {
	r := testutil.Miniredis(t)
	b := browsertest.New(t)
	sd, err := shutdown.New(shutdown.Config{})
	require.NoError(t, err)
	d, err := newDemo(t.Context(), r.Client, r.Namespace, sd, slog.New(slog.DiscardHandler), 3*time.Millisecond, web.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.run.Stop(t.Context()) })
	srv := httptest.NewServer(d.handler)
	t.Cleanup(srv.Close)

	tab := b.Tab()
	tab.Do(chromedp.Navigate(srv.URL + "/"))
	tab.WaitJS(10*time.Second, `document.body.dataset.page === "overview"`, "the root to lead to the overview")
	tab.Do(chromedp.Navigate(srv.URL + "/jobs/busy"))
	tab.WaitJS(15*time.Second, `Array.from(document.querySelectorAll("tr.iterable .bar")).filter(b => +b.dataset.fraction > 0.05).length === 3`,
		"three progress bars past 5%")
	path := tab.Screenshot("busy")
	tab.RequireNoErrors()
	if *update {
		png, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join("..", "..", "docs", "dashboard-busy.png"), png, 0o644))
	}
}
