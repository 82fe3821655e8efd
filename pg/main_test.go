package pg_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/queue"
)

// binDir holds the worker program the crash tests build (once, on first
// use).
var (
	binDir   string
	buildErr error
	building sync.Once
	worker   string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "pg:", err)
		os.Exit(1)
	}
	binDir = dir
	goleak.VerifyTestMain(m,
		// go-redis keeps a pool reaper per client; clients are closed by
		// t.Cleanup, after goleak's check for the package would run.
		goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
		goleak.Cleanup(func(int) { _ = os.RemoveAll(dir) }),
	)
}

// workerBin builds the crash tests' worker program with the race detector,
// once.
func workerBin(t *testing.T) string {
	t.Helper()
	building.Do(func() {
		worker = filepath.Join(binDir, "worker")
		args := []string{"build", "-race", "-o", worker, "github.com/iterjob/iterjob/pg/internal/pgtest/worker"}
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	require.NoError(t, buildErr)
	return worker
}

// quiet is the tests' logger: their logs are noise unless a test fails.
var quiet = slog.New(slog.DiscardHandler)

// bundle is what a test works with: a pool on a schema of its own holding
// the migrated tables, a Redis namespace, and a queue client that keeps
// staged ids.
type bundle struct {
	pool   *pgxpool.Pool
	schema string
	redis  testutil.Redis
	client *queue.Client
}

// setup migrates the test's schema and returns the bundle; r is the Redis
// to use.
func setup(t testing.TB, r testutil.Redis) *bundle {
	t.Helper()
	ctx := context.Background()
	pool := testutil.Postgres(t)
	var schema string
	require.NoError(t, pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema))
	_, err := pg.Migrate(ctx, pool, &pg.MigrateOpts{Schema: schema, Logger: quiet})
	require.NoError(t, err)
	client, err := queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
	require.NoError(t, err)
	return &bundle{pool: pool, schema: schema, redis: r, client: client}
}

// drainer starts a drainer on the bundle, stopped when the test ends.
func (b *bundle) drainer(t testing.TB, cfg pg.DrainerConfig) *pg.Drainer {
	t.Helper()
	cfg.DB, cfg.Schema = b.pool, b.schema
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	if cfg.Client == nil {
		cfg.Client = b.client
	}
	d, err := pg.NewDrainer(cfg)
	require.NoError(t, err)
	require.NoError(t, d.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, d.Stop(ctx))
	})
	return d
}

// outboxLen counts the rows left in the outbox.
func (b *bundle) outboxLen(t testing.TB) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox").Scan(&n))
	return n
}

// queued returns how many times each job id is in queue q.
func (b *bundle) queued(t testing.TB, q string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for off := 0; ; off += 1000 {
		jobs, err := b.client.QueueJobs(context.Background(), q, off, 1000)
		require.NoError(t, err)
		for _, j := range jobs {
			out[j.ID]++
		}
		if len(jobs) < 1000 {
			return out
		}
	}
}
