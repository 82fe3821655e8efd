package exampleutil

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// EachServer calls fn for each Redis server c reaches: each primary of a
// cluster, or the one server of a plain client; one call at a time, so fn
// may add to shared totals without a lock.
func EachServer(ctx context.Context, c redis.UniversalClient, fn func(ctx context.Context, server *redis.Client) error) error {
	switch c := c.(type) {
	case *redis.ClusterClient:
		var mu sync.Mutex
		return c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			return fn(ctx, n)
		})
	case *redis.Client:
		return fn(ctx, c)
	default:
		return fmt.Errorf("exampleutil: a %T is neither a *redis.Client nor a *redis.ClusterClient", c)
	}
}

// InfoValue returns the value of field key in the text of an INFO reply,
// or "".
func InfoValue(info, key string) string {
	for line := range strings.Lines(info) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == key {
			return v
		}
	}
	return ""
}
