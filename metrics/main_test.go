package metrics_test

import (
	"log/slog"
	"testing"

	"go.uber.org/goleak"
)

// Runners and Follow own goroutines; every test stops what it starts.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
		goleak.IgnoreAnyFunction("github.com/alicebob/miniredis/v2/server.(*Server).servePeer"),
	)
}

var quiet = slog.New(slog.DiscardHandler)
