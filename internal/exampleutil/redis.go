// Package exampleutil holds what the example programs share: a Redis (the
// one at REDIS_URL when it is set, else an embedded miniredis, so examples
// run on a machine with nothing installed), event waiting, the
// exactly-once tally and worker child processes (also used by
// bench/throughput).
package exampleutil

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/redact"
)

// Connect returns a client, a line describing where it points, and a
// function that closes what Connect opened. The line and the errors show
// REDIS_URL without its password.
func Connect(ctx context.Context) (redis.UniversalClient, string, func(), error) {
	if url := os.Getenv("REDIS_URL"); url != "" {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, "", nil, fmt.Errorf("REDIS_URL %s: %w", redact.URL(url), redact.Error(err, url))
		}
		c := redis.NewClient(opts)
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := c.Ping(pctx).Err(); err != nil {
			_ = c.Close()
			return nil, "", nil, fmt.Errorf("redis at %s (REDIS_URL): %w", redact.URL(url), redact.Error(err, url))
		}
		return c, "Redis at " + redact.URL(url), func() { _ = c.Close() }, nil
	}
	m, err := miniredis.Run()
	if err != nil {
		return nil, "", nil, fmt.Errorf("start embedded redis: %w", err)
	}
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	return c, "embedded Redis (miniredis; set REDIS_URL to use a real one)", func() { _ = c.Close(); m.Close() }, nil
}
