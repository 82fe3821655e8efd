package periodic_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/periodic"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
)

var quiet = slog.New(slog.DiscardHandler)

// clock is a clock tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fleet is several schedulers, each on a Redis connection of its own as
// separate processes are, sharing one clock.
type fleet struct {
	t      *testing.T
	clock  *clock
	client *queue.Client
	scheds []*periodic.Scheduler
	// fail, if set, replaces scheduler i's enqueue (a process dying
	// around its enqueue).
	mu   sync.Mutex
	fail map[int]func(ctx context.Context, d *periodic.Def, tick time.Time, id string) (string, error)
}

func newFleet(t *testing.T, r testutil.Redis, n int) *fleet {
	t.Helper()
	f := &fleet{t: t, clock: &clock{now: time.Date(2026, 1, 1, 0, 0, 3, 0, time.UTC)}, fail: map[int]func(context.Context, *periodic.Def, time.Time, string) (string, error){}}
	var err error
	f.client, err = queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, Logger: quiet})
	require.NoError(t, err)
	for i := range n {
		c := testutil.OtherClient(t, r)
		qc, err := queue.NewClient(c, queue.Config{Namespace: r.Namespace, Logger: quiet})
		require.NoError(t, err)
		enq := func(ctx context.Context, d *periodic.Def, tick time.Time, id string) (string, error) {
			f.mu.Lock()
			fail := f.fail[i]
			f.mu.Unlock()
			if fail != nil {
				return fail(ctx, d, tick, id)
			}
			res, err := qc.Enqueue(ctx, d.Kind, d.Args, &queue.EnqueueOpts{Queue: d.Queue, ID: id})
			if err != nil {
				return "", err
			}
			return res.Job.ID, nil
		}
		f.scheds = append(f.scheds, periodic.New(periodic.Config{
			DB: rdb.New(c, r.Namespace), Enqueue: enq, Logger: quiet, Now: f.clock.Now,
		}))
	}
	return f
}

// tick runs one pass of every scheduler at once.
func (f *fleet) tick() {
	var wg sync.WaitGroup
	for _, s := range f.scheds {
		wg.Go(func() {
			_, err := s.Tick(f.t.Context())
			require.NoError(f.t, err)
		})
	}
	wg.Wait()
}

// ids returns the ids of the jobs waiting in queue q, in order.
func (f *fleet) ids(q string) []string {
	jobs, err := f.client.QueueJobs(f.t.Context(), q, 0, 10_000)
	require.NoError(f.t, err)
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

func tickIDs(name string, ticks ...time.Time) []string {
	out := make([]string, len(ticks))
	for i, t := range ticks {
		out[i] = periodic.JobID(name, t)
	}
	return out
}

func at(s string) time.Time {
	t, err := time.Parse(time.TimeOnly, s)
	if err != nil {
		panic(err)
	}
	return time.Date(2026, 1, 1, t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
}

// Five schedulers ticking together at every second of a minute enqueue each
// tick of two schedules exactly once, none missing.
func TestOneJobPerTickAcrossProcesses(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		f := newFleet(t, r, 5)
		ctx := t.Context()
		require.NoError(t, f.client.AddPeriodic(ctx, queue.PeriodicJob{Name: "ten", Spec: "*/10 * * * * *", Kind: "k", Queue: "ten"}))
		require.NoError(t, f.client.AddPeriodic(ctx, queue.PeriodicJob{Name: "seven", Spec: "@every 7s", Kind: "k", Queue: "seven"}))
		for range 60 {
			f.tick()
			f.clock.Advance(time.Second)
		}
		// First seen at 00:00:03; the clock's last pass was at 00:01:02.
		require.Equal(t, tickIDs("ten", at("00:00:10"), at("00:00:20"), at("00:00:30"), at("00:00:40"), at("00:00:50"), at("00:01:00")), f.ids("ten"))
		var want []time.Time
		for tk := at("00:00:10"); !tk.After(at("00:01:02")); tk = tk.Add(7 * time.Second) {
			want = append(want, tk)
		}
		require.Equal(t, tickIDs("seven", want...), f.ids("seven"))

		list, err := f.client.PeriodicJobs(ctx)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, "seven", list[0].Name)
		require.True(t, at("00:01:06").Equal(list[0].NextRun), "next run %s", list[0].NextRun)
		require.True(t, want[len(want)-1].Equal(list[0].LastTick))
		require.Equal(t, periodic.JobID("seven", want[len(want)-1]), list[0].LastJobID)
		require.True(t, at("00:01:10").Equal(list[1].NextRun))
	})
}

