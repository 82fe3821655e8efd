// Package iterjob builds the parts of an iterjob deployment from one set of
// settings, so that the queue client, the runner and the cursor store
// cannot disagree about the Redis or the namespace they share.
//
//	sys, err := iterjob.New(iterjob.Config{Redis: rdb, Namespace: "billing", Registry: reg})
//	client := sys.Client()                           // enqueue, admin, events
//	run, err := sys.NewRunner(runner.Config{Concurrency: 20})
//
// The packages can still be used on their own (queue.NewClient, runner.New,
// cursor.NewRedisStore); parts built separately are checked where they
// meet: a runner or client given a store of another namespace fails with
// ErrNamespaceMismatch.
package iterjob

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/queue"
	"github.com/iterjob/iterjob/runner"
)

// ErrNamespaceMismatch is matched when parts of one deployment are
// configured for different namespaces or Redis clients.
var ErrNamespaceMismatch = queue.ErrNamespaceMismatch

// Config holds the settings every part shares.
type Config struct {
	// Redis is the client every part uses (never closed by iterjob).
	Redis redis.UniversalClient
	// Namespace prefixes every key. Default queue.NamespaceDefault.
	Namespace string
	// Logger receives the parts' logs. Default slog.Default().
	Logger *slog.Logger
	// PublishEvents writes lifecycle events to the namespace's events
	// stream, from the client and the runners alike.
	PublishEvents bool
	// EventsMax is how many events the stream keeps (0: the default).
	EventsMax int64
	// Registry, if set, is the runners' registry; the client then refuses
	// kinds it does not know (queue.ErrUnknownKind).
	Registry *runner.Registry
	// Client holds the client's other settings; the fields above win over
	// the same fields here.
	Client queue.Config
}

// System is one deployment's parts.
type System struct {
	cfg    Config
	store  *cursor.RedisStore
	client *queue.Client
}

// New builds the cursor store and the queue client from cfg.
func New(cfg Config) (*System, error) {
	if cfg.Redis == nil {
		return nil, errors.New("iterjob: Config.Redis is required")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = queue.NamespaceDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	store, err := cursor.NewRedisStore(cfg.Redis, cursor.RedisConfig{Namespace: cfg.Namespace})
	if err != nil {
		return nil, fmt.Errorf("iterjob: %w", err)
	}
	qc := cfg.Client
	qc.Namespace, qc.Logger, qc.PublishEvents, qc.EventsMax, qc.JobData = cfg.Namespace, cfg.Logger, cfg.PublishEvents, cfg.EventsMax, store
	if cfg.Registry != nil {
		qc.Kinds = cfg.Registry
	}
	client, err := queue.NewClient(cfg.Redis, qc)
	if err != nil {
		return nil, fmt.Errorf("iterjob: %w", err)
	}
	return &System{cfg: cfg, store: store, client: client}, nil
}

// Client returns the queue client.
func (s *System) Client() *queue.Client { return s.client }

// Store returns the cursor store the runners and the client share.
func (s *System) Store() *cursor.RedisStore { return s.store }

// NewRunner builds a runner from rc with the shared settings filled in:
// Redis, Namespace, Logger, Store, PublishEvents, EventsMax and Registry.
// A field rc sets to something else is an error matching
// ErrNamespaceMismatch, not silently replaced.
func (s *System) NewRunner(rc runner.Config) (*runner.Runner, error) {
	switch {
	case rc.Namespace != "" && rc.Namespace != s.cfg.Namespace:
		return nil, fmt.Errorf("%w: runner.Config.Namespace %q, system %q", ErrNamespaceMismatch, rc.Namespace, s.cfg.Namespace)
	case rc.Redis != nil && rc.Redis != s.cfg.Redis:
		return nil, fmt.Errorf("%w: runner.Config.Redis is another client than the system's", ErrNamespaceMismatch)
	case rc.Store != nil && rc.Store != cursor.Store(s.store):
		return nil, fmt.Errorf("%w: runner.Config.Store is another store than the system's", ErrNamespaceMismatch)
	case rc.Registry != nil && s.cfg.Registry != nil && rc.Registry != s.cfg.Registry:
		return nil, fmt.Errorf("%w: runner.Config.Registry is another registry than the system's", ErrNamespaceMismatch)
	}
	rc.Redis, rc.Namespace, rc.Store = s.cfg.Redis, s.cfg.Namespace, s.store
	if rc.Logger == nil {
		rc.Logger = s.cfg.Logger
	}
	if s.cfg.PublishEvents {
		rc.PublishEvents = true
	}
	if rc.EventsMax == 0 {
		rc.EventsMax = s.cfg.EventsMax
	}
	if rc.Registry == nil {
		rc.Registry = s.cfg.Registry
	}
	return runner.New(rc)
}
