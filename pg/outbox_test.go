package pg_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/queue"
)

type emailArgs struct {
	To string `json:"to"`
}

func TestEnqueueTxCommitAndRollback(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := context.Background()
		b := setup(t, r)
		s := pg.Schema(b.schema)

		var committed, rolledBack string
		require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			var err error
			committed, err = s.EnqueueTx(ctx, tx, "email", emailArgs{To: "ada@example.com"}, &queue.EnqueueOpts{Meta: map[string]string{"tenant": "acme"}})
			return err
		}))
		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		rolledBack, err = s.EnqueueTx(ctx, tx, "email", emailArgs{To: "zoe@example.com"}, nil)
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(ctx))
		require.Len(t, committed, 24)
		require.NotEqual(t, committed, rolledBack)
		require.Equal(t, 1, b.outboxLen(t), "only the committed job is staged")

		b.drainer(t, pg.DrainerConfig{})
		testutil.Eventually(t, 10*time.Second, func() bool { return b.outboxLen(t) == 0 }, "the outbox to drain")
		jobs, err := b.client.QueueJobs(ctx, queue.QueueDefault, 0, 10)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		j := jobs[0]
		require.Equal(t, committed, j.ID, "the job keeps the id EnqueueTx returned")
		require.Equal(t, "email", j.Kind)
		require.JSONEq(t, `{"to":"ada@example.com"}`, string(j.Args))
		require.Equal(t, "acme", j.Meta["tenant"])
	})
}

func TestEnqueueManyTx(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := context.Background()
		b := setup(t, r)
		at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		var ids []string
		require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			var err error
			ids, err = pg.Schema(b.schema).EnqueueManyTx(ctx, tx, []queue.Params{
				{Kind: "email", Args: emailArgs{To: "a"}},
				{Kind: "email", Args: json.RawMessage(`{"to": "b", "z": [1, 2]}`), Opts: &queue.EnqueueOpts{Queue: "mail", MaxAttempts: 3}},
				{Kind: "report", Args: nil, Opts: &queue.EnqueueOpts{At: at}},
			})
			return err
		}))
		require.Len(t, ids, 3)
		b.drainer(t, pg.DrainerConfig{})
		testutil.Eventually(t, 10*time.Second, func() bool { return b.outboxLen(t) == 0 }, "the outbox to drain")

		def, err := b.client.QueueJobs(ctx, queue.QueueDefault, 0, 10)
		require.NoError(t, err)
		require.Len(t, def, 1)
		require.Equal(t, ids[0], def[0].ID)
		mail, err := b.client.QueueJobs(ctx, "mail", 0, 10)
		require.NoError(t, err)
		require.Len(t, mail, 1)
		require.Equal(t, ids[1], mail[0].ID)
		require.Equal(t, `{"to": "b", "z": [1, 2]}`, string(mail[0].Args), "raw args keep their text")
		require.Equal(t, 3, mail[0].MaxAttempts)
		sched, err := b.client.SetJobs(ctx, queue.SetScheduled, 0, 10)
		require.NoError(t, err)
		require.Len(t, sched, 1)
		require.Equal(t, ids[2], sched[0].ID)
		require.True(t, sched[0].At.Equal(at), "due at %v, want %v", sched[0].At, at)
	})
}

func TestEnqueueTxRefusesWhatTheQueueWould(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	s := pg.Schema(b.schema)
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)

	_, err = s.EnqueueTx(ctx, tx, "email", nil, &queue.EnqueueOpts{UniqueKey: "once"})
	require.ErrorIs(t, err, pg.ErrUniqueKeyUnsupported)
	_, err = s.EnqueueTx(ctx, tx, "bad kind", nil, nil)
	require.ErrorIs(t, err, pg.ErrInvalidJob)
	_, err = s.EnqueueTx(ctx, tx, "email", nil, &queue.EnqueueOpts{Queue: "a/b"})
	require.ErrorIs(t, err, pg.ErrInvalidJob)
	_, err = s.EnqueueTx(ctx, tx, "email", json.RawMessage(`{`), nil)
	require.ErrorIs(t, err, pg.ErrInvalidJob)
	_, err = s.EnqueueManyTx(ctx, tx, []queue.Params{{Kind: "ok"}, {Kind: "email", Opts: &queue.EnqueueOpts{MaxAttempts: -1}}})
	require.ErrorIs(t, err, pg.ErrInvalidJob)
	require.ErrorContains(t, err, "job 2 of 2")
	var n int
	require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&n))
	require.Zero(t, n, "nothing staged")
}