// A process that claims a tick and dies before its enqueue reaches Redis,
// or after it but before recording it, costs neither the tick nor a second
// job: another process finishes the claim once it has timed out.
func TestProcessDyingAroundItsEnqueue(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		for _, enqueued := range []bool{false, true} {
			t.Run(fmt.Sprintf("enqueued=%v", enqueued), func(t *testing.T) {
				f := newFleet(t, r, 3)
				ctx := t.Context()
				q := testutil.Unique("q")
				name := q // the subtests share the namespace
				require.NoError(t, f.client.AddPeriodic(ctx, queue.PeriodicJob{Name: name, Spec: "*/10 * * * * *", Kind: "k", Queue: q}))
				f.tick() // first tick: 00:00:10
				f.clock.Advance(7 * time.Second)
				// Only scheduler 0 runs at the tick, and dies around its enqueue.
				f.fail[0] = func(ctx context.Context, d *periodic.Def, tick time.Time, id string) (string, error) {
					if enqueued {
						_, err := f.client.Enqueue(ctx, d.Kind, d.Args, &queue.EnqueueOpts{Queue: d.Queue, ID: id})
						require.NoError(t, err)
					}
					return "", errors.New("killed")
				}
				_, err := f.scheds[0].Tick(ctx)
				require.NoError(t, err)
				f.fail[0] = nil
				// The others, within the claim's timeout, leave it alone.
				f.clock.Advance(periodic.PendingTimeoutDefault - time.Second)
				f.tick()
				if !enqueued {
					require.Empty(t, f.ids(q))
				}
				f.clock.Advance(time.Second)
				f.tick()
				require.Equal(t, tickIDs(name, at("00:00:10")), f.ids(q))
				// And the schedule goes on.
				f.clock.Advance(10 * time.Second)
				f.tick()
				require.Equal(t, tickIDs(name, at("00:00:10"), at("00:00:20")), f.ids(q))
			})
		}
	})
}

// After downtime, missed ticks never come as a burst: MissedSkip enqueues
// the latest tick if it is within the grace and nothing otherwise;
// MissedRunOnce enqueues the latest tick whatever its lateness.
func TestMissedTicks(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		f := newFleet(t, r, 2)
		ctx := t.Context()
		add := func(name string, missed queue.MissedPolicy) {
			require.NoError(t, f.client.AddPeriodic(ctx, queue.PeriodicJob{Name: name, Spec: "@hourly", Kind: "k", Queue: name, Missed: missed}))
		}
		add("skip", queue.MissedSkip)
		add("once", queue.MissedRunOnce)
		f.tick() // first tick of both: 01:00
		// Down from before 01:00 to 05:00:30: four ticks missed, the
		// latest within the grace.
		f.clock.now = at("05:00:30")
		f.tick()
		require.Equal(t, tickIDs("skip", at("05:00:00")), f.ids("skip"))
		require.Equal(t, tickIDs("once", at("05:00:00")), f.ids("once"))
		// Down again to 09:30: the latest tick, 09:00, is half an hour late.
		f.clock.now = at("09:30:00")
		f.tick()
		require.Equal(t, tickIDs("skip", at("05:00:00")), f.ids("skip"), "skipped")
		require.Equal(t, tickIDs("once", at("05:00:00"), at("09:00:00")), f.ids("once"))
		list, err := f.client.PeriodicJobs(ctx)
		require.NoError(t, err)
		for _, p := range list {
			require.True(t, at("10:00:00").Equal(p.NextRun), "%s next run %s", p.Name, p.NextRun)
		}
		require.Equal(t, queue.MissedRunOnce, list[0].Missed)
	})
}

