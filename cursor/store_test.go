package cursor_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
)

// storeContract is what every Store must do.
func storeContract(t *testing.T, s cursor.Store) {
	ctx := t.Context()

	_, err := s.Load(ctx, "job1")
	require.ErrorIs(t, err, cursor.ErrNotFound)

	st, err := s.Begin(ctx, "job1", 1)
	require.NoError(t, err)
	require.Equal(t, 1, st.Executions)
	require.Equal(t, int64(1), st.Run)
	require.Nil(t, st.Cursor)
	require.False(t, st.FirstStartedAt.IsZero())
	require.Equal(t, int64(-1), st.ProgressTotal, "no progress known yet")

	st.Cursor = json.RawMessage(`{"id":42,"name":"Zoë"}`)
	st.ItemsProcessed = 42
	st.Started = true
	st.RunTime = 1500 * time.Millisecond
	st.LastCheckpointAt = time.Now()
	st.Status = cursor.StatusInterrupted
	st.TimesInterrupted = 1
	st.ProgressDone, st.ProgressTotal, st.ProgressUnit = 42, 100, "items"
	require.NoError(t, s.Save(ctx, "job1", 1, st))

	got, err := s.Load(ctx, "job1")
	require.NoError(t, err)
	require.JSONEq(t, string(st.Cursor), string(got.Cursor))
	require.Equal(t, int64(42), got.ItemsProcessed)
	require.True(t, got.Started)
	require.Equal(t, st.RunTime, got.RunTime)
	require.Equal(t, st.LastCheckpointAt.UnixMilli(), got.LastCheckpointAt.UnixMilli())
	require.Equal(t, cursor.StatusInterrupted, got.Status)
	require.Equal(t, 1, got.TimesInterrupted)
	require.Equal(t, int64(100), got.ProgressTotal)

	// The next run claims the state and sees what the last one saved.
	st2, err := s.Begin(ctx, "job1", 2)
	require.NoError(t, err)
	require.Equal(t, 2, st2.Executions)
	require.JSONEq(t, string(st.Cursor), string(st2.Cursor))
	require.Equal(t, st.FirstStartedAt.UnixMilli(), got.FirstStartedAt.UnixMilli())

	// Fencing: the older run can neither write nor claim again.
	st.Cursor = json.RawMessage(`{"id":7,"name":"old"}`)
	err = s.Save(ctx, "job1", 1, st)
	require.ErrorIs(t, err, cursor.ErrStaleRun)
	_, err = s.Begin(ctx, "job1", 2)
	require.ErrorIs(t, err, cursor.ErrStaleRun, "a run claims only once")
	_, err = s.Begin(ctx, "job1", 1)
	require.ErrorIs(t, err, cursor.ErrStaleRun)
	got, err = s.Load(ctx, "job1")
	require.NoError(t, err)
	require.JSONEq(t, `{"id":42,"name":"Zoë"}`, string(got.Cursor), "the stale write changed nothing")

	// Save never claims: a run that did not Begin cannot write.
	require.ErrorIs(t, s.Save(ctx, "job2", 1, st), cursor.ErrStaleRun)

	// Leases are microsecond clock readings, about 1.8e15: runs one apart
	// are told apart exactly (Lua prints such numbers with "%.14g").
	const big = int64(1_795_842_162_744_872)
	_, err = s.Begin(ctx, "job3", big)
	require.NoError(t, err)
	_, err = s.Begin(ctx, "job3", big+1)
	require.NoError(t, err)
	_, err = s.Begin(ctx, "job3", big+1)
	require.ErrorIs(t, err, cursor.ErrStaleRun)
	require.ErrorIs(t, s.Save(ctx, "job3", big, st), cursor.ErrStaleRun)
	require.NoError(t, s.Save(ctx, "job3", big+1, st))
	got, err = s.Load(ctx, "job3")
	require.NoError(t, err)
	require.Equal(t, big+1, got.Run)
	require.NoError(t, s.Delete(ctx, "job3"))

	require.NoError(t, s.Delete(ctx, "job1"))
	_, err = s.Load(ctx, "job1")
	require.ErrorIs(t, err, cursor.ErrNotFound)
}

