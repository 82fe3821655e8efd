// Package cli is the iterjob command: admin commands over the queue's admin
// API, a live progress view (watch), a Prometheus exporter and PostgreSQL
// migrations. cmd/iterjob is a thin wrapper around Run; tests call Run.
//
// Commands live in one table (commands); adding one is an entry there:
// its name, argument synopsis, help line, and a Setup that declares its
// flags and returns the function that runs it with an Env. A server
// command uses Env.Serve, and mounts Env.MetricsHandler for /metrics (see
// the web command).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/internal/redact"
	"github.com/iterjob/iterjob/queue"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// pingTimeout bounds the first round trip to Redis, which checks it is
// there before a command starts.
const pingTimeout = 5 * time.Second

// RedisURLDefault is the Redis used when neither --redis nor REDIS_URL says.
const RedisURLDefault = "redis://127.0.0.1:6379"

// ErrUsage is matched by errors of a command line that cannot run: an
// unknown command or flag, a missing or extra argument. Run exits with
// ExitUsage for them.
var ErrUsage = errors.New("usage")

// usageError is a usage mistake with its message.
func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// RunFunc runs a command with its positional arguments.
type RunFunc func(ctx context.Context, e *Env, args []string) error

// Command is one entry of the command table.
type Command struct {
	Name string
	// Args is the synopsis of its positional arguments ("SET ID").
	Args string
	// Help is its one-line description.
	Help string
	// MinArgs and MaxArgs bound its positional arguments (MaxArgs < 0: no
	// bound).
	MinArgs, MaxArgs int
	// NoRedis: the command does not need Redis (Env.Client is nil).
	NoRedis bool
	// Setup declares the command's own flags on fs and returns the function
	// that runs it; the flags are parsed before it runs.
	Setup func(fs *flag.FlagSet) RunFunc
}

// commands is the command table, in the order help lists them.
var commands = []Command{
	{Name: "stats", Help: "processed and failed counts, set sizes, processes", Setup: plain(cmdStats)},
	{Name: "queues", Help: "queues with their size, latency and pause state", Setup: plain(cmdQueues)},
	{Name: "jobs", Args: "QUEUE|SET", Help: "list the jobs of a queue or of the scheduled, retry or dead set", MinArgs: 1, MaxArgs: 1, Setup: setupJobs},
	{Name: "job", Args: "ID", Help: "one job wherever it is, with its iteration progress", MinArgs: 1, MaxArgs: 1, Setup: plain(cmdJob)},
	{Name: "retry", Args: "SET ID", Help: "run a scheduled, retry or dead job now", MinArgs: 2, MaxArgs: 2, Setup: plain(cmdRetry)},
	{Name: "delete", Args: "SET|QUEUE ID", Help: "delete a job from a set or a queue", MinArgs: 2, MaxArgs: 2, Setup: plain(cmdDelete)},
	{Name: "kill", Args: "SET ID", Help: "move a scheduled or retry job to the dead set", MinArgs: 2, MaxArgs: 2, Setup: plain(cmdKill)},
	{Name: "cancel", Args: "ID", Help: "cancel a job, waiting or running", MinArgs: 1, MaxArgs: 1, Setup: plain(cmdCancel)},
	{Name: "pause", Args: "QUEUE", Help: "stop runners fetching from a queue", MinArgs: 1, MaxArgs: 1, Setup: plain(cmdPause)},
	{Name: "resume", Args: "QUEUE", Help: "let runners fetch from a paused queue again", MinArgs: 1, MaxArgs: 1, Setup: plain(cmdResume)},
	{Name: "watch", Help: "live progress of running iterable jobs (from the events stream)", Setup: setupWatch},
	{Name: "metrics", Help: "serve Prometheus metrics on /metrics", Setup: setupMetrics},
	{Name: "web", Help: "serve the dashboard (and /metrics)", Setup: setupWeb},
	{Name: "migrate", Help: "create or upgrade the PostgreSQL schema (package pg)", NoRedis: true, Setup: setupMigrate},
}

