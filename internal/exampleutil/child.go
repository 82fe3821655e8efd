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

// Child is a worker child process of an example or bench program.
type Child struct {
	Cmd *exec.Cmd
	// Stdin writes to the child's standard input when ChildConfig.Stdin
	// was set (closing it is an end of file for the child); else nil.
	Stdin io.WriteCloser
	// Exited is closed once the process has exited and every line it
	// printed was handled; Cmd.ProcessState is set by then.
	Exited chan struct{}
}

// ChildConfig configures StartChildWith.
type ChildConfig struct {
	// Args follow -child on the command line. Keep secrets (a Redis URL
	// with its password) out of them, in Env: other users can list a
	// process's arguments.
	Args []string
	// Env is the child's environment; nil means the parent's.
	Env []string
	// Name prefixes each line the child prints ("  worker 1 | ...") when
	// Line is nil.
	Name string
	// Line, if set, receives each line the child prints on standard
	// output, in order, from one goroutine, instead of the prefixed copy.
	Line func(string)
	// Stdin gives the parent a pipe to the child's standard input
	// (Child.Stdin). Without it the child reads the null device.
	Stdin bool
}

// StartChild re-executes the running program with -child and env as worker
// n, prefixes its output lines with the worker's number, and returns once it
// printed its first line (it is up) or exited.
func StartChild(n int, env []string) (*Child, error) {
	return StartChildWith(ChildConfig{Env: env, Name: fmt.Sprintf("worker %d", n)})
}

// StartChildWith re-executes the running program with -child followed by
// cfg.Args, and returns once the child printed its first line on standard
// output (it is up) or exited; its standard error is the parent's.
func StartChildWith(cfg ChildConfig) (*Child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"-child"}, cfg.Args...)...)
	cmd.Env = cfg.Env
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &Child{Cmd: cmd, Exited: make(chan struct{})}
	if cfg.Stdin {
		if c.Stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line := cfg.Line
	if line == nil {
		line = func(s string) { fmt.Printf("  %s | %s\n", cfg.Name, s) }
	}
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		first := true
		for sc.Scan() {
			line(sc.Text())
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
