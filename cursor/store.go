package cursor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/internal/rdb"
	"github.com/iterjob/iterjob/jobtype"
)

// ErrStaleRun is returned when a run writes state that a later run of the
// same job has claimed: the writer was presumed dead and its job handed to
// another worker. The stale run must stop without touching the job again.
var ErrStaleRun = errors.New("cursor: state owned by a later run")

// ErrNotFound is returned by Load for a job with no saved state.
var ErrNotFound = errors.New("cursor: no state for job")

// Status is where an iterable job's state stands.
type Status string

// Statuses.
const (
	StatusRunning     Status = "running"
	StatusInterrupted Status = "interrupted"
	StatusFailed      Status = "failed"
	// StatusDead: the last run failed and the job went to the dead set,
	// where it can be retried by hand; its state lives as long as the dead
	// set keeps the job (RedisConfig.DeadTTL).
	StatusDead      Status = "dead"
	StatusCancelled Status = "cancelled"
	StatusCompleted Status = "completed"
)

// State is what the store keeps for one iterable job across its runs.
type State struct {
	// Cursor is the position after the last item finished, as JSON; nil
	// before the first item.
	Cursor json.RawMessage `json:"cursor,omitempty"`
	// Run is the lease number of the run that owns the state.
	Run int64 `json:"run"`
	// Executions counts the runs started, this one included.
	Executions int `json:"executions"`
	// Started is set once OnStart has returned without error.
	Started bool `json:"started"`
	// TimesInterrupted counts runs that ended by interruption (quiet,
	// shutdown, max runtime, throttling).
	TimesInterrupted int `json:"times_interrupted"`
	// ItemsProcessed counts items finished, over all runs.
	ItemsProcessed int64 `json:"items_processed"`
	// RunTime is the time spent iterating, over all runs.
	RunTime time.Duration `json:"run_time"`
	// FirstStartedAt is when the first run began.
	FirstStartedAt time.Time `json:"first_started_at"`
	// LastCheckpointAt is when the state was last saved by a run.
	LastCheckpointAt time.Time `json:"last_checkpoint_at"`
	// Status is how the last run stands or ended.
	Status Status `json:"status,omitempty"`
	// ProgressDone, ProgressTotal and ProgressUnit are the enumerator's last
	// progress report (see enumerators.Progress); Total is -1 when unknown.
	ProgressDone  int64  `json:"progress_done"`
	ProgressTotal int64  `json:"progress_total"`
	ProgressUnit  string `json:"progress_unit,omitempty"`
}

// Progress is the state's progress as events and the admin API show it:
// the enumerator's last report (or the items done, out of an unknown total),
// the fraction done and an estimate of the time left at the rate so far.
func (st State) Progress() *jobtype.Progress {
	p := &jobtype.Progress{
		Cursor: st.Cursor, ItemsProcessed: st.ItemsProcessed, TimesInterrupted: st.TimesInterrupted,
		Executions: st.Executions, RunTime: st.RunTime,
		Done: st.ProgressDone, Total: st.ProgressTotal, Unit: st.ProgressUnit, Fraction: -1,
	}
	if p.Total > 0 && p.Done >= 0 {
		p.Fraction = float64(p.Done) / float64(p.Total)
		if p.Done > 0 && p.Done < p.Total {
			p.ETA = time.Duration(float64(st.RunTime) * float64(p.Total-p.Done) / float64(p.Done))
		}
	}
	return p
}

// Store keeps iterable jobs' state. Writes are fenced by run number: each run
// of a job claims the state with Begin, and Save accepts state only from the
// run that claimed it last, atomically, so a run presumed dead can never
// overwrite a newer run's cursor.
type Store interface {
	// Begin claims jid's state for run, which must be greater than any run
	// that claimed it before (else ErrStaleRun). It counts the execution,
	// sets FirstStartedAt on the first, and returns the state as saved.
	Begin(ctx context.Context, jid string, run int64) (State, error)
	// Save writes st for jid if run still owns it (else ErrStaleRun), and
	// refreshes the state's time to live.
	Save(ctx context.Context, jid string, run int64, st State) error
	// Load returns jid's state, or ErrNotFound.
	Load(ctx context.Context, jid string) (State, error)
	// Delete forgets the states of jids (it satisfies queue.JobData).
	Delete(ctx context.Context, jids ...string) error
}

// Restorer is implemented by stores that can lose the state they hold
// (RedisStore: a Redis restarted without persistence). The runner calls
// Restore only for a run that learnt that the store lost its data, never to
// create state otherwise: a Save of a state that is gone fails with
// ErrStaleRun, as it must for a run whose job was handed on.
type Restorer interface {
	// Restore writes st, with run as its owner and st's Executions and
	// FirstStartedAt, as jid's state if jid has none, and reports whether
	// it did. State that run owns is left alone; state another run owns
	// gives ErrStaleRun.
	Restore(ctx context.Context, jid string, run int64, st State) (bool, error)
}

