package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iterjob/iterjob/queue"
)

// Defaults for DrainerConfig.
const (
	// DrainBatchDefault is how many staged jobs one drain step reads, pushes
	// and deletes.
	DrainBatchDefault = 2000
	// DrainPollDefault is how long an active drainer waits for a
	// notification before it looks at the outbox anyway.
	DrainPollDefault = time.Second
	// DrainStandbyDefault is how often a standby drainer tries to become the
	// active one: the longest the outbox goes undrained after the active
	// drainer's process dies (plus the time PostgreSQL takes to notice).
	DrainStandbyDefault = time.Second
	// drainRetryMax caps the wait between attempts after an error.
	drainRetryMax = 5 * time.Second
)

// DrainerConfig configures a Drainer. DB and Client are required.
type DrainerConfig struct {
	// DB is the pool the outbox is read through. The drainer takes one
	// connection out of it for as long as it runs (it holds the advisory
	// lock and listens on that connection) and closes it when it stops.
	// Required.
	DB *pgxpool.Pool
	// Client pushes the jobs to Redis, each under the id EnqueueTx returned
	// (a second push within the client's IDRetention adds nothing). A
	// client with queue.Config.Kinds refuses a batch holding a kind it does
	// not know, and the drainer then retries that batch until a deploy
	// teaches the client the kind: give the drainer a client without Kinds
	// unless it knows every kind your transactions stage. Required.
	Client *queue.Client
	// Schema holds the outbox table. Default SchemaDefault.
	Schema string
	// BatchSize: see DrainBatchDefault. Zero means the default.
	BatchSize int
	// PollInterval: see DrainPollDefault. Zero means the default.
	PollInterval time.Duration
	// StandbyInterval: see DrainStandbyDefault. Zero means the default.
	StandbyInterval time.Duration
	// Logger receives the drainer's logs. Default slog.Default().
	Logger *slog.Logger
}