// plain is the Setup of a command without flags of its own.
func plain(run RunFunc) func(*flag.FlagSet) RunFunc {
	return func(*flag.FlagSet) RunFunc { return run }
}

// Env is what a command runs with.
type Env struct {
	// Client is the admin client on the namespace (nil for NoRedis
	// commands).
	Client *queue.Client
	// Redis is the client Client works through.
	Redis redis.UniversalClient
	// Namespace is the namespace in use.
	Namespace string
	// JSON asks for JSON output, for scripts.
	JSON bool
	// Stdout and Stderr are the command's output streams.
	Stdout, Stderr io.Writer
	// Logger writes warnings to Stderr.
	Logger *slog.Logger
	// Getenv reads the environment.
	Getenv func(string) string

	redisURL string
	bg       sync.WaitGroup // goroutines a command started; Run waits for them
}

// Go runs fn in a goroutine that Run waits for once the command returns;
// fn must end when the command's context does.
func (e *Env) Go(fn func()) { e.bg.Go(fn) }

// global are the flags every command accepts, before or after its name.
type global struct {
	redisURL  string
	namespace string
	json      bool
}

func (g *global) register(fs *flag.FlagSet, getenv func(string) string) {
	def := getenv("REDIS_URL")
	if def == "" {
		def = RedisURLDefault
	}
	fs.StringVar(&g.redisURL, "redis", def, "Redis `URL` (default $REDIS_URL or "+RedisURLDefault+")")
	fs.StringVar(&g.namespace, "namespace", queue.NamespaceDefault, "key `namespace` shared with the runners")
	fs.BoolVar(&g.json, "json", false, "print JSON, for scripts")
}

// Run runs the iterjob command line args (without the program name),
// writing to stdout and stderr, and returns the exit code: ExitOK,
// ExitError, or ExitUsage for a command line that cannot run. It reads
// REDIS_URL from the process environment.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, args, stdout, stderr, os.Getenv)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	var g global
	top := flag.NewFlagSet("iterjob", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	g.register(top, getenv)
	help := top.Bool("help", false, "show help")
	top.BoolVar(help, "h", false, "show help")
	if err := top.Parse(args); err != nil {
		return fail(stderr, &g, usageError("%v", err))
	}
	rest := top.Args()
	if *help || len(rest) > 0 && rest[0] == "help" {
		if len(rest) > 1 {
			if c := lookup(rest[1]); c != nil {
				commandUsage(stdout, c)
				return ExitOK
			}
		}
		usage(stdout)
		return ExitOK
	}
	if len(rest) == 0 {
		usage(stderr)
		return ExitUsage
	}
	c := lookup(rest[0])
	if c == nil {
		return fail(stderr, &g, usageError("unknown command %q (iterjob help lists them)", rest[0]))
	}
	fs := flag.NewFlagSet("iterjob "+c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The global flags may also follow the command's name; they start from
	// what was given before it.
	g2 := g
	fs.StringVar(&g2.redisURL, "redis", g.redisURL, "")
	fs.StringVar(&g2.namespace, "namespace", g.namespace, "")
	fs.BoolVar(&g2.json, "json", g.json, "")
	cmdHelp := fs.Bool("help", false, "")
	fs.BoolVar(cmdHelp, "h", false, "")
	runCmd := c.Setup(fs)
	pos, err := parseInterspersed(fs, rest[1:])
	g = g2
	if *cmdHelp {
		commandUsage(stdout, c)
		return ExitOK
	}
	if err != nil {
		return fail(stderr, &g, usageError("%s: %v", c.Name, err))
	}
	if len(pos) < c.MinArgs || c.MaxArgs >= 0 && len(pos) > c.MaxArgs {
		return fail(stderr, &g, usageError("iterjob %s %s", c.Name, c.Args))
	}
	e := &Env{
		Namespace: g.namespace, JSON: g.json, Stdout: stdout, Stderr: stderr, Getenv: getenv,
		Logger:   slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		redisURL: g.redisURL,
	}
	if !c.NoRedis {
		closeRedis, err := e.connect(ctx)
		if err != nil {
			return fail(stderr, &g, err)
		}
		defer closeRedis()
	}
	ctx, cancel := context.WithCancel(ctx)
	err = runCmd(ctx, e, pos)
	cancel()
	e.bg.Wait()
	if err != nil {
		return fail(stderr, &g, err)
	}
	return ExitOK
}

func lookup(name string) *Command {
	i := slices.IndexFunc(commands, func(c Command) bool { return c.Name == name })
	if i < 0 {
		return nil
	}
	return &commands[i]
}

// parseInterspersed parses flags anywhere among the positional arguments
// ("jobs dead --json"); after "--" everything is positional (a job id that
// starts with "-").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// connect opens the Redis client and the admin client on it.
func (e *Env) connect(ctx context.Context) (func(), error) {
	opts, err := redis.ParseURL(e.redisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis %s: %w", redact.URL(e.redisURL), redact.Error(err, e.redisURL))
	}
	rdb := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	err = rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redis at %s: %w", redact.URL(e.redisURL), redact.Error(err, e.redisURL))
	}
	store, err := cursor.NewRedisStore(rdb, cursor.RedisConfig{Namespace: e.Namespace})
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	client, err := queue.NewClient(rdb, queue.Config{
		Namespace: e.Namespace, Logger: e.Logger, JobData: store,
		// Admin moves are published so dashboards and apps following the
		// events stream see them (a deleted job leaves their pages).
		PublishEvents: true,
	})
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	e.Redis, e.Client = rdb, client
	return func() { _ = rdb.Close() }, nil
}

