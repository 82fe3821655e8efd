// Command progress is a small web app whose users start long tasks (an
// import, a provisioning) and watch them in a "running tasks" panel that
// updates live: started, progress, succeeded or failed, and gone when the
// job is deleted from the dashboard or through the API. The panel is fed
// over Server-Sent Events from iterjob's events stream, resuming from the
// last event id when the browser reconnects.
//
//	go run ./examples/progress            # then open the URL it prints
//
// It uses the Redis at REDIS_URL, or an embedded one when REDIS_URL is
// unset. -addr sets where it listens (default 127.0.0.1:8080).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/iterjob/iterjob/internal/exampleutil"
	"github.com/iterjob/iterjob/shutdown"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	if err := run(context.Background(), *addr, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "progress:", err)
		os.Exit(1)
	}
}

// run serves the app until SIGINT/SIGTERM (or ctx ends).
func run(ctx context.Context, addr string, out *os.File) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rdb, where, closeRedis, err := exampleutil.Connect(ctx)
	if err != nil {
		return err
	}
	defer closeRedis()
	sd, err := shutdown.New(shutdown.Config{Logger: log})
	if err != nil {
		return err
	}
	srv, err := newServer(ctx, rdb, "progress-example", sd, log, 100*time.Millisecond)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = srv.stop(ctx)
		return err
	}
	stopSignals := sd.HandleSignals(ctx)
	defer stopSignals()
	fmt.Fprintf(out, "progress: using %s\nprogress: open http://%s/\n", where, ln.Addr())
	return exampleutil.Serve(ln, srv.handler, sd, srv.run)
}
