// Command payments shows an idempotent step workflow surviving a kill -9 in
// the worst place: after the payment service charged the card and before
// the step that asked for the charge could commit.
//
// The checkout workflow has three steps: create the order record, charge
// the card through a fake payment service that honours idempotency keys,
// and send a receipt through a job staged in the step's transaction. The
// program starts the workflow, then runs a worker: itself, re-executed as a
// child process. When the charge request reaches the payment service, the
// program kills the child with SIGKILL before the service answers. A second
// child resumes the workflow at the charge step (the order record is not
// created again), asks for the charge again with the same idempotency key,
// gets the first charge back, and sends the receipt. At the end the program
// checks that the card was charged once.
//
//	go run ./examples/payments
//	DATABASE_URL=postgres://user@host/db go run ./examples/payments
//
// It needs PostgreSQL: DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/test. Redis is REDIS_URL, or an
// embedded one when it is unset (the child processes reach it over TCP).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/exampleutil"
	"github.com/iterjob/iterjob/pg"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// CheckoutArgs are the workflow's arguments.
type CheckoutArgs struct {
	Order    int    `json:"order"`
	Customer string `json:"customer"`
	Email    string `json:"email"`
	Cents    int    `json:"cents"`
}

// CheckoutAttrs persist across the workflow's steps and retries.
type CheckoutAttrs struct {
	ChargeID string `json:"charge_id"`
}

// ReceiptArgs are the receipt job's arguments.
type ReceiptArgs struct {
	Order    int    `json:"order"`
	ChargeID string `json:"charge_id"`
	Email    string `json:"email"`
}

// chargeRequest and chargeResponse are the payment service's API.
type chargeRequest struct {
	Order int `json:"order"`
	Cents int `json:"cents"`
}

type chargeResponse struct {
	ID string `json:"id"`
}

// newCheckout returns the checkout workflow; service is the payment
// service's URL (unused by a process that only starts and inspects runs).
func newCheckout(pool *pgxpool.Pool, schema, service string, log *slog.Logger) (*pg.Workflow[CheckoutArgs, CheckoutAttrs], error) {
	type S = pg.StepContext[CheckoutArgs, CheckoutAttrs]
	return pg.NewWorkflow(pg.WorkflowConfig[CheckoutArgs, CheckoutAttrs]{
		Name: "checkout", DB: pool, Schema: schema, Logger: log,
		Steps: []pg.Step[CheckoutArgs, CheckoutAttrs]{
			{Name: "create-order", Run: func(ctx context.Context, tx pgx.Tx, s *S) error {
				fmt.Printf("step create-order: inserting order %d for %s\n", s.Args.Order, s.Args.Customer)
				_, err := tx.Exec(ctx, `INSERT INTO orders (id, customer, cents, status) VALUES ($1, $2, $3, 'created')`,
					s.Args.Order, s.Args.Customer, s.Args.Cents)
				return err
			}},
			{Name: "charge", Run: func(ctx context.Context, tx pgx.Tx, s *S) error {
				fmt.Printf("step charge: asking the payment service for %d cents, idempotency key %s\n", s.Args.Cents, s.IdempotencyKey())
				id, err := charge(ctx, service, s.IdempotencyKey(), chargeRequest{Order: s.Args.Order, Cents: s.Args.Cents})
				if err != nil {
					return err
				}
				fmt.Printf("step charge: charged, charge %s\n", id)
				s.Attrs.ChargeID = id
				_, err = tx.Exec(ctx, `UPDATE orders SET status = 'paid', charge_id = $2 WHERE id = $1`, s.Args.Order, id)
				return err
			}},
			{Name: "send-receipt", Run: func(ctx context.Context, tx pgx.Tx, s *S) error {
				jid, err := s.EnqueueTx(ctx, "receipt", ReceiptArgs{Order: s.Args.Order, ChargeID: s.Attrs.ChargeID, Email: s.Args.Email}, nil)
				fmt.Printf("step send-receipt: staged receipt job %s\n", jid)
				return err
			}},
		},
	})
}

// charge calls the payment service.
func charge(ctx context.Context, service, key string, req chargeRequest) (string, error) {
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, service+"/charges", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	hreq.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return "", fmt.Errorf("payment service: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("payment service: %s", resp.Status)
	}
	var out chargeResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("payment service: %w", err)
	}
	return out.ID, nil
}