// Defaults for RedisConfig.
const (
	// StateTTLDefault is how long the state of an unfinished job lives after
	// its last write. It must outlast the longest wait in a queue, the
	// scheduled set or the retry set.
	StateTTLDefault = 30 * 24 * time.Hour
	// CompletedTTLDefault is how long the state of a finished (completed or
	// cancelled) job is kept for inspection.
	CompletedTTLDefault = 24 * time.Hour
	// DeadTTLDefault is how long the state of a dead job is kept: as long
	// as the dead set keeps the job by default (queue.DeadMaxAgeDefault).
	DeadTTLDefault = rdb.DeadMaxAgeDefault
)

// RedisConfig configures a RedisStore.
type RedisConfig struct {
	// Namespace is the key namespace, shared with the queue. Default
	// "iterjob".
	Namespace string
	// StateTTL is the time to live of an unfinished job's state, refreshed
	// on every write. Zero means StateTTLDefault.
	StateTTL time.Duration
	// CompletedTTL is the time to live of a finished job's state. Zero means
	// CompletedTTLDefault.
	CompletedTTL time.Duration
	// DeadTTL is the time to live of a dead job's state: as long as the dead
	// set keeps the job, so that retrying it by hand resumes from its
	// cursor. Zero means DeadTTLDefault.
	DeadTTL time.Duration
}

// RedisStore keeps state in one Redis hash per job.
type RedisStore struct {
	db  *rdb.DB
	cfg RedisConfig
	now func() time.Time
}

// NewRedisStore returns a store on c. It never closes c.
func NewRedisStore(c redis.UniversalClient, cfg RedisConfig) (*RedisStore, error) {
	if c == nil {
		return nil, errors.New("cursor: NewRedisStore needs a Redis client")
	}
	if cfg.StateTTL < 0 || cfg.CompletedTTL < 0 || cfg.DeadTTL < 0 {
		return nil, errors.New("cursor: TTLs must not be negative")
	}
	if cfg.StateTTL == 0 {
		cfg.StateTTL = StateTTLDefault
	}
	if cfg.CompletedTTL == 0 {
		cfg.CompletedTTL = CompletedTTLDefault
	}
	if cfg.DeadTTL == 0 {
		cfg.DeadTTL = DeadTTLDefault
	}
	return &RedisStore{db: rdb.New(c, cfg.Namespace), cfg: cfg, now: time.Now}, nil
}

// Namespace returns the namespace the store keeps state in; a runner or
// client given the store checks that it matches theirs.
func (s *RedisStore) Namespace() string { return s.db.Keys.Namespace() }

// Begin implements Store.
func (s *RedisStore) Begin(ctx context.Context, jid string, run int64) (State, error) {
	fields, ok, cur, err := s.db.IterBegin(ctx, jid, run, s.now(), s.cfg.StateTTL)
	if err != nil {
		return State{}, fmt.Errorf("cursor: begin run %d of %s: %w", run, jid, err)
	}
	if !ok {
		return State{}, fmt.Errorf("%w: run %d of job %s, state owned by run %d", ErrStaleRun, run, jid, cur)
	}
	return decodeFields(fields)
}

// ttl is how long a state with status lives after its last write.
func (s *RedisStore) ttl(status Status) time.Duration {
	switch status {
	case StatusCompleted, StatusCancelled:
		return s.cfg.CompletedTTL
	case StatusDead:
		return s.cfg.DeadTTL
	}
	return s.cfg.StateTTL
}

// Save implements Store.
func (s *RedisStore) Save(ctx context.Context, jid string, run int64, st State) error {
	ttl := s.ttl(st.Status)
	ok, err := s.db.IterSave(ctx, jid, run, ttl, encodeFields(st))
	if err != nil {
		return fmt.Errorf("cursor: save run %d of %s: %w", run, jid, err)
	}
	if !ok {
		return fmt.Errorf("%w: run %d of job %s", ErrStaleRun, run, jid)
	}
	return nil
}

// Restore implements Restorer.
func (s *RedisStore) Restore(ctx context.Context, jid string, run int64, st State) (bool, error) {
	ttl := s.ttl(st.Status)
	restored, ok, err := s.db.IterRestore(ctx, jid, run, ttl, st.Executions, st.FirstStartedAt, encodeFields(st))
	if err != nil {
		return false, fmt.Errorf("cursor: restore run %d of %s: %w", run, jid, err)
	}
	if !ok {
		return false, fmt.Errorf("%w: run %d of job %s", ErrStaleRun, run, jid)
	}
	return restored, nil
}

// JobState returns jid's iteration status and progress ("" and nil when it
// has no state). It satisfies queue.StateReader, so that queue.Client.Job
// shows an iterable job's progress.
func (s *RedisStore) JobState(ctx context.Context, jid string) (string, *jobtype.Progress, error) {
	return jobState(ctx, s, jid)
}

// JobState is RedisStore.JobState.
func (s *MemoryStore) JobState(ctx context.Context, jid string) (string, *jobtype.Progress, error) {
	return jobState(ctx, s, jid)
}

