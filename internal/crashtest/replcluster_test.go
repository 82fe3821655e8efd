package crashtest

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
)

// clusterNodeTimeout is the replicated cluster's cluster-node-timeout: a
// primary that stops answering is flagged failing after it, and its replica
// is promoted about a second later.
const clusterNodeTimeout = time.Second

// replCluster is a Redis Cluster of a test's own: three primaries, each with
// one replica, on free loopback ports, persisting nothing. Unlike the shared
// cluster of testutil.Cluster, a test may fail its shards over.
type replCluster struct {
	t     *testing.T
	nodes []*clusterNode
	// c is the test's client, which reloads the slot map every second (a
	// cluster client learns of a promotion from a MOVED reply or a reload;
	// a dead primary sends no MOVED).
	c *redis.ClusterClient
}

// clusterNode is one redis-server of a replCluster.
type clusterNode struct {
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	c    *redis.Client // to this node alone
}

func (n *clusterNode) addr() string { return fmt.Sprintf("127.0.0.1:%d", n.port) }

func (n *clusterNode) alive() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// kill kills the server with SIGKILL and waits for it to exit.
func (n *clusterNode) kill() {
	if n.alive() {
		_ = n.cmd.Process.Kill()
	}
	<-n.done
}

// startReplCluster starts six redis-servers (files in t.TempDir()), makes a
// cluster of them with redis-cli --cluster create --cluster-replicas 1, and
// waits until every node sees the cluster ok and every replica is linked
// to its primary. Every server is killed when t ends, whatever happened. It
// skips the test (fails it under CI) when redis-server or redis-cli is not
// installed.
func startReplCluster(t *testing.T) *replCluster {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			msg := "crashtest: " + bin + " is not on the PATH (apt-get install redis-server); the failover tests need it"
			if testutil.InCI() {
				t.Fatal(msg + "; CI=true: failing instead of skipping")
			}
			t.Skip(msg)
		}
	}
	// Before the cleanup below, so that it is removed after the cleanup has
	// read the servers' logs.
	dir := t.TempDir()
	rc := &replCluster{t: t}
	t.Cleanup(func() {
		if rc.c != nil {
			_ = rc.c.Close()
		}
		for _, n := range rc.nodes {
			_ = n.c.Close()
			n.kill()
		}
		if t.Failed() {
			for _, n := range rc.nodes {
				t.Logf("redis-server on port %d, last log lines:\n%s", n.port, tailFile(filepath.Join(n.dir, "redis.log"), 15))
			}
		}
	})
	for _, port := range freeClusterPorts(t, 6) {
		n := &clusterNode{port: port, dir: filepath.Join(dir, strconv.Itoa(port)), done: make(chan struct{})}
		require.NoError(t, os.Mkdir(n.dir, 0o755))
		n.cmd = exec.Command("redis-server",
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", n.dir,
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(clusterNodeTimeout.Milliseconds(), 10),
			"--save", "", "--appendonly", "no", "--logfile", "redis.log")
		dieWithTest(n.cmd)
		require.NoError(t, n.cmd.Start())
		cmd, done := n.cmd, n.done
		go func() {
			_ = cmd.Wait()
			close(done)
		}()
		n.c = redis.NewClient(&redis.Options{Addr: n.addr(), DialTimeout: time.Second, MaxRetries: -1})
		rc.nodes = append(rc.nodes, n)
	}
	addrs := rc.addrs()
	for _, n := range rc.nodes {
		testutil.Eventually(t, 20*time.Second, func() bool {
			if !n.alive() {
				t.Fatalf("redis-server on port %d exited at start:\n%s", n.port, tailFile(filepath.Join(n.dir, "redis.log"), 20))
			}
			return n.c.Ping(context.Background()).Err() == nil
		}, "redis-server on port %d to answer", n.port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
	require.NoError(t, err, "redis-cli %s:\n%s", strings.Join(args, " "), out)

	testutil.Eventually(t, 30*time.Second, func() bool {
		view, err := rc.view()
		if err != nil || len(view) != 6 {
			return false
		}
		primaries := 0
		for i, v := range view {
			if v.primary && len(v.slots) > 0 {
				primaries++
				if rc.replicaOf(view, &view[i]) == nil {
					return false
				}
			}
		}
		return primaries == 3 && rc.healthy()
	}, "the cluster on ports %v to be ok with a linked replica for each of its 3 primaries", addrs)
	rc.c = redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: addrs, DialTimeout: time.Second, ClusterStateReloadInterval: time.Second,
	})
	// The slots the tests compute must be the server's.
	for _, key := range []string{"{a}:x", "b", "{t0123/q1}:jobs", "{}x", "x{}{y}"} {
		require.Equal(t, int64(keySlot(key)), rc.c.ClusterKeySlot(ctx, key).Val(), "slot of %q", key)
	}
	return rc
}

