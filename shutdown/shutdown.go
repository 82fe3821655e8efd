package shutdown

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// State is how far the process has gone towards shutting down. States are
// ordered and only move forward: Running < Quiet < Stopping < HardStop.
type State int32

const (
	// Running is the normal state: fetch jobs and work on them.
	Running State = iota
	// Quiet means: fetch no new jobs. Iterable jobs interrupt at their next
	// item (checkpoint and re-enqueue); plain jobs run to the end. Entered
	// on SIGTSTP, typically at the start of a deploy.
	Quiet
	// Stopping means: fetch no new jobs and ask every running job to stop,
	// then wait up to the shutdown timeout. Entered on the first SIGTERM or
	// SIGINT.
	Stopping
	// HardStop means: cancel the contexts of the jobs still running. Entered
	// when the shutdown timeout passes after Stopping, or on a second
	// SIGTERM or SIGINT.
	HardStop
)

// String returns "running", "quiet", "stopping" or "hard_stop", and
// "State(n)" for a value outside the four states.
func (s State) String() string {
	switch s {
	case Running:
		return "running"
	case Quiet:
		return "quiet"
	case Stopping:
		return "stopping"
	case HardStop:
		return "hard_stop"
	default:
		return "State(" + strconv.Itoa(int(s)) + ")"
	}
}

// Causes of the contexts this package cancels. context.Cause returns one of
// them, or an error wrapping one of them that says why the state was
// entered (the signal received, the timeout passed); match with errors.Is.
var (
	// ErrQuiet is the cause when the controller entered Quiet.
	ErrQuiet = errors.New("shutdown: quiet")
	// ErrStopping is the cause when the controller entered Stopping.
	ErrStopping = errors.New("shutdown: stopping")
	// ErrHardStop is the cause when the controller entered HardStop.
	ErrHardStop = errors.New("shutdown: hard stop")
)

// ErrInvalidConfig is matched by the error New returns for a bad Config.
var ErrInvalidConfig = errors.New("shutdown: invalid config")

// TimeoutDefault is the shutdown timeout used when Config.Timeout is zero. It
// leaves a job runner 25 s to checkpoint and re-enqueue its jobs, inside the
// 30 s grace period that Kubernetes, systemd and Heroku give a process between
// SIGTERM and SIGKILL.
const TimeoutDefault = 25 * time.Second

// Config configures a Controller. The zero value is ready to use.
type Config struct {
	// Timeout is how long the controller stays in Stopping before it moves
	// to HardStop by itself. It is measured from the moment Stopping is
	// entered. Zero means TimeoutDefault (25 s); a negative value is an
	// error. To never hard-stop by deadline, use a very long timeout; to
	// hard-stop at once, call HardStop.
	Timeout time.Duration

	// Logger receives one record per state change ("shutdown: quiet",
	// "shutdown: stopping", "shutdown: hard stop") and the goroutine dump
	// asked for with SIGTTIN. Nil means discard everything, the dump
	// included: a library does not write to the process's default logger
	// unasked. Pass slog.Default() to use it.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = TimeoutDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	if c.Timeout < 0 {
		return fmt.Errorf("%w: Timeout %v is negative", ErrInvalidConfig, c.Timeout)
	}
	return nil
}

// Controller holds the shutdown state of a process. Its methods are safe for
// concurrent use. State is a single atomic load; the transitions (Quiet, Stop,
// HardStop and the signals HandleSignals installs) are rare and take a lock.
type Controller struct {
	state atomic.Int32 // a State; written only under mu

	timeout   time.Duration
	logger    *slog.Logger
	afterFunc func(time.Duration, func()) stopper // time.AfterFunc; tests replace it

	mu sync.Mutex
	// reached[s] is closed when the state reaches s; crossed[s] is the cause
	// of the transition that did it. Index 0 (Running) is unused.
	reached    [HardStop + 1]chan struct{}
	crossed    [HardStop + 1]error
	waiters    map[*waiter]struct{} // contexts to cancel at a later state
	deadline   stopper              // the Stopping → HardStop timer, while it runs
	deadlineAt time.Time            // when deadline fires
	finished   bool                 // Finish was called: no deadline any more
	signals    bool                 // a HandleSignals handler is installed
}

// stopper is the part of *time.Timer the controller uses.
type stopper interface{ Stop() bool }

type waiter struct {
	at     State
	cancel context.CancelCauseFunc
}

