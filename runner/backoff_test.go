package runner

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDefaultBackoffDoublesWithJitterAndCaps(t *testing.T) {
	t.Parallel()
	for attempt, base := range map[int]time.Duration{1: 15 * time.Second, 2: 30 * time.Second, 5: 240 * time.Second, 30: 12 * time.Hour, 1000: 12 * time.Hour} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := DefaultBackoff(attempt)
			require.GreaterOrEqual(t, d, base*3/4, "attempt %d", attempt)
			require.Less(t, d, base*5/4, "attempt %d", attempt)
			seen[d] = true
		}
		require.Greater(t, len(seen), 100, "attempt %d: jobs that failed together do not retry together", attempt)
	}
}
