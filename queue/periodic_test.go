package queue_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
)

// A schedule that could not run is refused with a clear error, and nothing
// is stored.
func TestAddPeriodicRefusesWhatCannotRun(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
	require.NoError(t, err)
	ok := queue.PeriodicJob{Name: "p", Spec: "@hourly", Kind: "k"}
	for _, c := range []struct {
		mod  func(*queue.PeriodicJob)
		says string
	}{
		{func(p *queue.PeriodicJob) { p.Name = "" }, "name"},
		{func(p *queue.PeriodicJob) { p.Name = "a:b" }, "name"},
		{func(p *queue.PeriodicJob) { p.Name = "a b" }, "name"},
		{func(p *queue.PeriodicJob) { p.Spec = "hourly" }, `"hourly"`},
		{func(p *queue.PeriodicJob) { p.TimeZone = "Nowhere/City" }, "Nowhere/City"},
		{func(p *queue.PeriodicJob) { p.Kind = "" }, "kind"},
		{func(p *queue.PeriodicJob) { p.Queue = "a/b" }, "queue"},
		{func(p *queue.PeriodicJob) { p.Grace = -time.Second }, "negative"},
		{func(p *queue.PeriodicJob) { p.Missed = 7 }, "MissedPolicy"},
		{func(p *queue.PeriodicJob) { p.Args = func() {} }, "args"},
	} {
		p := ok
		c.mod(&p)
		err := client.AddPeriodic(t.Context(), p)
		require.ErrorIs(t, err, queue.ErrInvalidPeriodic)
		require.ErrorContains(t, err, c.says)
	}
	list, err := client.PeriodicJobs(t.Context())
	require.NoError(t, err)
	require.Empty(t, list)
	require.NoError(t, client.AddPeriodic(t.Context(), ok))
}