func jobState(ctx context.Context, s Store, jid string) (string, *jobtype.Progress, error) {
	st, err := s.Load(ctx, jid)
	if errors.Is(err, ErrNotFound) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	return string(st.Status), st.Progress(), nil
}

// Load implements Store.
func (s *RedisStore) Load(ctx context.Context, jid string) (State, error) {
	fields, err := s.db.IterLoad(ctx, jid)
	if err != nil {
		return State{}, fmt.Errorf("cursor: load %s: %w", jid, err)
	}
	if len(fields) == 0 {
		return State{}, fmt.Errorf("%w %s", ErrNotFound, jid)
	}
	return decodeFields(fields)
}

// Delete implements Store.
func (s *RedisStore) Delete(ctx context.Context, jids ...string) error {
	if err := s.db.IterDelete(ctx, jids...); err != nil {
		return fmt.Errorf("cursor: delete %d states: %w", len(jids), err)
	}
	return nil
}

// The hash fields. Begin's script owns run, executions and
// first_started_at; Save writes the rest.
func encodeFields(st State) []string {
	started := "0"
	if st.Started {
		started = "1"
	}
	return []string{
		"cursor", string(st.Cursor),
		"started", started,
		"times_interrupted", strconv.Itoa(st.TimesInterrupted),
		"items_processed", strconv.FormatInt(st.ItemsProcessed, 10),
		"run_time_ns", strconv.FormatInt(int64(st.RunTime), 10),
		"last_checkpoint_at", strconv.FormatInt(st.LastCheckpointAt.UnixMilli(), 10),
		"status", string(st.Status),
		"progress_done", strconv.FormatInt(st.ProgressDone, 10),
		"progress_total", strconv.FormatInt(st.ProgressTotal, 10),
		"progress_unit", st.ProgressUnit,
	}
}

func decodeFields(f map[string]string) (State, error) {
	var st State
	var errs []error
	num := func(name string) int64 {
		v, ok := f[name]
		if !ok || v == "" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s=%q: %w", name, v, err))
		}
		return n
	}
	ms := func(name string) time.Time {
		if n := num(name); n != 0 {
			return time.UnixMilli(n)
		}
		return time.Time{}
	}
	if c := f["cursor"]; c != "" {
		st.Cursor = json.RawMessage(c)
	}
	st.Run = num("run")
	st.Executions = int(num("executions"))
	st.Started = f["started"] == "1"
	st.TimesInterrupted = int(num("times_interrupted"))
	st.ItemsProcessed = num("items_processed")
	st.RunTime = time.Duration(num("run_time_ns"))
	st.FirstStartedAt = ms("first_started_at")
	st.LastCheckpointAt = ms("last_checkpoint_at")
	st.Status = Status(f["status"])
	st.ProgressDone = num("progress_done")
	st.ProgressTotal = num("progress_total")
	st.ProgressUnit = f["progress_unit"]
	if _, ok := f["progress_total"]; !ok {
		st.ProgressDone, st.ProgressTotal = -1, -1
	}
	if len(errs) > 0 {
		return State{}, fmt.Errorf("cursor: corrupt state hash: %w", errors.Join(errs...))
	}
	return st, nil
}

// MemoryStore keeps state in memory, for unit tests. It has the same fencing
// as RedisStore and no time to live.
type MemoryStore struct {
	mu     sync.Mutex
	states map[string]State
	now    func() time.Time
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{states: make(map[string]State), now: time.Now}
}

// Begin implements Store.
func (s *MemoryStore) Begin(_ context.Context, jid string, run int64) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[jid]
	if ok && st.Run >= run {
		return State{}, fmt.Errorf("%w: run %d of job %s, state owned by run %d", ErrStaleRun, run, jid, st.Run)
	}
	if !ok {
		st.FirstStartedAt = time.UnixMilli(s.now().UnixMilli())
		st.ProgressDone, st.ProgressTotal = -1, -1
	}
	st.Run = run
	st.Executions++
	st.Cursor = clone(st.Cursor)
	s.states[jid] = st
	return st, nil
}

// Save implements Store.
func (s *MemoryStore) Save(_ context.Context, jid string, run int64, st State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.states[jid]
	if !ok || cur.Run != run {
		return fmt.Errorf("%w: run %d of job %s", ErrStaleRun, run, jid)
	}
	st.Run, st.Executions, st.FirstStartedAt = cur.Run, cur.Executions, cur.FirstStartedAt
	st.Cursor = clone(st.Cursor)
	st.LastCheckpointAt = time.UnixMilli(st.LastCheckpointAt.UnixMilli())
	s.states[jid] = st
	return nil
}

// Load implements Store.
func (s *MemoryStore) Load(_ context.Context, jid string) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[jid]
	if !ok {
		return State{}, fmt.Errorf("%w %s", ErrNotFound, jid)
	}
	st.Cursor = clone(st.Cursor)
	return st, nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(_ context.Context, jids ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, jid := range jids {
		delete(s.states, jid)
	}
	return nil
}

func clone(b json.RawMessage) json.RawMessage {
	if b == nil {
		return nil
	}
	return append(json.RawMessage(nil), b...)
}