// freeClusterPorts returns n ports whose cluster bus ports (port+10000) are
// free too, below the kernel's ephemeral range, so that no outgoing
// connection takes one meanwhile.
func freeClusterPorts(t *testing.T, n int) []int {
	t.Helper()
	free := func(p int) bool {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		_ = l.Close()
		return true
	}
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		require.Less(t, tries, 1000, "no free ports for a cluster")
		p := 10000 + rand.IntN(12000)
		if !slices.Contains(ports, p) && free(p) && free(p+10000) {
			ports = append(ports, p)
		}
	}
	return ports
}

// primaries returns the addresses of the primaries as the cluster was
// created: the seeds to give clients. A stopped replica (see killPrimary)
// accepts connections but answers nothing, so a client that asked it for
// the slot map would wait for its read timeout.
func (rc *replCluster) primaries() []string {
	rc.t.Helper()
	var out []string
	for _, n := range rc.nodes {
		if n.info("replication")["role"] == "master" {
			out = append(out, n.addr())
		}
	}
	require.Len(rc.t, out, 3)
	return out
}

func (rc *replCluster) addrs() []string {
	out := make([]string, len(rc.nodes))
	for i, n := range rc.nodes {
		out[i] = n.addr()
	}
	return out
}

func (rc *replCluster) node(port int) *clusterNode {
	for _, n := range rc.nodes {
		if n.port == port {
			return n
		}
	}
	return nil
}

// nodeView is one line of CLUSTER NODES.
type nodeView struct {
	id       string
	port     int
	primary  bool
	failed   bool // flagged fail or pfail by the node asked
	masterID string
	slots    [][2]int
}

// view returns the cluster as the first live node that answers sees it.
func (rc *replCluster) view() ([]nodeView, error) {
	var firstErr error
	for _, n := range rc.nodes {
		if !n.alive() {
			continue
		}
		v, err := n.view()
		if err == nil {
			return v, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, fmt.Errorf("no node answered CLUSTER NODES: %v", firstErr)
}

// view returns the cluster as n sees it.
func (n *clusterNode) view() ([]nodeView, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := n.c.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, err
	}
	var out []nodeView
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		hostPort, _, _ := strings.Cut(f[1], "@")
		_, ps, _ := strings.Cut(hostPort, ":")
		port, err := strconv.Atoi(ps)
		if err != nil {
			return nil, fmt.Errorf("CLUSTER NODES line %q: %v", line, err)
		}
		flags := strings.Split(f[2], ",")
		v := nodeView{
			id: f[0], port: port, primary: slices.Contains(flags, "master"),
			failed: slices.Contains(flags, "fail") || slices.Contains(flags, "fail?"), masterID: f[3],
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated
			}
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("CLUSTER NODES slots %q", r)
			}
			v.slots = append(v.slots, [2]int{a, b})
		}
		out = append(out, v)
	}
	return out, nil
}

// owner returns the primary that serves slot in view (nil: none).
func owner(view []nodeView, slot int) *nodeView {
	for i, v := range view {
		if !v.primary || v.failed {
			continue
		}
		for _, r := range v.slots {
			if r[0] <= slot && slot <= r[1] {
				return &view[i]
			}
		}
	}
	return nil
}

