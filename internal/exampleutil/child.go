package exampleutil

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// Child is a worker child process of an example.
type Child struct {
	Cmd *exec.Cmd
	// Exited is closed once the process has exited.
	Exited chan struct{}
}

// StartChild re-executes the running program with -child and env as worker
// n, prefixes its output lines with the worker's number, and returns once it
// printed its first line (it is up) or exited.
func StartChild(n int, env []string) (*Child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-child")
	cmd.Env = env
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &Child{Cmd: cmd, Exited: make(chan struct{})}
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		first := true
		for sc.Scan() {
			fmt.Printf("  worker %d | %s\n", n, sc.Text())
			if first {
				close(up)
				first = false
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		if first {
			close(up)
		}
		close(c.Exited)
	}()
	<-up
	return c, nil
}

// ConnectSchema returns a pool whose connections use schema.
func ConnectSchema(ctx context.Context, url, schema string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	return pgxpool.NewWithConfig(ctx, cfg)
}

// DeleteNamespace deletes every key of namespace ns: its global group
// ({ns}:…) and its queues' and jobs' groups ({ns/…}).
func DeleteNamespace(rdb redis.UniversalClient, ns string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, "{"+ns+"[}/]*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}
