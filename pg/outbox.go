package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iterjob/iterjob/jobtype"
	"github.com/iterjob/iterjob/queue"
)

// ErrUniqueKeyUnsupported is returned when a staged job sets
// EnqueueOpts.UniqueKey or EnqueueOpts.ID: a staged job is unique by the id
// EnqueueTx gives it, and the outbox does not carry a key of its own.
var ErrUniqueKeyUnsupported = errors.New("pg: staged jobs cannot set UniqueKey or ID")

// ErrInvalidJob is matched by the error for a staged job the queue would
// refuse: a bad kind or queue name, arguments that are not JSON, a negative
// count.
var ErrInvalidJob = errors.New("pg: invalid job")

// metaPrefix starts the Meta keys this package reserves.
const metaPrefix = "iterjob."

// Schema names the PostgreSQL schema that holds the tables (see Migrate).
// Its methods stage jobs there; the package-level EnqueueTx and
// EnqueueManyTx use SchemaDefault.
type Schema string

// EnqueueTx stages one job in the outbox of SchemaDefault, inside tx. See
// Schema.EnqueueTx.
func EnqueueTx(ctx context.Context, tx pgx.Tx, kind string, args any, opts *queue.EnqueueOpts) (string, error) {
	return Schema(SchemaDefault).EnqueueTx(ctx, tx, kind, args, opts)
}

// EnqueueArgsTx stages a job whose kind its arguments' type names
// (queue.JobArgs) in the outbox of SchemaDefault, inside tx. See
// Schema.EnqueueTx.
func EnqueueArgsTx(ctx context.Context, tx pgx.Tx, args queue.JobArgs, opts *queue.EnqueueOpts) (string, error) {
	return Schema(SchemaDefault).EnqueueArgsTx(ctx, tx, args, opts)
}

// EnqueueManyTx stages jobs in the outbox of SchemaDefault, inside tx. See
// Schema.EnqueueManyTx.
func EnqueueManyTx(ctx context.Context, tx pgx.Tx, params []queue.Params) ([]string, error) {
	return Schema(SchemaDefault).EnqueueManyTx(ctx, tx, params)
}

// EnqueueTx stages a job of kind with args (any value encoding/json accepts;
// a json.RawMessage is used as is) in the schema's outbox table, inside the
// caller's transaction tx, and returns the id the job will have in the
// queue. If tx rolls back, the job never exists; once tx commits, a Drainer
// pushes it to Redis, once. opts are those of queue.Client.Enqueue, except
// that UniqueKey and ID are refused (ErrUniqueKeyUnsupported); In counts
// from now, not from the commit.
func (s Schema) EnqueueTx(ctx context.Context, tx pgx.Tx, kind string, args any, opts *queue.EnqueueOpts) (string, error) {
	schema := schemaOr(string(s))
	if err := checkSchema(schema); err != nil {
		return "", err
	}
	st, err := newStaged(time.Now(), queue.Params{Kind: kind, Args: args, Opts: opts})
	if err != nil {
		return "", err
	}
	if _, err := tx.Exec(ctx, queries(schema).stageOne,
		st.jobID, st.kind, st.queue, string(st.args), st.maxAttempts, st.runAt, st.metaJSON); err != nil {
		return "", fmt.Errorf("pg: stage %s job: %w", kind, err)
	}
	return st.jobID, nil
}

// EnqueueArgsTx is EnqueueTx with the kind taken from the arguments' type
// (queue.JobArgs), as queue.Client.EnqueueArgs does.
func (s Schema) EnqueueArgsTx(ctx context.Context, tx pgx.Tx, args queue.JobArgs, opts *queue.EnqueueOpts) (string, error) {
	return s.EnqueueTx(ctx, tx, args.Kind(), args, opts)
}