// replicaOf returns a live replica of p linked to it (nil: none).
func (rc *replCluster) replicaOf(view []nodeView, p *nodeView) *nodeView {
	for i, v := range view {
		if v.primary || v.failed || v.masterID != p.id {
			continue
		}
		if n := rc.node(v.port); n != nil && n.alive() && n.linked(p.port) {
			return &view[i]
		}
	}
	return nil
}

// info returns the fields of INFO section on n ("" for a field on error).
func (n *clusterNode) info(section string) map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := n.c.Info(ctx, section).Result()
	out := make(map[string]string)
	if err != nil {
		return out
	}
	for line := range strings.Lines(s) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out
}

// linked reports whether n replicates the primary on port with its link up.
func (n *clusterNode) linked(port int) bool {
	i := n.info("replication")
	return i["role"] == "slave" && i["master_port"] == strconv.Itoa(port) && i["master_link_status"] == "up"
}

// healthy reports whether every live node says cluster_state:ok.
func (rc *replCluster) healthy() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, n := range rc.nodes {
		if !n.alive() {
			continue
		}
		s, err := n.c.ClusterInfo(ctx).Result()
		if err != nil || !strings.Contains(s, "cluster_state:ok") {
			return false
		}
	}
	return true
}

// shard returns the primary serving key and its linked replica.
func (rc *replCluster) shard(key string) (primary, replica *clusterNode) {
	rc.t.Helper()
	view, err := rc.view()
	require.NoError(rc.t, err)
	p := owner(view, keySlot(key))
	require.NotNil(rc.t, p, "no primary serves the slot of %q", key)
	r := rc.replicaOf(view, p)
	require.NotNil(rc.t, r, "the primary on port %d serving %q has no linked replica", p.port, key)
	return rc.node(p.port), rc.node(r.port)
}

// failover fails the shard serving key over gracefully: CLUSTER FAILOVER
// sent to its replica, which waits for the replica to catch up before it
// takes over, so no acknowledged write is lost. It waits until every node
// sees the replica as the primary, the old primary is linked to it as its
// replica, and the cluster is ok, and returns how long that took.
func (rc *replCluster) failover(key string) (from, to *clusterNode, took time.Duration) {
	rc.t.Helper()
	from, to = rc.shard(key)
	start := time.Now()
	require.NoError(rc.t, to.c.ClusterFailover(context.Background()).Err())
	rc.waitPromoted(to, from)
	return from, to, time.Since(start)
}

// killPrimary kills the primary serving key with SIGKILL and waits until
// the cluster has promoted its replica and is ok again; it returns how long
// that took from the kill, and how many bytes of writes the replica missed.
// What the replica had not received is lost.
//
// With lag > 0 the replica misses for certain the writes of the last lag
// before the kill (on loopback a replica is otherwise at most a millisecond
// behind, and a kill loses next to nothing): it is stopped (SIGSTOP), a
// blob larger than the kernel's socket buffers is written to the primary,
// so that the writes after it wait in the primary's output buffer instead
// of the replica's socket, and after lag the primary is killed and the
// replica woken (SIGCONT). A key written just before the kill must be
// missing from the promoted replica. during, if not nil, runs at the start
// of the lag (and counts in it): what it writes to the primary is lost.
// lag must stay well under clusterNodeTimeout, after which the other nodes
// would flag the replica as failing too.
func (rc *replCluster) killPrimary(key string, lag time.Duration, during func(primary *clusterNode)) (from, to *clusterNode, took, stopped time.Duration, missed int64) {
	rc.t.Helper()
	require.Less(rc.t, lag, clusterNodeTimeout/2)
	from, to = rc.shard(key)
	if lag == 0 {
		start := time.Now()
		from.kill()
		rc.waitPromoted(to, from)
		return from, to, time.Since(start), 0, 0
	}
	ctx := context.Background()
	offset := func() int64 {
		o, err := strconv.ParseInt(from.info("replication")["master_repl_offset"], 10, 64)
		require.NoError(rc.t, err, "master_repl_offset of the node on port %d", from.port)
		return o
	}
	view, err := rc.view()
	require.NoError(rc.t, err)
	mark := rc.keyOn(view, from.port)
	require.NoError(rc.t, to.cmd.Process.Signal(syscall.SIGSTOP))
	stop := time.Now()
	conn := from.c.Conn()
	defer conn.Close()
	// tcp_rmem and tcp_wmem allow up to 32 and 4 MiB by default.
	require.NoError(rc.t, conn.Set(ctx, mark+":blob", strings.Repeat("x", 48<<20), 0).Err())
	after, lagFrom := offset(), time.Now()
	if during != nil {
		during(from)
	}
	time.Sleep(lag - time.Since(lagFrom)) // the replication lag to lose, not a wait for a condition
	require.NoError(rc.t, conn.Set(ctx, mark+":last", 1, 0).Err())
	missed = offset() - after
	start := time.Now()
	from.kill()
	require.NoError(rc.t, to.cmd.Process.Signal(syscall.SIGCONT))
	stopped = time.Since(stop)
	rc.waitPromoted(to, from)
	took = time.Since(start)
	n, err := to.c.Exists(ctx, mark+":last", mark+":blob").Result()
	require.NoError(rc.t, err)
	require.Zero(rc.t, n, "the promoted replica has the writes made just before the kill: the blob did not fill the replication link")
	return from, to, took, stopped, missed
}