// RedisURL returns the Redis URL in use without its password, fit to print.
func (e *Env) RedisURL() string { return redact.URL(e.redisURL) }

// PrintJSON writes v as indented JSON to Stdout.
func (e *Env) PrintJSON(v any) error {
	enc := json.NewEncoder(e.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Table returns a tabwriter on Stdout; Flush it.
func (e *Env) Table() *tabwriter.Writer {
	return tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
}

// fail prints err (without credentials) and returns its exit code.
func fail(stderr io.Writer, g *global, err error) int {
	msg := scrub(err, g.redisURL)
	code := ExitError
	if errors.Is(err, ErrUsage) {
		code = ExitUsage
	}
	if g.json {
		b, _ := json.Marshal(map[string]string{"error": msg})
		fmt.Fprintf(stderr, "%s\n", b)
	} else {
		fmt.Fprintf(stderr, "iterjob: %s\n", msg)
	}
	return code
}

// scrub returns err's message with every copy of the Redis URL, and of its
// password, masked.
func scrub(err error, rawURL string) string {
	msg := redact.Error(err, rawURL).Error()
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && len(pw) >= 3 {
			msg = strings.ReplaceAll(msg, pw, redact.Mask)
			msg = strings.ReplaceAll(msg, url.QueryEscape(pw), redact.Mask)
		}
	}
	return msg
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "iterjob: see and steer iterjob queues and jobs.\n\nUsage: iterjob [--redis URL] [--namespace NS] [--json] COMMAND [ARGS]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.Name, c.Args, c.Help)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nGlobal flags:\n  --redis URL       Redis (default $REDIS_URL or %s); its password is never printed\n  --namespace NS    key namespace shared with the runners (default %s)\n  --json            print JSON, for scripts\n\nSets: scheduled, retry, dead. \"iterjob help COMMAND\" shows a command's flags.\nExit codes: 0 ok, 1 error, 2 usage.\n", RedisURLDefault, queue.NamespaceDefault)
}

func commandUsage(w io.Writer, c *Command) {
	fmt.Fprintf(w, "Usage: iterjob %s %s\n\n%s.\n", c.Name, c.Args, c.Help)
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	c.Setup(fs)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}
