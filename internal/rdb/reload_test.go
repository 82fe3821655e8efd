package rdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// The errors a call to a dead primary or a cluster without a primary for a
// slot returns make the client reload the layout; a missing key, a script
// error or a cancelled call do not.
func TestFailoverError(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{io.EOF, true},
		{errors.New("CLUSTERDOWN The cluster is down"), true},
		{redis.Nil, false},
		{errors.New("ERR Error running script"), false},
		{context.Canceled, false},
		{fmt.Errorf("fetch: %w", context.DeadlineExceeded), false},
	} {
		require.Equal(t, c.want, failoverError(c.err), "%v", c.err)
	}
}

// Many DBs on one cluster client add one hook to it.
func TestFollowFailoversHooksAClientOnce(t *testing.T) {
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer c.Close()
	New(c, "a")
	New(c, "b")
	n := 0
	withReload.Range(func(k, _ any) bool {
		if k.(interface{ Value() *redis.ClusterClient }).Value() == c {
			n++
		}
		return true
	})
	require.Equal(t, 1, n)
}