// Schedules added and removed while schedulers run take effect at their
// next pass; a new spec starts afresh, a new job keeps the next tick.
func TestAddAndRemoveAtRunTime(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		f := newFleet(t, r, 3)
		ctx := t.Context()
		f.tick() // no schedules yet
		require.NoError(t, f.client.AddPeriodic(ctx, queue.PeriodicJob{Name: "p", Spec: "*/10 * * * * *", Kind: "k", Queue: "a"}))
		for range 20 {
			f.tick()
			f.clock.Advance(time.Second)
		} // 00:00:23
		require.Equal(t, tickIDs("p", at("00:00:10"), at("00:00:20")), f.ids("a"))

		// Same spec, other queue: keeps its next tick (00:00:30).
		require.NoError(t, f.client.AddPeriodic(ctx, queue.PeriodicJob{Name: "p", Spec: "*/10 * * * * *", Kind: "k", Queue: "b"}))
		f.clock.now = at("00:00:30")
		f.tick()
		require.Equal(t, tickIDs("p", at("00:00:30")), f.ids("b"))

		// A new spec starts from the next tick after the schedulers see it.
		require.NoError(t, f.client.AddPeriodic(ctx, queue.PeriodicJob{Name: "p", Spec: "15 * * * * *", Kind: "k", Queue: "b"}))
		f.clock.now = at("00:00:35")
		f.tick()
		list, err := f.client.PeriodicJobs(ctx)
		require.NoError(t, err)
		require.True(t, at("00:01:15").Equal(list[0].NextRun), "next run %s", list[0].NextRun)

		require.NoError(t, f.client.RemovePeriodic(ctx, "p"))
		require.ErrorIs(t, f.client.RemovePeriodic(ctx, "p"), queue.ErrNotFound)
		f.clock.now = at("00:02:00")
		f.tick()
		require.Equal(t, tickIDs("p", at("00:00:30")), f.ids("b"), "nothing after the removal")
		list, err = f.client.PeriodicJobs(ctx)
		require.NoError(t, err)
		require.Empty(t, list)
	})
}

// A process that read a schedule before it was removed and added again
// cannot claim a tick of the new one with what it read (its arguments may
// be the old ones): versions are never reused.
func TestStaleReadCannotClaimAfterRemoveAndAdd(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		f := newFleet(t, r, 1)
		ctx := t.Context()
		db := rdb.New(r.Client, r.Namespace)
		p := queue.PeriodicJob{Name: "p", Spec: "@hourly", Kind: "k", Args: 1}
		require.NoError(t, f.client.AddPeriodic(ctx, p))
		f.tick()
		stale, err := db.PeriodicAll(ctx)
		require.NoError(t, err)
		require.NoError(t, f.client.RemovePeriodic(ctx, "p"))
		p.Args = 2
		require.NoError(t, f.client.AddPeriodic(ctx, p))
		f.tick()
		fresh, err := db.PeriodicAll(ctx)
		require.NoError(t, err)
		require.Equal(t, stale["p"].Next, fresh["p"].Next, "same spec, same next tick")
		require.NotEqual(t, stale["p"].Version, fresh["p"].Version)
		res, _, err := db.PeriodicClaim(ctx, "p", stale["p"].Version, stale["p"].Next, stale["p"].Next,
			stale["p"].Next+3_600_000, true, stale["p"].Next)
		require.NoError(t, err)
		require.Equal(t, rdb.ClaimChanged, res)
	})
}
