package shutdown

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sync"
)

// What a signal asks for. Which signal means what is in the signals_*.go
// files: SIGTSTP and SIGTTIN exist only on Unix.
type action int

const (
	actIgnore action = iota
	actQuiet         // SIGTSTP
	actStop          // SIGTERM, SIGINT: Stopping, or HardStop when already Stopping
	actDump          // SIGTTIN
)

// HandleSignals makes the process's signals drive the controller until ctx
// is done or the returned stop function is called:
//
//   - SIGTSTP: Quiet.
//   - SIGTERM or SIGINT: Stop; when the state is already Stopping (however it
//     got there), HardStop.
//   - SIGTTIN: LogGoroutines.
//
// SIGTSTP and SIGTTIN exist only on Unix; elsewhere only the interrupt (and
// SIGTERM where the platform has it) is handled. ctx is passed to the logger
// for the records these signals produce.
//
// While the handler is installed, the signals no longer have their default
// effect (SIGTERM and SIGINT do not end the process, SIGTSTP does not
// suspend it): the program must exit by itself once it has shut down. Stop
// unregisters the handler, restoring the default effects (unless another
// os/signal user still listens), and waits for its goroutine to end; it is
// safe to call more than once. When ctx is done the handler unregisters too,
// but call stop anyway to wait for it.
//
// The handler logs "shutdown: handling signals" and "shutdown: signal
// handling ended" at Debug level.
//
// A controller takes one handler at a time: HandleSignals panics if called
// again before the previous handler was stopped, since two handlers would
// turn one SIGTERM into a hard stop.
func (c *Controller) HandleSignals(ctx context.Context) (stop func()) {
	c.mu.Lock()
	if c.signals {
		c.mu.Unlock()
		panic("shutdown: HandleSignals called while a previous handler is installed")
	}
	c.signals = true
	c.mu.Unlock()

	ch := make(chan os.Signal, 8)
	signal.Notify(ch, handledSignals...)
	c.logger.DebugContext(ctx, "shutdown: handling signals", slog.Any("signals", signalNames()))
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer func() {
			signal.Stop(ch)
			c.mu.Lock()
			c.signals = false
			c.mu.Unlock()
			c.logger.DebugContext(ctx, "shutdown: signal handling ended")
			close(done)
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-quit:
				return
			case sig := <-ch:
				c.handleSignal(ctx, sig)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

func signalNames() []string {
	names := make([]string, len(handledSignals))
	for i, sig := range handledSignals {
		names[i] = signalName(sig)
	}
	return names
}

func (c *Controller) handleSignal(ctx context.Context, sig os.Signal) {
	r := reason{by: bySignal, signal: signalName(sig)}
	var changed bool
	switch classify(sig) {
	case actQuiet:
		changed = c.advance(ctx, Quiet, r)
	case actStop:
		c.mu.Lock()
		to := Stopping
		if c.State() >= Stopping {
			to = HardStop
		}
		changed = c.advanceLocked(ctx, to, r)
		c.mu.Unlock()
	case actDump:
		c.LogGoroutines(ctx)
		return
	default:
		return
	}
	if !changed {
		c.logger.InfoContext(ctx, "shutdown: signal changes nothing",
			slog.String("signal", r.signal), slog.String("state", c.State().String()))
	}
}

// stackDumpMax bounds the goroutine dump, so a process with a million
// goroutines does not allocate gigabytes to describe them.
const stackDumpMax = 64 << 20

// LogGoroutines logs the stacks of all goroutines (runtime.Stack with all
// set) as one Info record "shutdown: goroutine dump" with attributes
// goroutines (the count), stacks (the text) and truncated (true when the dump
// exceeded 64 MiB and was cut). SIGTTIN calls it when HandleSignals is
// active; call it directly to dump on another trigger, such as an admin
// endpoint.
func (c *Controller) LogGoroutines(ctx context.Context) {
	buf := make([]byte, 64<<10)
	n := runtime.Stack(buf, true)
	for n == len(buf) && len(buf) < stackDumpMax {
		buf = make([]byte, 2*len(buf))
		n = runtime.Stack(buf, true)
	}
	c.logger.InfoContext(ctx, "shutdown: goroutine dump",
		slog.Int("goroutines", runtime.NumGoroutine()),
		slog.String("stacks", string(buf[:n])),
		slog.Bool("truncated", n == len(buf)))
}
