package cli

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/jobtype"
)

func TestHuman(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                                     "0s",
		850 * time.Millisecond:                "850ms",
		12*time.Second + 400*time.Millisecond: "12s",
		59*time.Second + 600*time.Millisecond: "1m",
		3*time.Minute + 10*time.Second:        "3m10s",
		2*time.Hour + 5*time.Minute + 20*time.Second: "2h5m",
		2 * time.Hour:  "2h0m",
		75 * time.Hour: "3d3h",
	} {
		require.Equal(t, want, human(d), "%v", d)
	}
}

func TestProgressLineAndBar(t *testing.T) {
	t.Parallel()
	p := &jobtype.Progress{Done: 4500, Total: 10000, Fraction: 0.45, ETA: 6 * time.Second}
	require.Equal(t, "4500/10000 items (45.0%), ETA 6s", progressLine(p))
	p = &jobtype.Progress{Done: 300, Total: -1, Fraction: -1, Unit: "rows"}
	require.Equal(t, "300 rows", progressLine(p))
	require.Equal(t, "[###########.............]", bar(0.45))
	require.Equal(t, "["+repeat('#', 24)+"]", bar(1))
	require.Equal(t, "["+repeat('?', 24)+"]", bar(-1))
}

func repeat(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