// keyOn returns a key that the primary on port serves.
func (rc *replCluster) keyOn(view []nodeView, port int) string {
	for j := 0; ; j++ {
		k := fmt.Sprintf("{crashtest-%d}", j)
		if o := owner(view, keySlot(k)); o != nil && o.port == port {
			return k
		}
	}
}

// waitPromoted waits until every live node sees p as a primary with slots
// and old as p's replica (if alive) or with no slots (if dead), old (if
// alive) replicates p with its link up, and the cluster is ok; then
// it has the test's client reload its slot map.
func (rc *replCluster) waitPromoted(p, old *clusterNode) {
	rc.t.Helper()
	testutil.Eventually(rc.t, 30*time.Second, func() bool {
		if p.info("replication")["role"] != "master" {
			return false
		}
		if old.alive() && !old.linked(p.port) {
			return false
		}
		for _, n := range rc.nodes {
			if !n.alive() {
				continue
			}
			view, err := n.view()
			if err != nil {
				return false
			}
			i := slices.IndexFunc(view, func(v nodeView) bool { return v.port == p.port })
			if i < 0 || !view[i].primary || view[i].failed || len(view[i].slots) == 0 {
				return false
			}
			j := slices.IndexFunc(view, func(v nodeView) bool { return v.port == old.port })
			switch {
			case j < 0:
				return false
			case old.alive() && (view[j].primary || view[j].masterID != view[i].id):
				return false // not yet known everywhere as p's replica
			case !old.alive() && len(view[j].slots) > 0:
				return false
			}
		}
		return rc.healthy()
	}, "the node on port %d to be the primary of its shard (was the replica of port %d)", p.port, old.port)
	rc.c.ReloadState(context.Background())
}

// waitReplicated makes sure every write acknowledged so far has reached a
// replica: on every primary that has a linked replica, it writes a key of
// that primary's slots and runs WAIT 1 on the same connection (WAIT waits
// for the replication offset of its connection's last write, which covers
// every write before it).
func (rc *replCluster) waitReplicated() {
	rc.t.Helper()
	view, err := rc.view()
	require.NoError(rc.t, err)
	ctx := context.Background()
	for i, v := range view {
		if !v.primary || v.failed || len(v.slots) == 0 || rc.replicaOf(view, &view[i]) == nil {
			continue
		}
		conn := rc.node(v.port).c.Conn()
		require.NoError(rc.t, conn.Set(ctx, rc.keyOn(view, v.port)+":wait", time.Now().UnixNano(), 0).Err())
		n, err := conn.Wait(ctx, 1, 10*time.Second).Result()
		_ = conn.Close()
		require.NoError(rc.t, err)
		require.GreaterOrEqual(rc.t, n, int64(1), "WAIT 1 on the primary on port %d: no replica acknowledged its writes", v.port)
	}
}

// keySlot is Redis Cluster's hash slot of key (CRC16 of its hash tag, or of
// the whole key if it has none, modulo 16384).
func keySlot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc % 16384)
}

// tailFile returns the last n lines of the file at path.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
