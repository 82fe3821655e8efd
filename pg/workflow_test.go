package pg_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

type orderArgs struct {
	Order int `json:"order"`
}

type orderAttrs struct {
	Created  string   `json:"created"`
	ChargeID string   `json:"charge_id"`
	Seen     []string `json:"seen"`
}

// work starts, for the test, a drainer and a runner with pg's middleware on
// reg.
func (b *bundle) work(t *testing.T, reg *runner.Registry) {
	t.Helper()
	b.drainer(t, pg.DrainerConfig{PollInterval: 100 * time.Millisecond})
	store, err := cursor.NewRedisStore(b.redis.Client, cursor.RedisConfig{Namespace: b.redis.Namespace})
	require.NoError(t, err)
	mw, err := pg.NewMiddleware(pg.MiddlewareConfig{DB: b.pool, Schema: b.schema, Logger: quiet, Store: store})
	require.NoError(t, err)
	r, err := runner.New(runner.Config{
		Redis: b.redis.Client, Registry: reg, Namespace: b.redis.Namespace, Store: store,
		Concurrency: 4, Middleware: []runner.Middleware{mw}, Logger: quiet,
		PollInterval: 20 * time.Millisecond,
		Backoff:      func(int) time.Duration { return 10 * time.Millisecond },
	})
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, r.Stop(ctx))
	})
}

// waitStatus waits until the workflow reaches one of the final statuses and
// returns its state.
func waitDone[A, T any](t *testing.T, wf *pg.Workflow[A, T], id string) *pg.WorkflowState[A, T] {
	t.Helper()
	var st *pg.WorkflowState[A, T]
	testutil.Eventually(t, 20*time.Second, func() bool {
		var err error
		st, err = wf.Load(context.Background(), id)
		require.NoError(t, err)
		switch st.Status {
		case pg.StatusSucceeded, pg.StatusFailed, pg.StatusCancelled:
			return true
		}
		return false
	}, "workflow %s to finish", id)
	return st
}

func TestWorkflowResumesAtTheFailedStepWithItsAttributes(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := context.Background()
		b := setup(t, r)
		_, err := b.pool.Exec(ctx, `CREATE TABLE effects (step text, attempt int)`)
		require.NoError(t, err)
		var runs sync.Map // step → *atomic.Int32
		count := func(step string) int32 {
			v, _ := runs.LoadOrStore(step, new(atomic.Int32))
			return v.(*atomic.Int32).Add(1)
		}
		wf, err := pg.NewWorkflow(pg.WorkflowConfig[orderArgs, orderAttrs]{
			Name: "order", DB: b.pool, Schema: b.schema, Logger: quiet,
			Steps: []pg.Step[orderArgs, orderAttrs]{
				{Name: "create", Run: func(ctx context.Context, tx pgx.Tx, s *pg.StepContext[orderArgs, orderAttrs]) error {
					n := count("create")
					_, err := tx.Exec(ctx, `INSERT INTO effects VALUES ('create', $1)`, n)
					s.Attrs.Created = fmt.Sprintf("order %d", s.Args.Order)
					return err
				}},
				{Name: "charge", Run: func(ctx context.Context, tx pgx.Tx, s *pg.StepContext[orderArgs, orderAttrs]) error {
					n := count("charge")
					if _, err := tx.Exec(ctx, `INSERT INTO effects VALUES ('charge', $1)`, n); err != nil {
						return err
					}
					// Every attempt sees the attributes the first step saved,
					// and none of what a failed attempt set.
					s.Attrs.Seen = append(s.Attrs.Seen, fmt.Sprintf("charge %d saw %q", n, s.Attrs.Created))
					if n < 3 {
						return fmt.Errorf("card declined (attempt %d)", n)
					}
					s.Attrs.ChargeID = "ch_" + s.IdempotencyKey()
					return nil
				}},
				{Name: "receipt", Run: func(ctx context.Context, tx pgx.Tx, s *pg.StepContext[orderArgs, orderAttrs]) error {
					n := count("receipt")
					_, err := tx.Exec(ctx, `INSERT INTO effects VALUES ('receipt', $1)`, n)
					s.Attrs.Seen = append(s.Attrs.Seen, "receipt saw "+s.Attrs.ChargeID)
					return err
				}},
			},
		})
		require.NoError(t, err)
		reg := runner.NewRegistry()
		wf.Register(reg, nil)
		id, err := wf.Start(ctx, "order-7", orderArgs{Order: 7})
		require.NoError(t, err)
		b.work(t, reg)

		st := waitDone(t, wf, id)
		require.Equal(t, pg.StatusSucceeded, st.Status, st.Error)
		require.Empty(t, st.Step)
		require.Empty(t, st.Error)
		require.Equal(t, "order 7", st.Attrs.Created)
		require.Equal(t, "ch_"+id+":charge", st.Attrs.ChargeID)
		require.Equal(t, []string{`charge 3 saw "order 7"`, "receipt saw ch_" + id + ":charge"}, st.Attrs.Seen)

		rows, err := b.pool.Query(ctx, `SELECT step, attempt FROM effects ORDER BY step`)
		require.NoError(t, err)
		type effect struct {
			Step    string
			Attempt int
		}
		effects, err := pgx.CollectRows(rows, pgx.RowToStructByPos[effect])
		require.NoError(t, err)
		require.Equal(t, []effect{{"charge", 3}, {"create", 1}, {"receipt", 1}}, effects,
			"the failed attempts' work rolled back; create and receipt ran once")
		for step, want := range map[string]int32{"create": 1, "charge": 3, "receipt": 1} {
			v, _ := runs.Load(step)
			require.Equal(t, want, v.(*atomic.Int32).Load(), "runs of %s", step)
		}
	})
}

func TestWorkflowSameKeyRunsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	var runs atomic.Int32
	wf, err := pg.NewWorkflow(pg.WorkflowConfig[orderArgs, orderAttrs]{
		Name: "order", DB: b.pool, Schema: b.schema, Logger: quiet,
		Steps: []pg.Step[orderArgs, orderAttrs]{{Name: "only", Run: func(context.Context, pgx.Tx, *pg.StepContext[orderArgs, orderAttrs]) error {
			runs.Add(1)
			return nil
		}}},
	})
	require.NoError(t, err)

	// Concurrent starts with one key: one run, one id.
	const n = 4
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			ids[i], err = wf.Start(ctx, "key-1", orderArgs{Order: 1})
			require.NoError(t, err)
		})
	}
	wg.Wait()
	for i := range n {
		require.Equal(t, ids[0], ids[i])
	}
	require.Equal(t, 1, b.outboxLen(t), "one job staged")

	_, err = wf.Start(ctx, "key-1", orderArgs{Order: 2})
	require.ErrorIs(t, err, pg.ErrKeyReused)

	// A start in a transaction that rolls back starts nothing.
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	gone, err := wf.StartTx(ctx, tx, "key-2", orderArgs{Order: 2})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	_, err = wf.Load(ctx, gone)
	require.ErrorIs(t, err, pg.ErrWorkflowNotFound)

	reg := runner.NewRegistry()
	wf.Register(reg, nil)
	b.work(t, reg)
	st := waitDone(t, wf, ids[0])
	require.Equal(t, pg.StatusSucceeded, st.Status)
	again, err := wf.Start(ctx, "key-1", orderArgs{Order: 1})
	require.NoError(t, err)
	require.Equal(t, ids[0], again, "a finished run keeps its key")
	require.Equal(t, 0, b.outboxLen(t), "and starts nothing more")
	require.Equal(t, int32(1), runs.Load())
}

type childArgs struct {
	N    int  `json:"n"`
	Fail bool `json:"fail"`
}

// child is a job a workflow awaits.
type child struct {
	ran sync.Map // n → true
}

func (c *child) Perform(_ context.Context, a childArgs) error {
	c.ran.Store(a.N, true)
	if a.Fail {
		return fmt.Errorf("child %d broke", a.N)
	}
	return nil
}

func awaitFlow(t *testing.T, b *bundle, fail int, after *atomic.Int32) *pg.Workflow[orderArgs, orderAttrs] {
	t.Helper()
	wf, err := pg.NewWorkflow(pg.WorkflowConfig[orderArgs, orderAttrs]{
		Name: "fan", DB: b.pool, Schema: b.schema, Logger: quiet,
		Steps: []pg.Step[orderArgs, orderAttrs]{
			{Name: "fan-out", Run: func(ctx context.Context, _ pgx.Tx, s *pg.StepContext[orderArgs, orderAttrs]) error {
				for n := range 3 {
					if _, err := s.Await(ctx, "child", childArgs{N: n, Fail: n == fail}, &queue.EnqueueOpts{MaxAttempts: 2}); err != nil {
						return err
					}
				}
				return nil
			}},
			{Name: "after", Run: func(context.Context, pgx.Tx, *pg.StepContext[orderArgs, orderAttrs]) error {
				after.Add(1)
				return nil
			}},
		},
	})
	require.NoError(t, err)
	return wf
}