// Receipt sends a receipt (records it in the receipts table).
type Receipt struct{ pool *pgxpool.Pool }

// Perform sends one receipt.
func (r Receipt) Perform(ctx context.Context, a ReceiptArgs) error {
	fmt.Printf("job receipt: emailing %s the receipt for order %d, charge %s\n", a.Email, a.Order, a.ChargeID)
	_, err := r.pool.Exec(ctx, `INSERT INTO receipts (order_id, charge_id) VALUES ($1, $2)`, a.Order, a.ChargeID)
	return err
}

func main() { exampleutil.Main("payments", runChild, run) }

// runChild is the worker: a drainer, and a runner that runs the workflow
// and the receipts. The parent passes its settings in the environment.
func runChild() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	schema, ns, service := os.Getenv("PAYMENTS_SCHEMA"), os.Getenv("PAYMENTS_NS"), os.Getenv("PAYMENTS_SERVICE")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pool, err := exampleutil.ConnectSchema(ctx, os.Getenv("PAYMENTS_DB"), schema)
	if err != nil {
		return err
	}
	defer pool.Close()
	opts, err := redis.ParseURL(os.Getenv("PAYMENTS_REDIS"))
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()

	client, err := queue.NewClient(rdb, queue.Config{Namespace: ns, Logger: log})
	if err != nil {
		return err
	}
	drainer, err := pg.NewDrainer(pg.DrainerConfig{DB: pool, Client: client, Schema: schema, Logger: log})
	if err != nil {
		return err
	}
	if err := drainer.Start(ctx); err != nil {
		return err
	}
	defer drainer.Stop(context.Background())
	store, err := cursor.NewRedisStore(rdb, cursor.RedisConfig{Namespace: ns})
	if err != nil {
		return err
	}
	mw, err := pg.NewMiddleware(pg.MiddlewareConfig{DB: pool, Schema: schema, Store: store, Logger: log})
	if err != nil {
		return err
	}
	checkout, err := newCheckout(pool, schema, service, log)
	if err != nil {
		return err
	}
	reg := runner.NewRegistry()
	checkout.Register(reg, nil)
	runner.Register(reg, "receipt", Receipt{pool: pool}, nil)
	r, err := runner.New(runner.Config{
		Redis: rdb, Registry: reg, Namespace: ns, Logger: log, Store: store, Middleware: []runner.Middleware{mw},
		// Notice a dead worker within a second (the defaults say 30 s).
		HeartbeatInterval: 200 * time.Millisecond, DeadAfter: time.Second,
	})
	if err != nil {
		return err
	}
	return exampleutil.RunWorker(ctx, r)
}

// service is the fake payment service: it charges once per idempotency
// key and answers a repeated key with the first charge.
type service struct {
	mu       sync.Mutex
	charges  map[string]string // idempotency key → charge id
	requests int
	// onCharge, if set, runs after a new charge is recorded and before the
	// answer is written (the program kills the worker there).
	onCharge func()
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	var req chargeRequest
	if r.URL.Path != "/charges" || key == "" || json.NewDecoder(r.Body).Decode(&req) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.requests++
	id, seen := s.charges[key]
	if !seen {
		id = fmt.Sprintf("ch_%d", len(s.charges)+1)
		s.charges[key] = id
	}
	hook := s.onCharge
	s.onCharge = nil
	s.mu.Unlock()
	if seen {
		fmt.Printf("payment service: key %s seen before: no new charge, returning %s\n", key, id)
	} else {
		fmt.Printf("payment service: charged %d cents for order %d: %s\n", req.Cents, req.Order, id)
	}
	if hook != nil {
		hook()
	}
	_ = json.NewEncoder(w).Encode(chargeResponse{ID: id})
}

func (s *service) counts() (charges, requests int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.charges), s.requests
}

