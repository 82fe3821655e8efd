package testutil

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyAudit watches the commands a server runs (MONITOR) and checks, for
// every script call whose keys belong to a namespace, that each command the
// script ran touched only keys the call passed in KEYS: what Redis Cluster
// needs of a script, and what it does not check itself (it checks slots
// only).
type keyAudit struct {
	ns    string
	conns []net.Conn
	wg    sync.WaitGroup
	mu    sync.Mutex
	calls []scriptCall
	// marker, once set, is a command argument whose sight ends reading:
	// check sends it to every primary so no line before it is missed.
	marker string
	seen   chan string // the address that saw the marker
}

// scriptCall is one EVAL/EVALSHA and the commands its script ran.
type scriptCall struct {
	addr  string
	keys  []string
	inner [][]string
}

// startKeyAudit starts monitoring every primary of c for namespace ns.
func startKeyAudit(t testing.TB, c *redis.ClusterClient, ns string) *keyAudit {
	t.Helper()
	a := &keyAudit{ns: ns, marker: Unique("audit-end-"), seen: make(chan string, 16)}
	var addrs []string
	_ = c.ForEachMaster(context.Background(), func(_ context.Context, n *redis.Client) error {
		a.mu.Lock()
		addrs = append(addrs, n.Options().Addr)
		a.mu.Unlock()
		return nil
	})
	for _, addr := range addrs {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("testutil: key audit: %v", err)
		}
		if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
			t.Fatalf("testutil: key audit: %v", err)
		}
		rd := bufio.NewReaderSize(conn, 1<<16)
		if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
			t.Fatalf("testutil: key audit: MONITOR on %s: %q %v", addr, line, err)
		}
		a.conns = append(a.conns, conn)
		a.wg.Add(1)
		go a.read(addr, rd)
	}
	return a
}

func (a *keyAudit) read(addr string, rd *bufio.Reader) {
	defer a.wg.Done()
	var cur *scriptCall
	done := func() {
		if cur != nil {
			a.mu.Lock()
			a.calls = append(a.calls, *cur)
			a.mu.Unlock()
			cur = nil
		}
	}
	defer done()
	tag := "{" + a.ns
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(strings.TrimPrefix(line, "+"), "\r\n")
		// <time> [<db> <client or "lua">] "cmd" "arg"...
		open := strings.IndexByte(line, '[')
		shut := strings.IndexByte(line, ']')
		if open < 0 || shut < open {
			continue
		}
		lua := strings.HasSuffix(line[open:shut], " lua")
		args, ok := splitMonitorArgs(line[shut+1:])
		if !ok || len(args) == 0 {
			continue
		}
		if !lua && slices.Contains(args, a.marker) {
			done()
			a.seen <- addr
			return
		}
		if lua {
			if cur != nil {
				cur.inner = append(cur.inner, args)
			}
			continue
		}
		done()
		name := strings.ToLower(args[0])
		if (name == "evalsha" || name == "eval") && len(args) >= 3 {
			n, err := strconv.Atoi(args[2])
			if err != nil || 3+n > len(args) {
				continue
			}
			keys := args[3 : 3+n]
			if slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, tag) }) {
				cur = &scriptCall{addr: addr, keys: keys}
			}
		}
	}
}

// check stops monitoring and returns the script commands that touched keys
// their call did not pass in KEYS.
func (a *keyAudit) check(ctx context.Context, c *redis.ClusterClient) []string {
	nodes := map[string]*redis.Client{}
	_ = c.ForEachMaster(ctx, func(_ context.Context, n *redis.Client) error {
		a.mu.Lock()
		nodes[n.Options().Addr] = n
		a.mu.Unlock()
		return nil
	})
	// Every line before the marker was written before it; wait for the
	// readers to reach it (or give up after a while and read what came).
	for _, n := range nodes {
		_ = n.Echo(ctx, a.marker).Err()
	}
	timeout := time.After(5 * time.Second)
wait:
	for range a.conns {
		select {
		case <-a.seen:
		case <-timeout:
			break wait
		}
	}
	for _, conn := range a.conns {
		_ = conn.Close()
	}
	a.wg.Wait()
	var bad []string
	for _, call := range a.calls {
		n := nodes[call.addr]
		if n == nil {
			continue
		}
		for _, cmd := range call.inner {
			keys, err := commandKeys(ctx, n, cmd)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%q: %v", cmd, err))
				continue
			}
			for _, k := range keys {
				if !slices.Contains(call.keys, k) {
					bad = append(bad, fmt.Sprintf("%s touches %q, not in its KEYS", strings.ToUpper(cmd[0]), k))
				}
			}
		}
	}
	slices.Sort(bad)
	return slices.Compact(bad)
}

// commandKeys asks the server which of cmd's arguments are keys.
func commandKeys(ctx context.Context, n *redis.Client, cmd []string) ([]string, error) {
	if len(cmd) < 2 {
		return nil, nil // TIME and the like
	}
	args := make([]any, 0, 2+len(cmd))
	args = append(args, "command", "getkeys")
	for _, s := range cmd {
		args = append(args, s)
	}
	res, err := n.Do(ctx, args...).StringSlice()
	var re redis.Error
	if errors.As(err, &re) && strings.Contains(err.Error(), "no key arguments") {
		return nil, nil
	}
	return res, err
}

// splitMonitorArgs parses MONITOR's quoted arguments (sdscatrepr escapes).
func splitMonitorArgs(s string) ([]string, bool) {
	var out []string
	i := 0
	for {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i >= len(s) {
			return out, true
		}
		if s[i] != '"' {
			return nil, false
		}
		i++
		var b strings.Builder
		for {
			if i >= len(s) {
				return nil, false
			}
			c := s[i]
			if c == '"' {
				i++
				break
			}
			if c != '\\' || i+1 >= len(s) {
				b.WriteByte(c)
				i++
				continue
			}
			switch e := s[i+1]; e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'a':
				b.WriteByte('\a')
			case 'b':
				b.WriteByte('\b')
			case 'x':
				if i+3 < len(s) {
					v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
					if err == nil {
						b.WriteByte(byte(v))
						i += 4
						continue
					}
				}
				b.WriteByte(e)
			default:
				b.WriteByte(e)
			}
			i += 2
		}
		out = append(out, b.String())
	}
}
