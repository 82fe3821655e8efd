// Command csvimport imports a CSV export with an iterable job that survives
// a deploy part-way through the file.
//
// It writes a CSV file of 5,000 accounts (quoted fields, embedded newlines,
// non-ASCII names), enqueues an import job, quiets the worker after about
// 2,000 rows as a deploy would, and resumes the job on a second worker. The
// cursor is the byte offset after the last imported row, so the second run
// seeks straight there instead of re-reading the file. At the end it checks
// that every account was imported exactly once.
//
//	go run ./examples/csvimport
//	go run ./examples/csvimport -file /path/to/export.csv -rows 100000
//
// It needs nothing installed: it uses the Redis at REDIS_URL, or an embedded
// one when REDIS_URL is unset, and writes its CSV to a temporary directory
// unless -file is given.
package main

import (
	"context"
	"encoding/csv"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/csvrows"
	"github.com/iterjob/iterjob/internal/exampleutil"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// Account is one row of the export; gocsv fills it from the header names.
type Account struct {
	ID      int64   `csv:"id"`
	Name    string  `csv:"name"`
	Email   string  `csv:"email"`
	Balance float64 `csv:"balance"`
	Notes   string  `csv:"notes"`
}

// ImportArgs name the file to import.
type ImportArgs struct {
	Path string `json:"path"`
}

// Import imports one account per item. Its cursor (csvrows.Cursor) is
// the byte offset and line after the last imported row.
type Import struct {
	rdb     redis.UniversalClient
	key     string
	pauseAt int64
	reached chan struct{}
	once    sync.Once
}

// BuildEnumerator opens the file and seeks to the cursor.
func (j *Import) BuildEnumerator(_ context.Context, a ImportArgs, c *csvrows.Cursor) (enumerators.Enumerator[Account, csvrows.Cursor], error) {
	if c != nil {
		fmt.Printf("  resuming at byte %d (after line %d): a seek, not a re-read\n", c.Offset, c.Line)
	}
	return csvrows.FromFile[Account](a.Path, c, csvrows.Config{RequireHeader: true}), nil
}

// EachIteration "imports" an account: it counts it in Redis, so the program
// can prove no row was imported twice or skipped.
func (j *Import) EachIteration(ctx context.Context, _ ImportArgs, acc Account) error {
	if err := j.rdb.HIncrBy(ctx, j.key, strconv.FormatInt(acc.ID, 10), 1).Err(); err != nil {
		return err
	}
	if acc.ID == j.pauseAt {
		j.once.Do(func() { close(j.reached) })
	}
	return nil
}

// OnStop reports how each run ended.
func (j *Import) OnStop(ctx context.Context, _ ImportArgs, reason iterable.StopReason) error {
	info, _ := iterable.InfoFromContext(ctx)
	fmt.Printf("  run %d stopped: %s\n", info.Executions, reason)
	return nil
}

func main() {
	file := flag.String("file", "", "CSV file to write and import (default: a temporary file)")
	rows := flag.Int64("rows", 5000, "accounts to generate")
	flag.Parse()
	if err := run(context.Background(), *file, *rows); err != nil {
		fmt.Fprintln(os.Stderr, "csvimport:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, path string, rows int64) error {
	if path == "" {
		dir, err := os.MkdirTemp("", "csvimport")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "accounts.csv")
	}
	size, err := writeAccounts(path, rows)
	if err != nil {
		return err
	}
	rdb, where, closeRedis, err := exampleutil.Connect(ctx)
	if err != nil {
		return err
	}
	defer closeRedis()
	ns := "csvimport-" + queue.NewID()[:8]
	fmt.Printf("csvimport on %s\nwrote %d accounts to %s (%d bytes)\n\n", where, rows, path, size)

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	job := &Import{rdb: rdb, key: ns + ":imported", pauseAt: rows * 2 / 5, reached: make(chan struct{})}
	defer rdb.Del(context.Background(), job.key)
	reg := runner.NewRegistry()
	runner.RegisterIterable(reg, "import-accounts", job, nil)
	events := exampleutil.NewEvents()
	worker := func() (*runner.Runner, error) {
		r, err := runner.New(runner.Config{
			Redis: rdb, Registry: reg, Namespace: ns, Logger: logger, CheckpointInterval: 200 * time.Millisecond,
			OnEvent: events.Handle,
		})
		if err != nil {
			return nil, err
		}
		return r, r.Start(ctx)
	}

	client, err := queue.NewClient(rdb, queue.Config{Namespace: ns, Logger: logger})
	if err != nil {
		return err
	}
	if _, err := client.Enqueue(ctx, "import-accounts", ImportArgs{Path: path}, nil); err != nil {
		return err
	}
	w1, err := worker()
	if err != nil {
		return err
	}
	<-job.reached
	w1.Quiet()
	ev := events.Wait(jobtype.EventInterrupted)
	fmt.Printf("worker 1 quieted (a deploy): %d rows imported, %d of %d bytes read, cursor %s\n",
		ev.Progress.ItemsProcessed, ev.Progress.Done, ev.Progress.Total, ev.Progress.Cursor)
	if err := w1.Stop(ctx); err != nil {
		return err
	}

	fmt.Println("worker 2 starts")
	w2, err := worker()
	if err != nil {
		return err
	}
	ev = events.Wait(jobtype.EventSucceeded)
	if err := w2.Stop(ctx); err != nil {
		return err
	}
	fmt.Printf("import finished: %d rows over %d runs\n\n", ev.Progress.ItemsProcessed, ev.Progress.Executions)

	counts, err := rdb.HGetAll(ctx, job.key).Result()
	if err != nil {
		return err
	}
	once, repeated, missing := exampleutil.Tally(counts, rows)
	fmt.Printf("check: %d accounts imported exactly once, %d more than once, %d skipped\n", once, repeated, missing)
	if once != rows {
		return fmt.Errorf("the check failed")
	}
	return nil
}

// writeAccounts writes rows accounts with awkward but valid CSV.
func writeAccounts(path string, rows int64) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"id", "name", "email", "balance", "notes"})
	names := []string{"Zoë Ångström", "O'Brien, Pat", "李小龙", `Dwayne "The Rock"`, "Ana\nMaría"}
	for i := int64(1); i <= rows; i++ {
		notes := ""
		if i%7 == 0 {
			notes = "two-line\nnote, with a comma"
		}
		_ = w.Write([]string{strconv.FormatInt(i, 10), names[i%int64(len(names))], fmt.Sprintf("user%d@example.com", i),
			strconv.FormatFloat(float64(i)*1.25, 'f', 2, 64), notes})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	return st.Size(), f.Close()
}