// New returns a Controller in the Running state. It returns an error
// matching ErrInvalidConfig when cfg.Timeout is negative.
func New(cfg Config) (*Controller, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Controller{
		timeout:   cfg.Timeout,
		logger:    cfg.Logger,
		afterFunc: func(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) },
		waiters:   make(map[*waiter]struct{}),
	}
	for s := Quiet; s <= HardStop; s++ {
		c.reached[s] = make(chan struct{})
	}
	return c, nil
}

// State returns the current state. It is one atomic load with no lock, meant
// to be called after every item of every job.
func (c *Controller) State() State {
	return State(c.state.Load())
}

// Timeout returns the shutdown timeout in use, after defaults.
func (c *Controller) Timeout() time.Duration {
	return c.timeout
}

// Quiet moves the controller from Running to Quiet. It does nothing in any
// later state. It reports whether the state changed.
func (c *Controller) Quiet() bool {
	return c.advance(context.Background(), Quiet, reason{by: byCall})
}

// Stop moves the controller to Stopping, from Running or Quiet, and starts
// the shutdown timer: unless HardStop is reached first, the controller moves
// to HardStop when Timeout has passed. Stop is idempotent: calling it again
// while Stopping neither escalates nor restarts the timer (only a second
// SIGTERM or SIGINT escalates; call HardStop to escalate by hand). After
// Finish, it starts no timer. It reports whether the state changed.
func (c *Controller) Stop() bool {
	return c.advance(context.Background(), Stopping, reason{by: byCall})
}

// HardStop moves the controller to HardStop from any earlier state and
// stops the shutdown timer. It does nothing if already there. It reports
// whether the state changed.
func (c *Controller) HardStop() bool {
	return c.advance(context.Background(), HardStop, reason{by: byCall})
}

// Finish ends the shutdown: everything that follows the controller has
// stopped, so the shutdown timer has nothing left to hard-stop. It stops the
// timer without moving to HardStop (the state, channels and contexts stay as
// they are, and nothing is logged), and no later Stop or signal starts a new
// one. HardStop, by call or by a second SIGTERM or SIGINT, still works.
// Finish is idempotent and may be called in any state.
//
// Call Finish only once nothing that relies on the deadline is still
// stopping. When several runners (or other components) share one
// controller, its owner calls Finish after all of them have stopped: one
// runner that has finished must not cancel the deadline of another still
// stopping. A runner calls Finish on the controller it created itself (no
// runner.Config.Shutdown) when it has stopped, and never on one it was
// given.
func (c *Controller) Finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finished = true
	c.stopDeadlineLocked()
}

// Deadline returns when the controller will move to HardStop by itself, and
// whether that is pending: from Stop (or the first SIGTERM or SIGINT) until
// the deadline passes, HardStop is reached, or Finish is called.
func (c *Controller) Deadline() (at time.Time, pending bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadlineAt, c.deadline != nil
}

func (c *Controller) stopDeadlineLocked() {
	if c.deadline != nil {
		c.deadline.Stop()
		c.deadline, c.deadlineAt = nil, time.Time{}
	}
}

// Reached returns a channel that is closed once the state is s or later:
// Reached(Quiet) is closed by Quiet, Stop and HardStop alike. The same
// channel is returned on every call. When it is closed, State already
// returns s or later and the contexts of ContextUntil(_, s) are already
// cancelled. It panics unless s is Quiet, Stopping or HardStop.
func (c *Controller) Reached(s State) <-chan struct{} {
	mustBeTarget("Reached", s)
	return c.reached[s]
}

// ContextUntil returns a copy of parent that is cancelled once the state is
// s or later. Its context.Cause is then the cause of the transition that
// reached s: ErrQuiet, ErrStopping or ErrHardStop, possibly wrapped with the
// signal or the timeout that caused it (match with errors.Is). If the state
// is already s or later, the context is returned cancelled. If parent ends
// first, the context ends with parent's cause.
//
// Call the returned cancel function when the context is no longer needed:
// until then the controller holds on to it. Calling it cancels the context
// with context.Canceled. It panics unless s is Quiet, Stopping or HardStop.
func (c *Controller) ContextUntil(parent context.Context, s State) (context.Context, context.CancelFunc) {
	mustBeTarget("ContextUntil", s)
	ctx, cancel := context.WithCancelCause(parent)
	c.mu.Lock()
	if c.State() >= s {
		cause := c.crossed[s]
		c.mu.Unlock()
		cancel(cause)
		return ctx, func() { cancel(context.Canceled) }
	}
	w := &waiter{at: s, cancel: cancel}
	c.waiters[w] = struct{}{}
	c.mu.Unlock()
	return ctx, func() {
		c.mu.Lock()
		delete(c.waiters, w)
		c.mu.Unlock()
		cancel(context.Canceled)
	}
}

