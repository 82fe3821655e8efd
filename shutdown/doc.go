// Package shutdown turns a process's signals into a shutdown state that a
// job runner reads with one atomic load per item, and into contexts that end
// when fetching or working must stop. Everything the signals do can also be
// done by calling methods, for tests and for programs that embed a runner.
//
// # States
//
// A [Controller] starts [Running] and only ever moves forward:
//
//	signal            state     what a runner does
//	SIGTSTP           Quiet     stop fetching; iterable jobs interrupt at their
//	                            next item; plain jobs finish
//	SIGTERM, SIGINT   Stopping  stop fetching; ask running jobs to stop; wait
//	                            up to the shutdown timeout (default 25 s)
//	timeout passed,   HardStop  cancel the running jobs' contexts
//	or a second
//	SIGTERM/SIGINT
//	SIGTTIN           (none)    log a dump of all goroutines
//
// A move to a state that is not later than the current one does nothing, so
// every transition is idempotent and Quiet after Stopping is ignored. Moving
// past a state counts as reaching it: Stop from Running reaches Quiet too.
//
// # Walkthrough
//
// Create a controller, and let signals drive it for as long as the program
// runs:
//
//	ctl, err := shutdown.New(shutdown.Config{Logger: logger})
//	if err != nil {
//		return err
//	}
//	stopSignals := ctl.HandleSignals(ctx)
//	defer stopSignals()
//
// Fetch with a context that ends at Quiet, and run each job with a context
// that ends only at HardStop:
//
//	fetchCtx, cancelFetch := ctl.FetchContext(ctx)
//	defer cancelFetch()
//	workCtx, cancelWork := ctl.WorkContext(ctx)
//	defer cancelWork()
//	for {
//		job, err := queue.Fetch(fetchCtx) // returns when Quiet is reached
//		if err != nil {
//			break // context.Cause(fetchCtx) says why: shutdown.ErrQuiet, ...
//		}
//		go run(workCtx, job)
//	}
//
// Inside an iterable job, check the state after every item. It is one
// atomic load (about a nanosecond), so it costs nothing next to the item:
//
//	for item, cursor := range items {
//		process(workCtx, item)
//		if ctl.State() >= shutdown.Quiet {
//			checkpoint(cursor) // and re-enqueue the job
//			return
//		}
//	}
//
// Wait for the jobs to finish, or for the hard stop, with [Controller.Reached]:
//
//	select {
//	case <-allJobsDone:
//	case <-ctl.Reached(shutdown.HardStop):
//		// workCtx is cancelled; give the jobs a moment to return
//	}
//
// # Without signals
//
// [Controller.Quiet], [Controller.Stop] and [Controller.HardStop] make the
// same moves as the signals. Stop starts the shutdown timer
// ([Config.Timeout]), after which the controller moves to HardStop by
// itself; HardStop before that stops the timer. Stop is idempotent: only a
// second SIGTERM or SIGINT escalates, and code escalates by calling HardStop.
//
// # Ending the shutdown
//
// Once everything that follows the controller has stopped, call
// [Controller.Finish]: it stops the timer without moving to HardStop, so a
// deadline that passes after the work is gone logs no false "hard stop".
// [Controller.Deadline] says whether a deadline is pending. The rule for a
// controller shared by several runners: only its owner calls Finish, after
// all of them have stopped; a runner finishes only the controller it created
// itself.
//
// # Causes
//
// The contexts end with a cause that says why: [ErrQuiet], [ErrStopping] or
// [ErrHardStop], wrapped with the signal or the timeout when one caused the
// move (for example "shutdown: hard stop: shutdown timeout of 25s passed").
// Match them with errors.Is on context.Cause(ctx).
//
// # Logging
//
// Each move is logged through [Config.Logger] ("shutdown: quiet",
// "shutdown: stopping" with the timeout, "shutdown: hard stop" with its
// cause: call, signal or deadline). The default logger discards everything,
// so pass one: without it, SIGTTIN's goroutine dump goes nowhere.
//
// # Platforms
//
// SIGTSTP and SIGTTIN exist only on Unix. On Windows the interrupt (Ctrl-C)
// and SIGTERM (console close, logoff, shutdown) are handled; Quiet and the
// goroutine dump are then available only by calling the methods.
package shutdown