func TestMemoryStore(t *testing.T) {
	t.Parallel()
	storeContract(t, cursor.NewMemoryStore())
}

func TestRedisStore(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		s, err := cursor.NewRedisStore(r.Client, cursor.RedisConfig{Namespace: r.Namespace})
		require.NoError(t, err)
		storeContract(t, s)
	})
}

func TestRedisStoreRefreshesTTLOnEverySave(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		s, err := cursor.NewRedisStore(r.Client, cursor.RedisConfig{Namespace: r.Namespace, StateTTL: time.Hour, CompletedTTL: time.Minute})
		require.NoError(t, err)
		key := rdb.NewKeys(r.Namespace).Iter("j")
		st, err := s.Begin(ctx, "j", 1)
		require.NoError(t, err)
		r.Client.PExpire(ctx, key, time.Second) // as if most of the TTL had passed
		require.NoError(t, s.Save(ctx, "j", 1, st))
		ttl := r.Client.PTTL(ctx, key).Val()
		require.Greater(t, ttl, 59*time.Minute, "a checkpoint renews the TTL")
		st.Status = cursor.StatusCompleted
		require.NoError(t, s.Save(ctx, "j", 1, st))
		ttl = r.Client.PTTL(ctx, key).Val()
		require.LessOrEqual(t, ttl, time.Minute, "a completed job's state keeps the shorter TTL")
		require.Greater(t, ttl, 50*time.Second)
	})
}

func TestRedisStoreCorruptState(t *testing.T) {
	t.Parallel()
	r := testutil.Miniredis(t)
	s, err := cursor.NewRedisStore(r.Client, cursor.RedisConfig{Namespace: r.Namespace})
	require.NoError(t, err)
	r.Client.HSet(t.Context(), rdb.NewKeys(r.Namespace).Iter("j"), "items_processed", "lots")
	_, err = s.Load(t.Context(), "j")
	require.ErrorContains(t, err, "items_processed")
}

// Restore writes a run's whole state only where Redis lost it: it never
// overwrites state, and never takes state another run owns.
func TestRedisStoreRestore(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		s, err := cursor.NewRedisStore(r.Client, cursor.RedisConfig{Namespace: r.Namespace})
		require.NoError(t, err)
		var _ cursor.Restorer = s
		st, err := s.Begin(ctx, "j", 7)
		require.NoError(t, err)
		st.Cursor, st.ItemsProcessed, st.Started, st.Status = []byte("40"), 40, true, cursor.StatusRunning
		st.LastCheckpointAt = time.Now()

		restored, err := s.Restore(ctx, "j", 7, st)
		require.NoError(t, err)
		require.False(t, restored, "the run's own state is there: nothing to do")
		_, err = s.Restore(ctx, "j", 6, st)
		require.ErrorIs(t, err, cursor.ErrStaleRun)

		require.NoError(t, r.Client.Del(ctx, rdb.NewKeys(r.Namespace).Iter("j")).Err()) // lost
		require.ErrorIs(t, s.Save(ctx, "j", 7, st), cursor.ErrStaleRun, "Save never creates state")
		restored, err = s.Restore(ctx, "j", 7, st)
		require.NoError(t, err)
		require.True(t, restored)
		got, err := s.Load(ctx, "j")
		require.NoError(t, err)
		require.Equal(t, int64(7), got.Run)
		require.Equal(t, 1, got.Executions)
		require.Equal(t, st.FirstStartedAt.UnixMilli(), got.FirstStartedAt.UnixMilli())
		require.JSONEq(t, "40", string(got.Cursor))
		require.Equal(t, int64(40), got.ItemsProcessed)
		require.True(t, got.Started)
		require.Greater(t, r.Client.PTTL(ctx, rdb.NewKeys(r.Namespace).Iter("j")).Val(), time.Hour)
		require.NoError(t, s.Save(ctx, "j", 7, got), "the run saves again")
		_, err = s.Begin(ctx, "j", 8)
		require.NoError(t, err, "and a later run claims it as usual")
	})
}
