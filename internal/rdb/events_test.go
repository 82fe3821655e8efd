package rdb_test

import (
	"encoding/json"

	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/internal/testutil"
)

// batch returns a JSON array of n small event objects.
func batch(n int, kind string) string {
	evs := make([]string, n)
	for i := range evs {
		evs[i] = `{"type":"enqueued","jid":"j","kind":"` + kind + `"}`
	}
	return "[" + strings.Join(evs, ",") + "]"
}

// The stream keeps the newest EventsMax events, counted in events, not
// entries: whole batches go, oldest first, and a batch larger than the cap
// stays on its own (a subscriber must never see half a batch).
func TestEventsStreamTrimsWholeBatchesToTheEventsItKeeps(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		db := rdb.New(r.Client, r.Namespace)
		db.EventsMax = 10
		kinds := func() []string {
			bs, err := db.ReadEvents(ctx, "0", 100, 0)
			require.NoError(t, err)
			var out []string
			for _, b := range bs {
				out = append(out, b.Events[strings.Index(b.Events, `"kind":"`)+8:][:1])
			}
			return out
		}

		for _, k := range []string{"a", "b"} {
			require.NoError(t, db.AppendEvents(ctx, batch(4, k)))
		}
		require.Equal(t, []string{"a", "b"}, kinds(), "8 events: nothing to trim")

		require.NoError(t, db.AppendEvents(ctx, batch(4, "c")))
		require.Equal(t, []string{"b", "c"}, kinds(), "12 events: the oldest batch goes")

		require.NoError(t, db.AppendEvents(ctx, batch(2, "d")))
		require.Equal(t, []string{"b", "c", "d"}, kinds(), "10 events: at the cap, kept")

		require.NoError(t, db.AppendEvents(ctx, batch(15, "e")))
		require.Equal(t, []string{"e"}, kinds(), "a batch above the cap is kept alone")

		require.NoError(t, db.AppendEvents(ctx, batch(1, "f")))
		require.Equal(t, []string{"f"}, kinds())
		n, err := r.Client.LLen(ctx, db.Keys.EventsIndex()).Result()
		require.NoError(t, err)
		require.EqualValues(t, 1, n, "the index follows the stream")
	})
}

// An entry's events travel in pieces (the events a call carried from
// earlier, then its own), read back as one array in the order written;
// entries written as one array before pieces existed read the same.
func TestEventsEntryPiecesReadAsOneArrayInOrder(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		db := rdb.New(r.Client, r.Namespace)
		piece := func(k string) string { b := batch(2, k); return b[1 : len(b)-1] }
		require.NoError(t, r.Client.XAdd(ctx, &redis.XAddArgs{Stream: db.Keys.Events(),
			Values: []any{"n", 6, "e", piece("a"), "e2", piece("b"), "e3", piece("c")}}).Err())
		require.NoError(t, r.Client.XAdd(ctx, &redis.XAddArgs{Stream: db.Keys.Events(),
			Values: []any{"n", 2, "e", batch(2, "d")}}).Err())
		bs, err := db.ReadEvents(ctx, "0", 10, 0)
		require.NoError(t, err)
		require.Len(t, bs, 2)
		var evs []struct{ Kind string }
		require.NoError(t, json.Unmarshal([]byte(bs[0].Events), &evs))
		var kinds []string
		for _, e := range evs {
			kinds = append(kinds, e.Kind)
		}
		require.Equal(t, []string{"a", "a", "b", "b", "c", "c"}, kinds)
		require.NoError(t, json.Unmarshal([]byte(bs[1].Events), &evs))
		require.Len(t, evs, 2)
		require.Equal(t, "d", evs[0].Kind)
	})
}