// A drainer that dies after pushing and before deleting leaves the rows for
// the next one, which pushes them again: that second push must add nothing.
func TestDrainerRepushAddsNoJob(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := context.Background()
		b := setup(t, r)
		var ids []string
		require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			var err error
			ids, err = pg.Schema(b.schema).EnqueueManyTx(ctx, tx, []queue.Params{{Kind: "a"}, {Kind: "b"}, {Kind: "c"}})
			return err
		}))
		// The first drainer's push, without its delete.
		require.NoError(t, pg.PushStaged(ctx, b.pool, b.schema, b.client))
		require.Equal(t, 3, b.outboxLen(t))
		// The next drainer.
		b.drainer(t, pg.DrainerConfig{})
		testutil.Eventually(t, 10*time.Second, func() bool { return b.outboxLen(t) == 0 }, "the outbox to drain")
		got := b.queued(t, queue.QueueDefault)
		require.Equal(t, map[string]int{ids[0]: 1, ids[1]: 1, ids[2]: 1}, got)
	})
}

// The second push adds nothing even when the first pushed job has finished
// meanwhile (here: deleted from its queue), so a job is never run twice.
func TestDrainerRepushAfterTheJobFinishedAddsNoJob(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := context.Background()
		b := setup(t, r)
		var id string
		require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			var err error
			id, err = pg.Schema(b.schema).EnqueueTx(ctx, tx, "a", nil, nil)
			return err
		}))
		require.NoError(t, pg.PushStaged(ctx, b.pool, b.schema, b.client))
		require.NoError(t, b.client.DeleteQueued(ctx, queue.QueueDefault, id), "the pushed job finished")
		require.NoError(t, pg.PushStaged(ctx, b.pool, b.schema, b.client))
		require.Empty(t, b.queued(t, queue.QueueDefault), "the row was pushed again as a new job")
	})
}

func TestDrainerOneActiveAtATime(t *testing.T) {
	t.Parallel()
	b := setup(t, testutil.Miniredis(t))
	mk := func() *pg.Drainer {
		d, err := pg.NewDrainer(pg.DrainerConfig{DB: b.pool, Client: b.client, Schema: b.schema, StandbyInterval: 20 * time.Millisecond, Logger: quiet})
		require.NoError(t, err)
		require.NoError(t, d.Start(context.Background()))
		return d
	}
	d1, d2 := mk(), mk()
	defer d2.Stop(context.Background())
	testutil.Eventually(t, 10*time.Second, func() bool { return d1.Active() || d2.Active() }, "a drainer to become active")
	active, standby := d1, d2
	if d2.Active() {
		active, standby = d2, d1
	}
	// Give the standby many tries at the lock: it must not get it.
	for range 10 {
		time.Sleep(20 * time.Millisecond)
		require.False(t, standby.Active(), "two active drainers")
	}
	require.NoError(t, active.Stop(context.Background()))
	testutil.Eventually(t, 10*time.Second, standby.Active, "the standby to take over")
	if active == d2 {
		require.NoError(t, d1.Stop(context.Background()))
	}
}

// Without a notification (the trigger disabled), the drainer still finds
// committed rows by polling.
func TestDrainerPollsWithoutNotification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testutil.Miniredis(t))
	_, err := b.pool.Exec(ctx, "ALTER TABLE outbox DISABLE TRIGGER outbox_notify")
	require.NoError(t, err)
	d := b.drainer(t, pg.DrainerConfig{PollInterval: 50 * time.Millisecond})
	testutil.Eventually(t, 10*time.Second, d.Active, "the drainer to become active")
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := pg.Schema(b.schema).EnqueueTx(ctx, tx, "email", nil, nil)
		return err
	}))
	testutil.Eventually(t, 10*time.Second, func() bool { return b.outboxLen(t) == 0 }, "the poll to drain the outbox")
	require.Len(t, b.queued(t, queue.QueueDefault), 1)
}
