package web_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/web"
)

// The overview lists the periodic schedules with their next run.
func TestOverviewListsPeriodicJobs(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	f := start(t, r, web.Options{Auth: func(*http.Request) bool { return true }})
	require.NoError(t, f.client.AddPeriodic(t.Context(), queue.PeriodicJob{Name: "nightly-report", Spec: "0 3 * * *", Kind: "walk", Args: walkArgs{Rows: 1}}))
	res, err := http.Get(f.url + "/")
	require.NoError(t, err)
	body := readAll(t, res)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, body, `data-periodic="nightly-report"`)
	require.Contains(t, body, "0 3 * * *")
}
