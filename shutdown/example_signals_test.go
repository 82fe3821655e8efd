package shutdown_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/iterjob/iterjob/shutdown"
)

// A worker process lets signals drive the controller: SIGTSTP quiets it,
// SIGTERM or SIGINT stops it, a second one hard-stops it, and SIGTTIN logs
// every goroutine's stack. The process exits once its jobs are done, or at
// the hard stop.
func ExampleController_HandleSignals() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctl, err := shutdown.New(shutdown.Config{Logger: logger})
	if err != nil {
		logger.Error("shutdown config", "error", err)
		os.Exit(1)
	}
	ctx := context.Background()
	stopSignals := ctl.HandleSignals(ctx)
	defer stopSignals()

	fetchCtx, cancelFetch := ctl.FetchContext(ctx)
	defer cancelFetch()
	workCtx, cancelWork := ctl.WorkContext(ctx)
	defer cancelWork()

	jobsDone := make(chan struct{})
	go func() {
		defer close(jobsDone)
		// Fetch with fetchCtx until it ends; run each job with workCtx;
		// iterable jobs check ctl.State() after every item.
		<-fetchCtx.Done()
		_ = workCtx
	}()

	<-ctl.Reached(shutdown.Stopping)
	select {
	case <-jobsDone:
		logger.Info("all jobs done")
	case <-ctl.Reached(shutdown.HardStop):
		logger.Warn("jobs cancelled", "cause", context.Cause(workCtx))
	}
}