func TestWorkflowAwaitsItsJobs(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := context.Background()
		b := setup(t, r)
		var after atomic.Int32
		wf := awaitFlow(t, b, -1, &after)
		c := &child{}
		reg := runner.NewRegistry()
		wf.Register(reg, nil)
		runner.Register(reg, "child", c, nil)
		id, err := wf.Start(ctx, "fan-1", orderArgs{})
		require.NoError(t, err)
		b.work(t, reg)

		st := waitDone(t, wf, id)
		require.Equal(t, pg.StatusSucceeded, st.Status, st.Error)
		require.Equal(t, int32(1), after.Load(), "the next step ran once, after the jobs")
		require.Len(t, st.Jobs, 3)
		for _, j := range st.Jobs {
			require.Equal(t, pg.JobSucceeded, j.State, j.JobID)
			require.Equal(t, "fan-out", j.Step)
			require.False(t, j.FinishedAt.IsZero())
		}
		for n := range 3 {
			_, ran := c.ran.Load(n)
			require.True(t, ran, "child %d", n)
		}
	})
}

func TestWorkflowFailsWhenAnAwaitedJobDies(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := context.Background()
		b := setup(t, r)
		var after atomic.Int32
		wf := awaitFlow(t, b, 1, &after)
		reg := runner.NewRegistry()
		wf.Register(reg, nil)
		runner.Register(reg, "child", &child{}, nil)
		id, err := wf.Start(ctx, "fan-2", orderArgs{})
		require.NoError(t, err)
		b.work(t, reg)

		st := waitDone(t, wf, id)
		require.Equal(t, pg.StatusFailed, st.Status)
		require.Zero(t, after.Load(), "the next step never ran")
		var failed pg.AwaitedJob
		for _, j := range st.Jobs {
			if j.State == pg.JobFailed {
				failed = j
			} else {
				require.Equal(t, pg.JobSucceeded, j.State)
			}
		}
		require.NotEmpty(t, failed.JobID)
		require.Contains(t, failed.Error, "child 1 broke")
		require.Contains(t, st.Error, failed.JobID, "the workflow's error names the failed job")
		require.Contains(t, st.Error, "child 1 broke")
		require.Equal(t, "after", st.Step, "the recovery point stays at the step not run")

		// The job that ran the workflow died with that error.
		testutil.Eventually(t, 10*time.Second, func() bool {
			dead, err := b.client.SetJobs(ctx, queue.SetDead, 0, 10)
			require.NoError(t, err)
			for _, j := range dead {
				if j.Kind == "fan" && j.LastError != nil {
					require.Contains(t, j.LastError.Message, failed.JobID)
					return true
				}
			}
			return false
		}, "the workflow job in the dead set")
	})
}

func TestWorkflowEndsOnItsLastAttemptOrACancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	mk := func(name string, err error) *pg.Workflow[orderArgs, orderAttrs] {
		wf, werr := pg.NewWorkflow(pg.WorkflowConfig[orderArgs, orderAttrs]{
			Name: name, DB: b.pool, Schema: b.schema, Logger: quiet, MaxAttempts: 2,
			Steps: []pg.Step[orderArgs, orderAttrs]{
				{Name: "ok", Run: func(context.Context, pgx.Tx, *pg.StepContext[orderArgs, orderAttrs]) error { return nil }},
				{Name: "bad", Run: func(context.Context, pgx.Tx, *pg.StepContext[orderArgs, orderAttrs]) error { return err }},
			},
		})
		require.NoError(t, werr)
		return wf
	}
	failing := mk("failing", errors.New("always"))
	cancelled := mk("cancelling", iterable.Cancel(errors.New("customer left")))
	panicking := mk("panicking", nil)
	reg := runner.NewRegistry()
	failing.Register(reg, nil)
	cancelled.Register(reg, nil)
	panicking.Register(reg, nil)
	f, err := failing.Start(ctx, "k", orderArgs{})
	require.NoError(t, err)
	c, err := cancelled.Start(ctx, "k", orderArgs{})
	require.NoError(t, err)
	b.work(t, reg)

	st := waitDone(t, failing, f)
	require.Equal(t, pg.StatusFailed, st.Status)
	require.Equal(t, "bad", st.Step)
	require.Contains(t, st.Error, `step "bad": always`)
	st = waitDone(t, cancelled, c)
	require.Equal(t, pg.StatusCancelled, st.Status)
	require.Contains(t, st.Error, "customer left")
}