func (c DrainerConfig) withDefaults() DrainerConfig {
	c.Schema = schemaOr(c.Schema)
	if c.BatchSize == 0 {
		c.BatchSize = DrainBatchDefault
	}
	if c.PollInterval == 0 {
		c.PollInterval = DrainPollDefault
	}
	if c.StandbyInterval == 0 {
		c.StandbyInterval = DrainStandbyDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c DrainerConfig) validate() error {
	var errs []error
	if c.DB == nil {
		errs = append(errs, errors.New("a pool (DB) is required"))
	}
	if c.Client == nil {
		errs = append(errs, errors.New("a queue client (Client) is required"))
	}
	if err := checkSchema(c.Schema); err != nil {
		errs = append(errs, err)
	}
	if c.BatchSize < 0 || c.PollInterval < 0 || c.StandbyInterval < 0 {
		errs = append(errs, errors.New("BatchSize, PollInterval and StandbyInterval must not be negative"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("pg: invalid drainer config: %w", errors.Join(errs...))
	}
	return nil
}

// ErrDrainerStarted is returned by Start on a drainer already started.
var ErrDrainerStarted = errors.New("pg: drainer already started")

// Drainer moves committed staged jobs from the outbox to Redis.
//
// Every process may run one; one at a time is active. The active drainer
// holds a session-level advisory lock (one key per schema) on a connection
// of its own, so the lock goes when its process or connection dies, and a
// standby drainer takes it over within StandbyInterval. One active drainer
// rather than several sharing rows through FOR UPDATE SKIP LOCKED keeps the
// pushes in staging order, makes every batch full, and needs one listening
// connection instead of one per process.
//
// The active drainer LISTENs for the notification the outbox's insert
// trigger sends at commit, reads the outbox in id order, BatchSize rows at
// a time, pushes the rows to Redis in one call and deletes them; it looks
// at the outbox every PollInterval too, should a notification be missed.
// After a crash between a push and its delete, the next drainer pushes the
// rows again; the pusher makes that second push a no-op (see push.go for
// the interim's limits).
type Drainer struct {
	cfg  DrainerConfig
	q    *sqls
	push pusher

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}

	active atomic.Bool
	pushed atomic.Int64
}

// NewDrainer returns a drainer; Start runs it.
func NewDrainer(cfg DrainerConfig) (*Drainer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Drainer{
		cfg:  cfg,
		q:    queries(cfg.Schema),
		push: &clientPusher{c: cfg.Client, log: cfg.Logger},
	}, nil
}

// Start checks that the outbox exists and starts the drainer in the
// background: it stands by until it is the active drainer, then drains.
// ctx bounds only the start-up.
func (d *Drainer) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done != nil {
		return ErrDrainerStarted
	}
	if _, err := d.cfg.DB.Exec(ctx, "SELECT 1 FROM "+pgx.Identifier{d.cfg.Schema, "outbox"}.Sanitize()+" LIMIT 0"); err != nil {
		return fmt.Errorf("pg: drainer: no outbox in schema %s (run pg.Migrate): %w", d.cfg.Schema, err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel, d.done = cancel, make(chan struct{})
	go d.run(runCtx)
	return nil
}

// Stop stops the drainer and waits for it, or for ctx. A push in progress
// is abandoned; its rows stay in the outbox for the next drainer. Stop on a
// drainer never started returns nil.
func (d *Drainer) Stop(ctx context.Context) error {
	d.mu.Lock()
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pg: drainer stop: %w", context.Cause(ctx))
	}
}

// Active reports whether this drainer is the active one.
func (d *Drainer) Active() bool { return d.active.Load() }

// Pushed returns how many staged jobs this drainer has pushed and deleted.
func (d *Drainer) Pushed() int64 { return d.pushed.Load() }

func (d *Drainer) run(ctx context.Context) {
	defer close(d.done)
	wait := 50 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := d.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > drainRetryMax {
			wait = 50 * time.Millisecond
		}
		d.cfg.Logger.ErrorContext(ctx, "pg: drainer lost its connection; reconnecting", slog.Any("error", err), slog.Duration("wait", wait))
		sleep(ctx, wait)
		wait = min(wait*2, drainRetryMax)
	}
}

// session takes a connection, stands by on it until it holds the drain lock,
// then drains until ctx ends or the connection fails. Closing the connection
// releases the lock.
func (d *Drainer) session(ctx context.Context) error {
	pc, err := d.cfg.DB.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	conn := pc.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	key := lockKey("drain", d.cfg.Schema)
	for {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil {
			return fmt.Errorf("try the drain lock: %w", err)
		}
		if ok {
			break
		}
		if !sleep(ctx, d.cfg.StandbyInterval) {
			return nil
		}
	}
	d.active.Store(true)
	defer d.active.Store(false)
	d.cfg.Logger.InfoContext(ctx, "pg: drainer active", slog.String("schema", d.cfg.Schema))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{notifyChannel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	for {
		if err := d.drain(ctx, conn); err != nil {
			return err
		}
		if err := d.await(ctx, conn); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// await waits for a notification for this schema, at most PollInterval.
func (d *Drainer) await(ctx context.Context, conn *pgx.Conn) error {
	wctx, cancel := context.WithTimeout(ctx, d.cfg.PollInterval)
	defer cancel()
	for {
		n, err := conn.WaitForNotification(wctx)
		if err != nil {
			if wctx.Err() != nil {
				return nil // the poll interval passed, or the drainer is stopping
			}
			return fmt.Errorf("wait for notification: %w", err)
		}
		if n.Payload == d.cfg.Schema {
			return nil
		}
	}
}

// drain pushes and deletes every committed row, a batch at a time. While a
// batch is pushed to Redis, the delete of the batch before it and the read
// of the batch after it (one round trip) run on PostgreSQL. A pass starts
// from the lowest id; later reads continue after the last id read, so that
// the index entries of rows just deleted are not walked again. A row that
// commits during the pass with an id below that (its id was drawn before
// the commit of rows after it) is read by the next pass, which its commit's
// notification starts.
func (d *Drainer) drain(ctx context.Context, conn *pgx.Conn) error {
	jobs, err := d.read(ctx, conn, nil, 0)
	if err != nil {
		return err
	}
	var done []int64 // pushed rows not deleted yet
	for len(jobs) > 0 {
		pctx, cancel := context.WithCancel(ctx)
		pushed := make(chan error, 1)
		go func() { pushed <- d.pushRetrying(pctx, jobs) }()
		var next []staged
		err := error(nil)
		if len(jobs) == d.cfg.BatchSize {
			next, err = d.read(ctx, conn, done, jobs[len(jobs)-1].rowID)
		} else if len(done) > 0 {
			err = d.delete(ctx, conn, done)
		}
		if err != nil {
			cancel() // the rows stay; the next session pushes them again
		} else {
			d.pushed.Add(int64(len(done)))
		}
		perr := <-pushed
		cancel()
		if err != nil {
			return err
		}
		if perr != nil {
			return perr
		}
		done = done[:0]
		for _, j := range jobs {
			done = append(done, j.rowID)
		}
		jobs = next
	}
	if len(done) > 0 {
		if err := d.delete(ctx, conn, done); err != nil {
			return err
		}
		d.pushed.Add(int64(len(done)))
	}
	return nil
}

// read deletes the rows in del (pushed) and reads the next batch after id
// after, in one round trip.
func (d *Drainer) read(ctx context.Context, conn *pgx.Conn, del []int64, after int64) ([]staged, error) {
	b := &pgx.Batch{}
	if len(del) > 0 {
		b.Queue(d.q.drainDel, del)
	}
	b.Queue(d.q.drainSel, after, d.cfg.BatchSize)
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	if len(del) > 0 {
		if _, err := br.Exec(); err != nil {
			return nil, fmt.Errorf("delete %d pushed rows: %w", len(del), err)
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("read the outbox: %w", err)
	}
	jobs, err := pgx.CollectRows(rows, scanStaged)
	if err != nil {
		return nil, fmt.Errorf("read the outbox: %w", err)
	}
	return jobs, br.Close()
}

func (d *Drainer) delete(ctx context.Context, conn *pgx.Conn, ids []int64) error {
	if _, err := conn.Exec(ctx, d.q.drainDel, ids); err != nil {
		return fmt.Errorf("delete %d pushed rows: %w", len(ids), err)
	}
	return nil
}

func scanStaged(row pgx.CollectableRow) (staged, error) {
	var (
		s        staged
		args     []byte
		metaJSON []byte
	)
	if err := row.Scan(&s.rowID, &s.jobID, &s.kind, &s.queue, &args, &s.maxAttempts, &s.runAt, &metaJSON); err != nil {
		return staged{}, err
	}
	s.args = args
	if len(metaJSON) > 0 {
		if err := json.Unmarshal(metaJSON, &s.meta); err != nil {
			return staged{}, fmt.Errorf("meta of staged job %s: %w", s.jobID, err)
		}
	}
	return s, nil
}

// pushRetrying pushes jobs, retrying with backoff while the push fails
// (Redis unreachable), until ctx ends.
func (d *Drainer) pushRetrying(ctx context.Context, jobs []staged) error {
	wait := 50 * time.Millisecond
	for {
		err := d.push.push(ctx, jobs)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.cfg.Logger.ErrorContext(ctx, "pg: drainer could not push staged jobs; retrying",
			slog.String("jobs", describe(jobs)), slog.Any("error", err), slog.Duration("wait", wait))
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
		wait = min(wait*2, drainRetryMax)
	}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
