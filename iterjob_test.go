package iterjob_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob"
	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

var quiet = slog.New(slog.DiscardHandler)

type GreetArgs struct{ Name string }

func (GreetArgs) Kind() string { return "greet" }

type greet struct{ done chan string }

func (g greet) Perform(_ context.Context, a GreetArgs) error { g.done <- "hello " + a.Name; return nil }

// One Config builds a client, a store and runners that agree; a part set
// to another namespace, client or store is refused, here and where parts
// built separately meet.
func TestOneConfigBuildsPartsThatAgree(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		ctx := t.Context()
		reg := runner.NewRegistry()
		g := greet{done: make(chan string, 1)}
		runner.RegisterArgs(reg, g, nil)
		sys, err := iterjob.New(iterjob.Config{Redis: r.Client, Namespace: r.Namespace, Logger: quiet, Registry: reg})
		require.NoError(t, err)
		run, err := sys.NewRunner(runner.Config{Concurrency: 2, PollInterval: 50 * time.Millisecond})
		require.NoError(t, err)
		require.NoError(t, run.Start(ctx))
		t.Cleanup(func() { _ = run.Stop(context.Background()) })

		_, err = sys.Client().EnqueueArgs(ctx, GreetArgs{Name: "ada"}, nil)
		require.NoError(t, err)
		select {
		case got := <-g.done:
			require.Equal(t, "hello ada", got)
		case <-time.After(10 * time.Second):
			t.Fatal("the job never ran")
		}
		_, err = sys.Client().Enqueue(ctx, "gret", GreetArgs{}, nil)
		require.ErrorIs(t, err, queue.ErrUnknownKind)
		require.Equal(t, r.Namespace, sys.Store().Namespace())

		_, err = sys.NewRunner(runner.Config{Namespace: "other"})
		require.ErrorIs(t, err, iterjob.ErrNamespaceMismatch)
		_, err = sys.NewRunner(runner.Config{Store: cursor.NewMemoryStore()})
		require.ErrorIs(t, err, iterjob.ErrNamespaceMismatch)

		// Parts built one by one are checked where they meet.
		otherStore, err := cursor.NewRedisStore(r.Client, cursor.RedisConfig{Namespace: "other"})
		require.NoError(t, err)
		_, err = runner.New(runner.Config{Redis: r.Client, Registry: reg, Namespace: r.Namespace, Store: otherStore})
		require.ErrorIs(t, err, queue.ErrNamespaceMismatch)
		_, err = queue.NewClient(r.Client, queue.Config{Namespace: r.Namespace, JobData: otherStore})
		require.ErrorIs(t, err, queue.ErrNamespaceMismatch)
		_, err = queue.NewClient(r.Client, queue.Config{JobData: otherStore})
		require.ErrorIs(t, err, queue.ErrNamespaceMismatch, "the default namespace is checked too")
	})
}

// Build a deployment's parts from one set of settings.
func Example() {
	mr := miniredis.NewMiniRedis()
	_ = mr.Start()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	reg := runner.NewRegistry()
	runner.RegisterArgs(reg, greet{done: make(chan string, 1)}, nil)
	sys, _ := iterjob.New(iterjob.Config{Redis: rdb, Namespace: "shop", Registry: reg})

	res, _ := sys.Client().EnqueueArgs(context.Background(), GreetArgs{Name: "ada"}, nil)
	fmt.Println(res.Job.Kind)
	_, err := sys.NewRunner(runner.Config{Namespace: "shop-v2"})
	fmt.Println(err)
	// Output:
	// greet
	// iterjob: namespace mismatch: runner.Config.Namespace "shop-v2", system "shop"
}
