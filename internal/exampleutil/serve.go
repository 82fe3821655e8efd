package exampleutil

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/iterjob/iterjob/runner"
	"github.com/iterjob/iterjob/shutdown"
)

// Serve serves h on ln until sd reaches Stopping (SIGINT/SIGTERM), then
// shuts the server down (2 s for open requests, event streams included) and
// stops r (10 s).
func Serve(ln net.Listener, h http.Handler, sd *shutdown.Controller, r *runner.Runner) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-sd.Reached(shutdown.Stopping)
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	err := hs.Serve(ln)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = r.Stop(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Main is the main function of a program that re-executes itself as worker
// children (see StartChild): with -child it calls child, else parent; an
// error is printed after name and exits 1.
func Main(name string, child func() error, parent func(context.Context) error) {
	isChild := flag.Bool("child", false, "run as the worker child process")
	flag.Parse()
	var err error
	if *isChild {
		err = child()
	} else {
		err = parent(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// RunWorker starts r, prints "worker up (pid N)" (the line StartChild waits
// for), and stops r once ctx ends.
func RunWorker(ctx context.Context, r *runner.Runner) error {
	if err := r.Start(ctx); err != nil {
		return err
	}
	fmt.Printf("worker up (pid %d)\n", os.Getpid())
	<-ctx.Done()
	return r.Stop(context.Background())
}
