// Command iterjob sees and steers iterjob queues and jobs: stats, queues and
// their jobs, one job's progress, retry, delete, kill, cancel, pause and
// resume, live progress bars (watch), a Prometheus exporter (metrics) and
// PostgreSQL migrations (migrate). Run "iterjob help" for the list.
//
// All the logic is in internal/cli; this wrapper wires signals and exits.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/cli"
)

// silent drops go-redis's own log lines (dial retries and the like): the
// command reports each failure once, as an error without credentials.
type silent struct{}

func (silent) Printf(context.Context, string, ...any) {}

func main() {
	redis.SetLogger(silent{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
