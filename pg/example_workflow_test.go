package pg_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// payments is a fake payment service that honours idempotency keys: a
// charge made again with a key it has seen returns the first charge.
type payments struct {
	mu      sync.Mutex
	charges map[string]string // idempotency key → charge id
}

func (p *payments) charge(key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id, ok := p.charges[key]; ok {
		return id
	}
	id := fmt.Sprintf("ch_%d", len(p.charges)+1)
	p.charges[key] = id
	return id
}

func (p *payments) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.charges)
}

type checkoutArgs struct {
	Order int `json:"order"`
}

// checkoutAttrs persist across steps and retries.
type checkoutAttrs struct {
	ChargeID string `json:"charge_id"`
}

type shipArgs struct {
	Order int `json:"order"`
}

type shipper struct{}

func (shipper) Perform(_ context.Context, a shipArgs) error {
	fmt.Println("shipping order", a.Order)
	return nil
}

// A checkout workflow: reserve the order, charge it, await the shipping
// job, notify. The charge step fails once right after charging, as if the
// process died there; its retry passes the same idempotency key, so the
// customer is charged once.
//
// The example needs PostgreSQL (TEST_DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/test), so it has no Output comment and
// `go test` only compiles it; TestExampleNewWorkflow runs it and checks that
// it prints:
//
//	reserve: order 42 reserved
//	charge attempt 1: charged ch_1, then the step failed
//	charge attempt 2: the payment service returned ch_1 again
//	ship: staged the shipping job; awaiting it
//	shipping order 42
//	notify: order 42 shipped, charge ch_1
//	workflow succeeded; charges made: 1
//	same key again, same id: true
func ExampleNewWorkflow() {
	ctx := context.Background()
	pool, schema, rdb, cleanup := exampleEnv(ctx)
	defer cleanup()
	log := slog.New(slog.DiscardHandler)
	if _, err := pg.Migrate(ctx, pool, &pg.MigrateOpts{Schema: schema, Logger: log}); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE orders (id int PRIMARY KEY, status text)`); err != nil {
		fmt.Println(err)
		return
	}
	pay := &payments{charges: map[string]string{}}
	attempts := 0
	type S = pg.StepContext[checkoutArgs, checkoutAttrs]
	checkout, err := pg.NewWorkflow(pg.WorkflowConfig[checkoutArgs, checkoutAttrs]{
		Name: "checkout", DB: pool, Schema: schema, Logger: log,
		Steps: []pg.Step[checkoutArgs, checkoutAttrs]{
			{Name: "reserve", Run: func(ctx context.Context, tx pgx.Tx, s *S) error {
				_, err := tx.Exec(ctx, `INSERT INTO orders VALUES ($1, 'reserved')`, s.Args.Order)
				fmt.Printf("reserve: order %d reserved\n", s.Args.Order)
				return err
			}},
			{Name: "charge", Run: func(ctx context.Context, tx pgx.Tx, s *S) error {
				attempts++
				id := pay.charge(s.IdempotencyKey())
				if attempts == 1 {
					fmt.Printf("charge attempt 1: charged %s, then the step failed\n", id)
					return errors.New("lost the connection after charging")
				}
				fmt.Printf("charge attempt %d: the payment service returned %s again\n", attempts, id)
				s.Attrs.ChargeID = id
				_, err := tx.Exec(ctx, `UPDATE orders SET status = 'paid' WHERE id = $1`, s.Args.Order)
				return err
			}},
			{Name: "ship", Run: func(ctx context.Context, tx pgx.Tx, s *S) error {
				_, err := s.Await(ctx, "ship", shipArgs{Order: s.Args.Order}, nil)
				fmt.Println("ship: staged the shipping job; awaiting it")
				return err
			}},
			{Name: "notify", Run: func(ctx context.Context, tx pgx.Tx, s *S) error {
				fmt.Printf("notify: order %d shipped, charge %s\n", s.Args.Order, s.Attrs.ChargeID)
				return nil
			}},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// A process that runs workflows: a drainer, and a runner with the
	// middleware that records the outcomes of awaited jobs.
	client, err := queue.NewClient(rdb, queue.Config{Namespace: "example", Logger: log})
	if err != nil {
		fmt.Println(err)
		return
	}
	drainer, err := pg.NewDrainer(pg.DrainerConfig{DB: pool, Client: client, Schema: schema, Logger: log})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := drainer.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer drainer.Stop(ctx)
	store, err := cursor.NewRedisStore(rdb, cursor.RedisConfig{Namespace: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	mw, err := pg.NewMiddleware(pg.MiddlewareConfig{DB: pool, Schema: schema, Store: store, Logger: log})
	if err != nil {
		fmt.Println(err)
		return
	}
	reg := runner.NewRegistry()
	checkout.Register(reg, nil)
	runner.Register(reg, "ship", shipper{}, nil)
	r, err := runner.New(runner.Config{Redis: rdb, Registry: reg, Namespace: "example", Logger: log,
		Store: store, Middleware: []runner.Middleware{mw}, Concurrency: 1, PollInterval: 20 * time.Millisecond,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := r.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer r.Stop(ctx)

	id, err := checkout.Start(ctx, "order-42", checkoutArgs{Order: 42})
	if err != nil {
		fmt.Println(err)
		return
	}
	for {
		st, err := checkout.Load(ctx, id)
		if err != nil {
			fmt.Println(err)
			return
		}
		if st.Status != pg.StatusRunning && st.Status != pg.StatusAwaiting {
			fmt.Printf("workflow %s; charges made: %d\n", st.Status, pay.count())
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	again, err := checkout.Start(ctx, "order-42", checkoutArgs{Order: 42})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("same key again, same id:", again == id)
}