// EnqueueManyTx stages jobs in one statement inside tx and returns their ids
// in the order of params; a Params with no Kind takes it from typed
// arguments (queue.JobArgs). If one job is invalid, none is staged.
func (s Schema) EnqueueManyTx(ctx context.Context, tx pgx.Tx, params []queue.Params) ([]string, error) {
	schema := schemaOr(string(s))
	if err := checkSchema(schema); err != nil {
		return nil, err
	}
	if len(params) == 0 {
		return nil, nil
	}
	now := time.Now()
	n := len(params)
	ids, kinds, queues, args := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	attempts, runAts, metas := make([]int32, n), make([]*time.Time, n), make([]*string, n)
	for i, p := range params {
		st, err := newStaged(now, p)
		if err != nil {
			if n > 1 {
				return nil, fmt.Errorf("pg: job %d of %d: %w", i+1, n, err)
			}
			return nil, err
		}
		ids[i], kinds[i], queues[i], args[i] = st.jobID, st.kind, st.queue, string(st.args)
		attempts[i], runAts[i], metas[i] = st.maxAttempts, st.runAt, st.metaJSON
	}
	if _, err := tx.Exec(ctx, queries(schema).stageMany, ids, kinds, queues, args, attempts, runAts, metas); err != nil {
		return nil, fmt.Errorf("pg: stage %d jobs: %w", n, err)
	}
	return ids, nil
}

// staged is one job of the outbox.
type staged struct {
	rowID       int64
	jobID       string
	kind        string
	queue       string
	args        json.RawMessage
	maxAttempts int32
	runAt       *time.Time
	meta        map[string]string
	metaJSON    *string
}

// newStaged checks p as the queue would and builds its row, with a new job
// id.
func newStaged(now time.Time, p queue.Params) (staged, error) {
	var o queue.EnqueueOpts
	if p.Opts != nil {
		o = *p.Opts
	}
	if o.UniqueKey != "" || o.ID != "" {
		return staged{}, fmt.Errorf("%w (job %s)", ErrUniqueKeyUnsupported, p.Kind)
	}
	if o.Queue == "" {
		o.Queue = queue.QueueDefault
	}
	if a, ok := p.Args.(queue.JobArgs); ok && p.Kind == "" {
		p.Kind = a.Kind()
	}
	if !nameRE.MatchString(p.Kind) {
		return staged{}, fmt.Errorf("%w: kind %q (1-200 of A-Z a-z 0-9 _ . : -)", ErrInvalidJob, p.Kind)
	}
	if !nameRE.MatchString(o.Queue) {
		return staged{}, fmt.Errorf("%w: queue %q (1-200 of A-Z a-z 0-9 _ . : -)", ErrInvalidJob, o.Queue)
	}
	if o.MaxAttempts < 0 || o.UniqueFor < 0 || o.In < 0 {
		return staged{}, fmt.Errorf("%w: MaxAttempts, In and UniqueFor must not be negative", ErrInvalidJob)
	}
	args, err := encodeArgs(p.Args)
	if err != nil {
		return staged{}, fmt.Errorf("%w: encode args of %s: %w", ErrInvalidJob, p.Kind, err)
	}
	st := staged{jobID: queue.NewID(), kind: p.Kind, queue: o.Queue, args: args, maxAttempts: int32(o.MaxAttempts), meta: o.Meta}
	switch {
	case !o.At.IsZero():
		at := o.At
		st.runAt = &at
	case o.In > 0:
		at := now.Add(o.In)
		st.runAt = &at
	}
	if o.StartCursor != nil {
		// As the client does: the cursor travels in Meta.
		raw, err := json.Marshal(o.StartCursor)
		if err != nil {
			return staged{}, fmt.Errorf("%w: encode start cursor of %s: %w", ErrInvalidJob, p.Kind, err)
		}
		st.meta = maps.Clone(o.Meta)
		if st.meta == nil {
			st.meta = map[string]string{}
		}
		st.meta[jobtype.MetaStartCursor] = string(raw)
		o.Meta = st.meta
	}
	if len(o.Meta) > 0 {
		b, err := json.Marshal(o.Meta)
		if err != nil {
			return staged{}, fmt.Errorf("%w: encode meta of %s: %w", ErrInvalidJob, p.Kind, err)
		}
		m := string(b)
		st.metaJSON = &m
	}
	return st, nil
}

func encodeArgs(args any) (json.RawMessage, error) {
	switch a := args.(type) {
	case json.RawMessage:
		if !json.Valid(a) {
			return nil, errors.New("args are not valid JSON")
		}
		return a, nil
	case nil:
		return json.RawMessage("null"), nil
	}
	return json.Marshal(args)
}
