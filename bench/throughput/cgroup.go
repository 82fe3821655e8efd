package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/exampleutil"
)

// cpuCaps limits Redis servers' CPU with Linux cgroups (v1 "cpu" or v2), so
// that on one small machine the servers, not the clients, are the limit, as
// when each shard is a host of its own: -redis-cpu 0.2 gives each server a
// fifth of a core. It needs root and the servers on this machine.
type cpuCaps struct {
	dirs  []string
	moved map[int]string // pid → the cgroup.procs file it came from
}

// cgroupRoot returns the directory under which a CPU-limited group can be
// made, and whether it is cgroup v2.
func cgroupRoot() (string, bool, error) {
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"); err == nil {
		return "/sys/fs/cgroup/cpu", false, nil
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(b), "cpu") {
		return "/sys/fs/cgroup", true, nil
	}
	return "", false, errors.New("no cgroup cpu controller found (-redis-cpu needs Linux cgroups and root)")
}

// capServers puts each server that c reaches (each primary of a cluster) in
// a cgroup of its own limited to cpus CPUs.
func capServers(ctx context.Context, c redis.UniversalClient, cpus float64) (*cpuCaps, error) {
	root, v2, err := cgroupRoot()
	if err != nil {
		return nil, err
	}
	caps := &cpuCaps{moved: map[int]string{}}
	capOne := func(ctx context.Context, n *redis.Client) error {
		info, err := n.Info(ctx, "server").Result()
		if err != nil {
			return err
		}
		pid, _ := strconv.Atoi(exampleutil.InfoValue(info, "process_id"))
		if pid == 0 {
			return fmt.Errorf("%s: no process_id in INFO", n.Options().Addr)
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("%s (pid %d) is not a process of this machine: -redis-cpu needs local servers", n.Options().Addr, pid)
		}
		dir := filepath.Join(root, fmt.Sprintf("iterjob-bench-%d", pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		caps.dirs = append(caps.dirs, dir)
		const period = 100_000 // µs
		quota := int(cpus * period)
		if v2 {
			err = os.WriteFile(filepath.Join(dir, "cpu.max"), fmt.Appendf(nil, "%d %d", quota, period), 0o644)
		} else {
			err = os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte(strconv.Itoa(quota)), 0o644)
		}
		if err != nil {
			return err
		}
		from, err := currentGroup(root, v2, pid)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return err
		}
		caps.moved[pid] = from
		return nil
	}
	if err := exampleutil.EachServer(ctx, c, capOne); err != nil {
		caps.undo()
		return nil, err
	}
	return caps, nil
}

// undo moves the servers back and removes the groups.
func (c *cpuCaps) undo() {
	for pid, from := range c.moved {
		_ = os.WriteFile(from, []byte(strconv.Itoa(pid)), 0o644)
	}
	for _, d := range c.dirs {
		_ = os.Remove(d)
	}
}

// currentGroup returns the cgroup.procs file of the group pid is in now.
func currentGroup(root string, v2 bool, pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(b)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if (v2 && parts[0] == "0") || (!v2 && slices.Contains(strings.Split(parts[1], ","), "cpu")) {
			return filepath.Join(root, parts[2], "cgroup.procs"), nil
		}
	}
	return "", fmt.Errorf("pid %d: no cpu cgroup in /proc/%d/cgroup", pid, pid)
}
