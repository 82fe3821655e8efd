// Command quickstart shows an iterable job surviving a deploy.
//
// It enqueues a job that indexes 1,000 documents, starts a worker, and
// quiets the worker part-way through, as a deploy does (SIGTSTP). The job
// saves its cursor and goes back to its queue. A second worker, the process
// after the deploy, resumes the job from that cursor and finishes it. At the
// end the program checks that every document was indexed exactly once.
//
//	go run ./examples/quickstart
//
// It uses the Redis at REDIS_URL, or an embedded one when REDIS_URL is unset.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob"
	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/internal/exampleutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// ReindexArgs are the job's arguments. They name the job's kind, so
// registration and enqueue cannot disagree about it.
type ReindexArgs struct {
	Tenant string `json:"tenant"`
	Docs   int64  `json:"docs"`
}

// Kind names the job kind of these arguments.
func (ReindexArgs) Kind() string { return "reindex" }

// Reindex indexes documents 1..Docs of a tenant, one per item. Its cursor is
// the next document id.
type Reindex struct {
	rdb     redis.UniversalClient
	key     string        // where the "index" counts each document
	reached chan struct{} // closed once 400 documents are indexed
	once    sync.Once
}

// BuildEnumerator resumes at the cursor (nil on the first run).
func (j *Reindex) BuildEnumerator(_ context.Context, a ReindexArgs, next *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(1, a.Docs+1, next), nil
}

// EachIteration indexes one document. Counting with HINCRBY lets the program
// prove at the end that no document was indexed twice or skipped.
func (j *Reindex) EachIteration(ctx context.Context, a ReindexArgs, doc int64) error {
	time.Sleep(time.Millisecond) // the "work"
	if err := j.rdb.HIncrBy(ctx, j.key, strconv.FormatInt(doc, 10), 1).Err(); err != nil {
		return err
	}
	if doc == 400 {
		j.once.Do(func() { close(j.reached) })
	}
	return nil
}

// OnStart runs on the job's first run only.
func (j *Reindex) OnStart(ctx context.Context, a ReindexArgs) error {
	fmt.Printf("  OnStart: indexing %d documents of %s\n", a.Docs, a.Tenant)
	return nil
}

// OnResume runs at the start of every later run.
func (j *Reindex) OnResume(ctx context.Context, a ReindexArgs) error {
	info, _ := iterable.InfoFromContext(ctx)
	fmt.Printf("  OnResume: run %d, %d documents already indexed\n", info.Executions, info.ItemsProcessed)
	return nil
}

// OnStop runs at the end of every run.
func (j *Reindex) OnStop(_ context.Context, _ ReindexArgs, reason iterable.StopReason) error {
	fmt.Printf("  OnStop: %s\n", reason)
	return nil
}

// OnComplete runs once the enumeration is exhausted.
func (j *Reindex) OnComplete(context.Context, ReindexArgs) error {
	fmt.Println("  OnComplete: all documents indexed")
	return nil
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	rdb, where, closeRedis, err := exampleutil.Connect(ctx)
	if err != nil {
		return err
	}
	defer closeRedis()
	ns := "quickstart-" + queue.NewID()[:8]
	defer cleanup(rdb, ns)
	fmt.Printf("iterjob quickstart on %s, namespace %s\n\n", where, ns)

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	job := &Reindex{rdb: rdb, key: ns + ":index", reached: make(chan struct{})}
	reg := runner.NewRegistry()
	runner.RegisterIterableArgs(reg, job, nil) // kind "reindex", from ReindexArgs

	// One set of settings for the client, the cursor store and the workers.
	sys, err := iterjob.New(iterjob.Config{Redis: rdb, Namespace: ns, Logger: logger, Registry: reg})
	if err != nil {
		return err
	}

	events := exampleutil.NewEvents()
	newWorker := func() (*runner.Runner, error) {
		return sys.NewRunner(runner.Config{
			Concurrency: 2, CheckpointInterval: 100 * time.Millisecond,
			OnEvent: events.Handle,
		})
	}

	client := sys.Client()
	res, err := client.EnqueueArgs(ctx, ReindexArgs{Tenant: "acme", Docs: 1000}, nil)
	if err != nil {
		return err
	}
	fmt.Printf("enqueued reindex job %s\n\n", res.Job.ID)

	fmt.Println("worker 1 starts")
	w1, err := newWorker()
	if err != nil {
		return err
	}
	if err := w1.Start(ctx); err != nil {
		return err
	}
	<-job.reached
	fmt.Println("worker 1 is told to quiet, as on a deploy (SIGTSTP): the job stops at its next item")
	w1.Quiet()
	ev := events.Wait(jobtype.EventInterrupted)
	fmt.Printf("job interrupted after %d documents; cursor %s saved; job back at the head of its queue\n",
		ev.Progress.ItemsProcessed, ev.Progress.Cursor)
	if err := w1.Stop(ctx); err != nil {
		return err
	}
	store, err := cursor.NewRedisStore(rdb, cursor.RedisConfig{Namespace: ns})
	if err != nil {
		return err
	}
	st, err := store.Load(ctx, res.Job.ID)
	if err != nil {
		return err
	}
	fmt.Printf("saved state in Redis: cursor=%s items_processed=%d times_interrupted=%d status=%s\n\n",
		st.Cursor, st.ItemsProcessed, st.TimesInterrupted, st.Status)

	fmt.Println("worker 2 starts (the new process after the deploy)")
	w2, err := newWorker()
	if err != nil {
		return err
	}
	if err := w2.Start(ctx); err != nil {
		return err
	}
	ev = events.Wait(jobtype.EventSucceeded)
	if err := w2.Stop(ctx); err != nil {
		return err
	}
	fmt.Printf("job succeeded: %d documents over %d runs, interrupted %d time(s)\n\n",
		ev.Progress.ItemsProcessed, ev.Progress.Executions, ev.Progress.TimesInterrupted)

	counts, err := rdb.HGetAll(ctx, job.key).Result()
	if err != nil {
		return err
	}
	once, repeated, missing := exampleutil.Tally(counts, 1000)
	fmt.Printf("check: %d documents indexed exactly once, %d indexed more than once, %d skipped\n", once, repeated, missing)
	if once != 1000 {
		return fmt.Errorf("the check failed")
	}
	return nil
}

func cleanup(rdb redis.UniversalClient, ns string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, "{"+ns+"}:*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
	rdb.Del(ctx, ns+":index")
}