// FetchContext returns a context for fetching jobs: it is cancelled as soon
// as the controller leaves Running (Quiet or later), with cause matching
// ErrQuiet, or ErrStopping or ErrHardStop when the controller skipped Quiet.
// It is ContextUntil(parent, Quiet).
func (c *Controller) FetchContext(parent context.Context) (context.Context, context.CancelFunc) {
	return c.ContextUntil(parent, Quiet)
}

// WorkContext returns a context for running jobs: it is cancelled only at
// HardStop, with cause matching ErrHardStop, so that jobs can finish or
// checkpoint during Quiet and Stopping. It is ContextUntil(parent, HardStop).
func (c *Controller) WorkContext(parent context.Context) (context.Context, context.CancelFunc) {
	return c.ContextUntil(parent, HardStop)
}

func mustBeTarget(method string, s State) {
	if s < Quiet || s > HardStop {
		panic(fmt.Sprintf("shutdown: %s(%v): the state must be Quiet, Stopping or HardStop", method, s))
	}
}

// What moved the state.
const (
	byCall     = "call"     // Quiet, Stop or HardStop was called
	bySignal   = "signal"   // a signal arrived
	byDeadline = "deadline" // the shutdown timeout passed
)

type reason struct {
	by     string
	signal string // the signal's name, when by == bySignal
}

// err returns the cause for contexts cancelled by a move to state to.
func (r reason) err(to State, timeout time.Duration) error {
	base := [...]error{Quiet: ErrQuiet, Stopping: ErrStopping, HardStop: ErrHardStop}[to]
	switch {
	case r.by == bySignal && to == HardStop:
		return fmt.Errorf("%w: %s received while stopping", base, r.signal)
	case r.by == bySignal:
		return fmt.Errorf("%w: %s received", base, r.signal)
	case r.by == byDeadline:
		return fmt.Errorf("%w: shutdown timeout of %v passed", base, timeout)
	default:
		return base
	}
}

func (c *Controller) advance(ctx context.Context, to State, r reason) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.advanceLocked(ctx, to, r)
}

// advanceLocked moves the state forward to to, closing the channels and
// cancelling the contexts of every state passed, starting or stopping the
// shutdown timer, and logging the move. It does nothing unless to is later
// than the current state. c.mu must be held.
func (c *Controller) advanceLocked(ctx context.Context, to State, r reason) bool {
	from := c.State()
	if to <= from {
		return false
	}
	cause := r.err(to, c.timeout)
	// State first, then contexts, then channels: whoever wakes on a
	// channel finds the state and the contexts already there.
	c.state.Store(int32(to))
	for w := range c.waiters {
		if w.at <= to {
			w.cancel(cause)
			delete(c.waiters, w)
		}
	}
	for s := from + 1; s <= to; s++ {
		c.crossed[s] = cause
		close(c.reached[s])
	}

	attrs := []any{slog.String("from", from.String()), slog.String("cause", r.by)}
	if r.signal != "" {
		attrs = append(attrs, slog.String("signal", r.signal))
	}
	switch to {
	case Quiet:
		c.logger.InfoContext(ctx, "shutdown: quiet", attrs...)
	case Stopping:
		if !c.finished {
			logCtx := context.WithoutCancel(ctx)
			c.deadlineAt = time.Now().Add(c.timeout)
			c.deadline = c.afterFunc(c.timeout, func() {
				c.mu.Lock()
				defer c.mu.Unlock()
				// A timer that fired as Finish stopped it does nothing.
				if !c.finished {
					c.advanceLocked(logCtx, HardStop, reason{by: byDeadline})
				}
			})
		}
		c.logger.InfoContext(ctx, "shutdown: stopping", append(attrs, slog.Duration("timeout", c.timeout))...)
	case HardStop:
		c.stopDeadlineLocked()
		if r.by == byDeadline {
			attrs = append(attrs, slog.Duration("timeout", c.timeout))
		}
		c.logger.WarnContext(ctx, "shutdown: hard stop", attrs...)
	}
	return true
}