func run(ctx context.Context) error {
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		dbURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	schema := "payments_" + queue.NewID()[:8]
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pool, err := exampleutil.ConnectSchema(ctx, dbURL, schema)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := pg.Migrate(ctx, pool, &pg.MigrateOpts{Schema: schema, Logger: log}); err != nil {
		return fmt.Errorf("migrate PostgreSQL at %s (set DATABASE_URL): %w", dbURL, err)
	}
	defer pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	if _, err := pool.Exec(ctx, `
		CREATE TABLE orders (id int PRIMARY KEY, customer text, cents int, status text, charge_id text);
		CREATE TABLE receipts (order_id int, charge_id text, sent_at timestamptz DEFAULT now())`); err != nil {
		return err
	}
	rdb, where, closeRedis, err := exampleutil.Connect(ctx)
	if err != nil {
		return err
	}
	defer closeRedis()
	redisURL := os.Getenv("REDIS_URL")
	if redisURL == "" {
		redisURL = "redis://" + rdb.(*redis.Client).Options().Addr
	}
	ns := "payments-" + queue.NewID()[:8]
	defer exampleutil.DeleteNamespace(rdb, ns)

	svc := &service{charges: map[string]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: svc}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Printf("payments on PostgreSQL schema %s and %s; payment service at %s\n\n", schema, where, ln.Addr())

	checkout, err := newCheckout(pool, schema, "", log)
	if err != nil {
		return err
	}
	args := CheckoutArgs{Order: 1001, Customer: "Ada", Email: "ada@example.com", Cents: 4200}
	id, err := checkout.Start(ctx, "order-1001", args)
	if err != nil {
		return err
	}
	fmt.Printf("started checkout workflow %s for order 1001 (idempotency key order-1001)\n\n", id)

	env := append(os.Environ(), "PAYMENTS_DB="+dbURL, "PAYMENTS_SCHEMA="+schema, "PAYMENTS_REDIS="+redisURL,
		"PAYMENTS_NS="+ns, "PAYMENTS_SERVICE=http://"+ln.Addr().String())

	// Worker 1 dies when the charge reaches the payment service.
	w1, err := exampleutil.StartChild(1, env)
	if err != nil {
		return err
	}
	svc.mu.Lock()
	svc.onCharge = func() {
		fmt.Println("\n>>> kill -9 worker 1 now: the card is charged, the charge step has not committed")
		_ = w1.Cmd.Process.Kill()
		<-w1.Exited
	}
	svc.mu.Unlock()
	select {
	case <-w1.Exited:
	case <-time.After(30 * time.Second):
		_ = w1.Cmd.Process.Kill()
		return errors.New("worker 1 never reached the charge")
	}
	st, err := checkout.Load(ctx, id)
	if err != nil {
		return err
	}
	fmt.Printf(">>> worker 1 is dead. In PostgreSQL: status %s, recovery point %q, charge id %q\n\n", st.Status, st.Step, st.Attrs.ChargeID)

	// Worker 2 takes the job back (once worker 1's heartbeat is stale)
	// and resumes at the recovery point.
	w2, err := exampleutil.StartChild(2, env)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	var receipts int
	for {
		if st, err = checkout.Load(ctx, id); err != nil {
			return err
		}
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM receipts`).Scan(&receipts); err != nil {
			return err
		}
		if st.Status == pg.StatusSucceeded && receipts > 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("workflow not done after 30s: status %s, step %q, error %q", st.Status, st.Step, st.Error)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = w2.Cmd.Process.Signal(syscall.SIGTERM)
	<-w2.Exited

	again, err := checkout.Start(ctx, "order-1001", args)
	if err != nil {
		return err
	}
	charges, requests := svc.counts()
	var orders int
	var status, chargeID string
	if err := pool.QueryRow(ctx, `SELECT count(*), max(status), max(charge_id) FROM orders`).Scan(&orders, &status, &chargeID); err != nil {
		return err
	}
	fmt.Printf("\ncheck:\n")
	fmt.Printf("  workflow %s %s, charge %s\n", id, st.Status, st.Attrs.ChargeID)
	fmt.Printf("  payment service: %d charge(s) from %d request(s) (the retry reused the idempotency key)\n", charges, requests)
	fmt.Printf("  orders: %d row(s), status %s, charge %s\n", orders, status, chargeID)
	fmt.Printf("  receipts sent: %d\n", receipts)
	fmt.Printf("  starting order-1001 again returns the same workflow: %v\n", again == id)
	if charges != 1 || orders != 1 || status != "paid" || receipts != 1 || again != id {
		return errors.New("the check failed")
	}
	return nil
}
