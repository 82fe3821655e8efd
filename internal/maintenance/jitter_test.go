package maintenance

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPollJitterSpreadsProcesses(t *testing.T) {
	t.Parallel()
	seen := map[time.Duration]bool{}
	for range 200 {
		d := jitter(time.Second, 0.25)
		require.GreaterOrEqual(t, d, 750*time.Millisecond)
		require.LessOrEqual(t, d, 1250*time.Millisecond)
		seen[d] = true
	}
	require.Greater(t, len(seen), 100, "pollers do not wake in lockstep")
}
