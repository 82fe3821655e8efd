// Package testutil gives tests their Redis and PostgreSQL.
//
// Tests run on the embedded miniredis and on a real Redis (TEST_REDIS_URL,
// default redis://127.0.0.1:6379/0), on a local Redis Cluster
// (TEST_REDIS_CLUSTER, default 127.0.0.1:7000-7002, started by
// .ci/cluster-up when missing; see Cluster), and on a real PostgreSQL
// (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test). When
// CI=true a real service that cannot be reached fails the test; elsewhere the
// test is skipped with a message saying how to run it.
//
// Each test gets its own Redis namespace or PostgreSQL schema, so tests run
// in parallel without flushing anything.
package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/redact"
)

// RedisURLDefault and DatabaseURLDefault are used when TEST_REDIS_URL and
// TEST_DATABASE_URL are unset.
const (
	RedisURLDefault    = "redis://127.0.0.1:6379/0"
	DatabaseURLDefault = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
)

// InCI reports whether CI=true, where missing services fail tests.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unique returns prefix followed by random hex, for namespaces and schemas.
func Unique(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Redis is one Redis a test runs against.
type Redis struct {
	Name      string // "miniredis" or "redis"
	Client    redis.UniversalClient
	Namespace string               // unique to the test
	Mini      *miniredis.Miniredis // nil for a real Redis
}

// Miniredis starts an embedded Redis for t and returns a client on it.
func Miniredis(t testing.TB) Redis {
	t.Helper()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return Redis{Name: "miniredis", Client: c, Namespace: Unique("t"), Mini: m}
}

// RealRedis returns a client on the real Redis, or skips (fails under CI)
// when it cannot be reached. Keys live under a namespace unique to t and are
// deleted when t ends.
func RealRedis(t testing.TB) Redis {
	t.Helper()
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" {
		url = RedisURLDefault
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("testutil: TEST_REDIS_URL %s: %v", redact.URL(url), redact.Error(err, url))
	}
	c := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		unreachable(t, "Redis", url, err, "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no", "TEST_REDIS_URL")
	}
	ns := Unique("t")
	t.Cleanup(func() {
		DeleteNamespace(context.Background(), c, ns)
		_ = c.Close()
	})
	return Redis{Name: "redis", Client: c, Namespace: ns}
}

// DeleteNamespace removes every key of namespace ns (on every primary of a
// cluster).
func DeleteNamespace(ctx context.Context, c redis.UniversalClient, ns string) {
	if cc, ok := c.(*redis.ClusterClient); ok {
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			deleteNamespace(ctx, n, ns, true)
			return nil
		})
		return
	}
	deleteNamespace(ctx, c, ns, false)
}

// deleteNamespace deletes ns's keys on one server; one key per DEL on a
// cluster node, whose keys span slots.
func deleteNamespace(ctx context.Context, c redis.Cmdable, ns string, perKey bool) {
	iter := c.Scan(ctx, 0, "{"+ns+"[}/]*", 1000).Iterator()
	var keys []string
	flush := func() {
		if perKey {
			pipe := c.Pipeline()
			for _, k := range keys {
				pipe.Del(ctx, k)
			}
			_, _ = pipe.Exec(ctx)
		} else {
			c.Del(ctx, keys...)
		}
		keys = keys[:0]
	}
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 500 {
			flush()
		}
	}
	if len(keys) > 0 {
		flush()
	}
}

// EachRedis runs fn as a parallel subtest on miniredis, on the real Redis
// and on the local Redis Cluster (see Cluster).
func EachRedis(t *testing.T, fn func(t *testing.T, r Redis)) {
	t.Helper()
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		fn(t, Miniredis(t))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		fn(t, RealRedis(t))
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		fn(t, Cluster(t))
	})
}

// Postgres returns a pool on the real PostgreSQL whose connections use a
// schema of their own (search_path), dropped when t ends; it skips (fails
// under CI) when PostgreSQL cannot be reached.
func Postgres(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := DatabaseURL()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		unreachable(t, "PostgreSQL", url, err, "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start", "TEST_DATABASE_URL")
	}
	schema := Unique("t_")
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		_ = admin.Close(ctx)
		t.Fatalf("testutil: create schema: %v", err)
	}
	_ = admin.Close(ctx)

	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("testutil: TEST_DATABASE_URL: %v", redact.Error(err, url))
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("testutil: pool: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, url); err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			_ = c.Close(ctx)
		}
	})
	return pool
}

// DatabaseURL is TEST_DATABASE_URL or its default.
func DatabaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DatabaseURLDefault
}

func unreachable(t testing.TB, what, url string, err error, start, env string) {
	t.Helper()
	msg := fmt.Sprintf("testutil: %s at %s is unreachable (%v). Start it with `%s`, or point %s at one.",
		what, redact.URL(url), redact.Error(err, url), start, env)
	if InCI() {
		t.Fatal(msg + " CI=true: tests that need it fail instead of skipping.")
	}
	t.Skip(msg)
}

// Eventually polls cond every few milliseconds until it is true or timeout
// passes, for state that lives in another process or in Redis where no
// channel can signal it.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("testutil: timed out after %s: %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitFor polls cond every few milliseconds until it holds or timeout passes,
// and reports whether it held; for callers that report the failure
// themselves (Eventually fails the test).
func WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}
