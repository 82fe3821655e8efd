// Package maintenance holds a runner's background services, one job each:
// the Heartbeater (says the process is alive, reaps dead processes, deals
// with being reaped or with Redis losing its data), the Promoter (moves due
// scheduled and retry jobs to their queues) and the CancelPoller (stops
// running jobs whose cancellation is pending).
package maintenance

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/exec"
	"github.com/iterjob/iterjob/jobtype"
)

// Jobs is what the heartbeat asks of the process's set of executions (the
// producer).
type Jobs interface {
	// Busy lists the jobs running now.
	Busy() []jobtype.BusyJob
	// Held lists every job the process holds.
	Held() []consumer.HeldJob
	// Each calls fn for every execution held.
	Each(fn func(*exec.Execution))
	// Sweep returns to their queues the jobs in the process's in-flight
	// hash it does not hold.
	Sweep()
}

// busyBeatGap is the shortest time between two heartbeats that the running
// jobs changing brings forward: the jobs a process runs, as Processes shows
// them, are at most this much behind (plus a round trip).
const busyBeatGap = 250 * time.Millisecond

// Heartbeater says the process is alive and reaps dead ones: a beat every
// HeartbeatInterval (and sooner after a failed one, so that a process cut
// off from Redis for a moment is seen alive again as soon as Redis answers),
// one more when the running jobs change (at most one per busyBeatGap), and a
// reap twice per interval, plus one when a reap asks to confirm a process
// dead.
type Heartbeater struct {
	loop
	cons *consumer.Consumer
	jobs Jobs
	log  *slog.Logger
	now  func() time.Time

	beatMu         sync.Mutex // one heartbeat at a time
	beatFailLogged time.Time  // when a failed heartbeat was last logged
	restoreDue     bool       // Redis lost this process's jobs and they are not all put back yet
	restores       atomic.Int64
	dirty          atomic.Bool   // the running jobs changed since the last heartbeat
	dirtyCh        chan struct{} // signalled when dirty goes up
}

// NewHeartbeater returns a heartbeater; Start starts it.
func NewHeartbeater(cons *consumer.Consumer, jobs Jobs, log *slog.Logger, now func() time.Time) *Heartbeater {
	return &Heartbeater{cons: cons, jobs: jobs, log: log, now: now, dirtyCh: make(chan struct{}, 1)}
}

// Restores counts the times the process put back the jobs it holds after
// Redis lost them.
func (h *Heartbeater) Restores() int64 { return h.restores.Load() }

// Changed records that a job started or finished, for the loop to show
// soon. Per job it costs an atomic load while a beat is due anyway.
func (h *Heartbeater) Changed() {
	if !h.dirty.Load() && h.dirty.CompareAndSwap(false, true) {
		select {
		case h.dirtyCh <- struct{}{}:
		default:
		}
	}
}

// Start starts the heartbeater.
func (h *Heartbeater) Start() { h.start(h.run) }

func (h *Heartbeater) run(ctx context.Context) {
	hb := h.cons.Config().HeartbeatInterval
	beatT := time.NewTimer(jitter(hb, 0.1))
	defer beatT.Stop()
	reapT := time.NewTimer(jitter(hb/2, 0.1))
	defer reapT.Stop()
	var extraT *time.Timer
	var extraC <-chan time.Time // armed while a beat for changed jobs waits
	defer func() {
		if extraT != nil {
			extraT.Stop()
		}
	}()
	lastBeat := h.now()
	var retry time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-beatT.C:
			lastBeat = h.now()
			if !h.Beat(ctx) {
				retry = min(max(2*retry, 50*time.Millisecond), hb/4)
				beatT.Reset(retry)
				continue
			}
			retry = 0
			beatT.Reset(jitter(hb, 0.1))
			// The Redis client retries a command whose reply was lost, so a
			// fetch may have run twice with one reply seen: sweep every beat.
			h.jobs.Sweep()
		case <-h.dirtyCh:
			if extraC != nil {
				continue
			}
			wait := max(lastBeat.Add(busyBeatGap).Sub(h.now()), 0)
			if extraT == nil {
				extraT = time.NewTimer(wait)
			} else {
				extraT.Reset(wait)
			}
			extraC = extraT.C
		case <-extraC:
			extraC = nil
			lastBeat = h.now()
			h.Beat(ctx)
		case <-reapT.C:
			if _, err := h.cons.Reap(ctx); err != nil && ctx.Err() == nil {
				h.log.ErrorContext(ctx, "runner: reap failed", slog.Any("error", err))
			}
			next := jitter(hb/2, 0.1)
			if d := h.cons.NextReap(); d > 0 && d+5*time.Millisecond < next {
				next = d + 5*time.Millisecond
			}
			reapT.Reset(next)
		}
	}
}

