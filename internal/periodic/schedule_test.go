package periodic_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/periodic"
)

// Latest finds the latest tick at or before now as walking every tick from
// the first would, for dense, sparse and interval schedules and gaps from
// none to years.
func TestLatestMatchesWalkingEveryTick(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	specs := []struct {
		spec, tz string
		maxGap   time.Duration // keeps the walk below short
	}{
		{"*/10 * * * * *", "", 6 * time.Hour},
		{"*/5 * * * *", "", 10 * day},
		{"0 9 * * 1-5", "Europe/Paris", 400 * day},
		{"30 2 * * *", "America/New_York", 400 * day}, // skipped and repeated on DST days
		{"0 0 29 2 *", "", 3 * 365 * day},             // leap days only
		{"@hourly", "", 60 * day},
		{"@every 7s", "", 6 * time.Hour},
		{"@every 25h", "", 400 * day},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, sp := range specs {
		s, err := periodic.Parse(sp.spec, sp.tz)
		require.NoError(t, err)
		for range 20 {
			first := s.Next(base.Add(time.Duration(rng.Int64N(int64(400 * day)))))
			gaps := []time.Duration{0, time.Second, time.Duration(rng.Int64N(int64(time.Hour))),
				time.Duration(rng.Int64N(int64(sp.maxGap))), sp.maxGap}
			for _, gap := range gaps {
				now := first.Add(gap)
				want := first
				for n := s.Next(want); !n.IsZero() && !n.After(now); n = s.Next(want) {
					want = n
				}
				require.True(t, want.Equal(s.Latest(first, now)), "%s from %s to %s", sp.spec, first, now)
			}
		}
	}
}

// Over a long gap Latest does not walk every tick: a year of ten-second
// ticks (3 million) answers at once.
func TestLatestAfterAYearOfDenseTicks(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"*/10 * * * * *", "@every 10s"} {
		s, err := periodic.Parse(spec, "")
		require.NoError(t, err)
		first := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		now := time.Date(2026, 3, 4, 5, 6, 17, 0, time.UTC)
		require.Equal(t, time.Date(2026, 3, 4, 5, 6, 10, 0, time.UTC), s.Latest(first, now).UTC(), spec)
	}
}

func TestParseRejectsWhatCannotRun(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ spec, tz string }{
		{"", ""},
		{"* * *", ""},
		{"61 * * * *", ""},
		{"@every 500ms", ""},
		{"@every soon", ""},
		{"0 0 30 2 *", ""}, // never fires
		{"CRON_TZ=Europe/Paris 0 9 * * *", ""},
		{"0 9 * * *", "Mars/Olympus_Mons"},
	} {
		_, err := periodic.Parse(c.spec, c.tz)
		require.ErrorIs(t, err, periodic.ErrSpec, "%q in %q", c.spec, c.tz)
	}
}

// Cron fields are read in the schedule's time zone: 9:00 in Paris is 8:00
// UTC in winter and 7:00 in summer.
func TestTimeZone(t *testing.T) {
	t.Parallel()
	s, err := periodic.Parse("0 9 * * *", "Europe/Paris")
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 1, 15, 8, 0, 0, 0, time.UTC), s.Next(time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)).UTC())
	require.Equal(t, time.Date(2026, 7, 15, 7, 0, 0, 0, time.UTC), s.Next(time.Date(2026, 7, 15, 0, 0, 0, 0, time.UTC)).UTC())
}
