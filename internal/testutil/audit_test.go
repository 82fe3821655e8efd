package testutil

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestSplitMonitorArgs(t *testing.T) {
	t.Parallel()
	args, ok := splitMonitorArgs(` "evalsha" "ab" "1" "{ns}:a\"b" "x\\y" "\x00\xff" "l1\nl2"`)
	require.True(t, ok)
	require.Equal(t, []string{"evalsha", "ab", "1", `{ns}:a"b`, `x\y`, "\x00\xff", "l1\nl2"}, args)
	_, ok = splitMonitorArgs(` "unterminated`)
	require.False(t, ok)
}

// The audit reports a script that touches a key of the namespace it was
// not given, and nothing for one that touches only its KEYS: the check the
// cluster tests rely on can fail.
func TestKeyAuditCatchesUndeclaredKeys(t *testing.T) {
	t.Parallel()
	r := Cluster(t)
	c := r.Client.(*redis.ClusterClient)
	ctx := context.Background()
	ns := Unique("audit")
	a := startKeyAudit(t, c, ns)
	declared, hidden := "{"+ns+"}:declared", "{"+ns+"}:hidden"
	t.Cleanup(func() { DeleteNamespace(ctx, c, ns) })
	good := redis.NewScript(`redis.call('SET', KEYS[1], '1') return redis.call('TIME')[1]`)
	bad := redis.NewScript(`redis.call('SET', KEYS[1], '1') redis.call('SET', ARGV[1], '2') return 1`)
	require.NoError(t, good.Run(ctx, c, []string{declared}).Err())
	require.NoError(t, bad.Run(ctx, c, []string{declared}, hidden).Err())
	require.Equal(t, []string{`SET touches "` + hidden + `", not in its KEYS`}, a.check(ctx, c))
}