// Beat heartbeats now. If the process had been presumed dead and reaped, it
// abandons its runs (their jobs were handed to others); if Redis lost its
// data, it puts back the jobs the process holds (see restore). Either way
// the process is registered again. It reports whether the heartbeat reached
// Redis.
func (h *Heartbeater) Beat(ctx context.Context) bool {
	h.beatMu.Lock()
	defer h.beatMu.Unlock()
	h.dirty.Store(false) // changes from now on bring another beat
	status, err := h.cons.Heartbeat(ctx, h.jobs.Busy())
	if err != nil {
		// Failed beats are retried quickly: log one per interval.
		if now := h.now(); ctx.Err() == nil && now.Sub(h.beatFailLogged) >= h.cons.Config().HeartbeatInterval {
			h.beatFailLogged = now
			h.log.ErrorContext(ctx, "runner: heartbeat failed", slog.Any("error", err))
		}
		return false
	}
	h.beatFailLogged = time.Time{}
	switch status {
	case consumer.BeatReaped:
		h.restoreDue = false // its jobs are others' now: nothing to put back
		h.abandon(ctx)
	case consumer.BeatDataLost:
		h.restoreDue = true
	}
	if h.restoreDue {
		h.restore(ctx, status == consumer.BeatDataLost)
	}
	return true
}

// restore puts back the in-flight entries of the jobs this process holds,
// after Redis lost them with its data, and has every run check its state
// at its next item (and restore it if it is gone too). Until it succeeds, it
// is tried again at every beat. h.beatMu is held.
func (h *Heartbeater) restore(ctx context.Context, first bool) {
	held := h.jobs.Held()
	if first {
		h.log.ErrorContext(ctx, "runner: Redis lost this process's registration and the records of the jobs it holds "+
			"(restarted without persistence, failed over to a replica without them, or flushed); registered again, "+
			"putting back the jobs it holds; jobs that were only in Redis (queued, scheduled) are gone",
			slog.String("process", h.cons.ProcessID()), slog.Int("jobs", len(held)))
	}
	n, err := h.cons.Restore(ctx, held)
	if err != nil {
		h.log.ErrorContext(ctx, "runner: could not put back the jobs this process holds; trying again at the next heartbeat", slog.Any("error", err))
		return
	}
	h.restoreDue = false
	h.jobs.Each((*exec.Execution).Restore)
	h.restores.Add(1)
	h.log.WarnContext(ctx, "runner: put back the jobs this process holds; they go on running here",
		slog.Int("jobs", len(held)), slog.Int("restored", n))
}

// abandon stops every run: the process was presumed dead and its jobs
// handed to others.
func (h *Heartbeater) abandon(ctx context.Context) {
	n := 0
	h.jobs.Each(func(e *exec.Execution) {
		n++
		e.Abandon()
	})
	h.log.ErrorContext(ctx, "runner: this process was presumed dead and its jobs handed to others; abandoning its runs",
		slog.Int("jobs", n))
}

// jitter returns d ± frac·d.
func jitter(d time.Duration, frac float64) time.Duration {
	return time.Duration(float64(d) * (1 - frac + 2*frac*rand.Float64()))
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
