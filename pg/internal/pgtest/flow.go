// Package pgtest holds what the pg crash tests share with their worker
// process: the workflow they run, its child job, and the tables in which
// both record every effect so that a test can count, after any number of
// kill -9s, what ran and how often.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iterjob/iterjob/pg"
)

// FlowName is the crash workflow's name (its job kind); ChildKind and
// ReceiptKind are the kinds it stages.
const (
	FlowName    = "crashflow"
	ChildKind   = "crash-child"
	ReceiptKind = "crash-receipt"
	// Children is how many child jobs step "fan-out" awaits.
	Children = 3
)

// Steps are the crash workflow's steps, in order.
var Steps = []string{"create", "charge", "fan-out", "finish"}

// DDL creates the tables the workflow and its jobs record into, in the
// search_path's schema:
//
//   - step_done: one row per committed step, written in the step's
//     transaction (a second commit of a step would violate its key);
//   - violations: a step run that began after the same step had committed;
//   - step_runs: every step run that began (committed or not);
//   - ext_calls: the fake outside service, one row per idempotency key and
//     the number of calls made with it;
//   - job_runs: every run of a child or receipt job.
const DDL = `
CREATE TABLE step_done (wf text, step text, PRIMARY KEY (wf, step));
CREATE TABLE violations (wf text, step text, at timestamptz DEFAULT clock_timestamp());
CREATE TABLE step_runs (wf text, step text, at timestamptz DEFAULT clock_timestamp());
CREATE TABLE ext_calls (key text PRIMARY KEY, calls integer NOT NULL);
CREATE TABLE job_runs (jid text, kind text, at timestamptz DEFAULT clock_timestamp());
`

// Args are the crash workflow's arguments.
type Args struct {
	Order int `json:"order"`
}

// Attrs are its persisted attributes: the steps append themselves to Trace,
// so a step whose attributes were saved twice, or lost, shows.
type Attrs struct {
	Trace    []string `json:"trace"`
	ChargeID string   `json:"charge_id"`
}

// ChildArgs are a child job's arguments.
type ChildArgs struct {
	WF   string `json:"wf"`
	N    int    `json:"n"`
	Fail bool   `json:"fail"`
}

// NewFlow returns the crash workflow on pool and schema. maxSleep bounds
// the random pause inside each step, which is where kills land.
func NewFlow(pool *pgxpool.Pool, schema string, maxSleep time.Duration) (*pg.Workflow[Args, Attrs], error) {
	pause := func() {
		if maxSleep > 0 {
			time.Sleep(rand.N(maxSleep))
		}
	}
	begin := func(ctx context.Context, s *pg.StepContext[Args, Attrs]) error {
		// Outside the step's transaction: visible even if it rolls back.
		if _, err := pool.Exec(ctx, `INSERT INTO step_runs (wf, step) VALUES ($1, $2)`, s.WorkflowID(), s.Step()); err != nil {
			return err
		}
		var done int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM step_done WHERE wf = $1 AND step = $2`, s.WorkflowID(), s.Step()).Scan(&done); err != nil {
			return err
		}
		if done > 0 {
			if _, err := pool.Exec(ctx, `INSERT INTO violations (wf, step) VALUES ($1, $2)`, s.WorkflowID(), s.Step()); err != nil {
				return err
			}
		}
		return nil
	}
	end := func(ctx context.Context, tx pgx.Tx, s *pg.StepContext[Args, Attrs]) error {
		s.Attrs.Trace = append(s.Attrs.Trace, s.Step())
		_, err := tx.Exec(ctx, `INSERT INTO step_done (wf, step) VALUES ($1, $2)`, s.WorkflowID(), s.Step())
		return err
	}
	return pg.NewWorkflow(pg.WorkflowConfig[Args, Attrs]{
		Name:   FlowName,
		DB:     pool,
		Schema: schema,
		Steps: []pg.Step[Args, Attrs]{
			{Name: Steps[0], Run: func(ctx context.Context, tx pgx.Tx, s *pg.StepContext[Args, Attrs]) error {
				if err := begin(ctx, s); err != nil {
					return err
				}
				pause()
				return end(ctx, tx, s)
			}},
			{Name: Steps[1], Run: func(ctx context.Context, tx pgx.Tx, s *pg.StepContext[Args, Attrs]) error {
				if err := begin(ctx, s); err != nil {
					return err
				}
				// The outside call: autocommitted, keyed by the step's
				// idempotency key, as a payment API would be.
				if _, err := pool.Exec(ctx, `INSERT INTO ext_calls (key, calls) VALUES ($1, 1)
					ON CONFLICT (key) DO UPDATE SET calls = ext_calls.calls + 1`, s.IdempotencyKey()); err != nil {
					return err
				}
				s.Attrs.ChargeID = "ch_" + s.IdempotencyKey()
				pause()
				return end(ctx, tx, s)
			}},
			{Name: Steps[2], Run: func(ctx context.Context, tx pgx.Tx, s *pg.StepContext[Args, Attrs]) error {
				if err := begin(ctx, s); err != nil {
					return err
				}
				for n := range Children {
					if _, err := s.Await(ctx, ChildKind, ChildArgs{WF: s.WorkflowID(), N: n}, nil); err != nil {
						return err
					}
				}
				pause()
				return end(ctx, tx, s)
			}},
			{Name: Steps[3], Run: func(ctx context.Context, tx pgx.Tx, s *pg.StepContext[Args, Attrs]) error {
				if err := begin(ctx, s); err != nil {
					return err
				}
				if s.Attrs.ChargeID == "" {
					return errors.New("charge id lost")
				}
				if _, err := s.EnqueueTx(ctx, ReceiptKind, ChildArgs{WF: s.WorkflowID()}, nil); err != nil {
					return err
				}
				pause()
				return end(ctx, tx, s)
			}},
		},
	})
}

// Job is the child and receipt job: it records its run and pauses.
type Job struct {
	Pool     *pgxpool.Pool
	Kind     string
	MaxSleep time.Duration
}

// Perform records the run; a child with Fail set fails.
func (j Job) Perform(ctx context.Context, a ChildArgs) error {
	if _, err := j.Pool.Exec(ctx, `INSERT INTO job_runs (jid, kind) VALUES ($1, $2)`, jobID(ctx), j.Kind); err != nil {
		return err
	}
	if j.MaxSleep > 0 {
		time.Sleep(rand.N(j.MaxSleep))
	}
	if a.Fail {
		return fmt.Errorf("child %d of %s failed on purpose", a.N, a.WF)
	}
	return nil
}
