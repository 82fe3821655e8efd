package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterAddrsDefault is the local test cluster that .ci/cluster-up starts,
// used when TEST_REDIS_CLUSTER is unset.
const ClusterAddrsDefault = "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"

// ClusterAddrs is TEST_REDIS_CLUSTER (comma-separated host:port seeds) or
// its default.
func ClusterAddrs() []string {
	s := os.Getenv("TEST_REDIS_CLUSTER")
	if s == "" {
		s = ClusterAddrsDefault
	}
	return strings.Split(s, ",")
}

var clusterStart struct {
	once sync.Once
	err  error
}

// startLocalCluster runs .ci/cluster-up once per test binary, for the
// default addresses only (a cluster named in TEST_REDIS_CLUSTER is the
// caller's to start).
func startLocalCluster() error {
	clusterStart.once.Do(func() {
		if os.Getenv("TEST_REDIS_CLUSTER") != "" {
			clusterStart.err = fmt.Errorf("TEST_REDIS_CLUSTER is set: not starting a local cluster")
			return
		}
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			clusterStart.err = fmt.Errorf("cannot locate .ci/cluster-up")
			return
		}
		script := filepath.Join(filepath.Dir(file), "..", "..", ".ci", "cluster-up")
		if _, err := exec.LookPath("redis-server"); err != nil {
			clusterStart.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, script).CombinedOutput()
		if err != nil {
			clusterStart.err = fmt.Errorf("%s: %v: %s", script, err, strings.TrimSpace(string(out)))
		}
	})
	return clusterStart.err
}

func pingCluster(c *redis.ClusterClient) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return c.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error {
		return n.Ping(ctx).Err()
	})
}

// Cluster returns a client on the local Redis Cluster (TEST_REDIS_CLUSTER,
// default 127.0.0.1:7000-7002), starting it with .ci/cluster-up when it
// does not answer. While t runs it watches the primaries (MONITOR), and
// fails t if a script touched a key of t's namespace its call did not pass
// in KEYS. It skips (fails under CI) when no cluster can be had.
// Keys live under a namespace unique to t and are deleted when t ends.
func Cluster(t testing.TB) Redis {
	t.Helper()
	addrs := ClusterAddrs()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	err := pingCluster(c)
	if err != nil {
		if startErr := startLocalCluster(); startErr == nil {
			_ = c.Close()
			c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
			err = pingCluster(c)
		} else {
			err = fmt.Errorf("%v; starting one: %v", err, startErr)
		}
	}
	if err != nil {
		_ = c.Close()
		unreachable(t, "Redis Cluster", strings.Join(addrs, ","), err, ".ci/cluster-up", "TEST_REDIS_CLUSTER")
	}
	ns := Unique("t")
	audit := startKeyAudit(t, c, ns)
	t.Cleanup(func() {
		ctx := context.Background()
		if bad := audit.check(ctx, c); len(bad) > 0 {
			t.Errorf("testutil: scripts touched keys they were not given in KEYS (Redis Cluster needs every key in KEYS):\n%s", strings.Join(bad, "\n"))
		}
		DeleteNamespace(ctx, c, ns)
		_ = c.Close()
	})
	return Redis{Name: "cluster", Client: c, Namespace: ns}
}
