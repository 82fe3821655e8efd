package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/iterjob/iterjob/internal/redact"
	"github.com/iterjob/iterjob/metrics"
	"github.com/iterjob/iterjob/pg"
)

// shutdownGrace bounds how long a server waits for requests in progress
// when its command ends.
const shutdownGrace = 5 * time.Second

// Serve serves h on addr until ctx ends, printing the URL it listens on
// ("listening on http://127.0.0.1:9090/metrics" for path "/metrics").
func (e *Env) Serve(ctx context.Context, addr, path string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(e.Stdout, "listening on http://%s%s\n", ln.Addr(), path)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// MetricsHandler returns a /metrics handler for the namespace: the
// collector of package metrics reading Redis at each scrape, its counters
// fed from the events stream (runners must set PublishEvents) until ctx
// ends (Run waits for that). A command that serves more (the dashboard)
// mounts it on its mux.
func (e *Env) MetricsHandler(ctx context.Context) http.Handler {
	m := metrics.New(e.Client, &metrics.Opts{Logger: e.Logger})
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	e.Go(func() {
		if err := m.Follow(ctx, e.Client, nil); err != nil {
			e.Logger.WarnContext(ctx, "iterjob: following events for metrics", "error", scrub(err, e.redisURL))
		}
	})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func setupMetrics(fs *flag.FlagSet) RunFunc {
	listen := fs.String("listen", "127.0.0.1:9090", "`ADDR` to serve /metrics on")
	return func(ctx context.Context, e *Env, _ []string) error {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", e.MetricsHandler(ctx))
		return e.Serve(ctx, *listen, "/metrics", mux)
	}
}

func setupMigrate(fs *flag.FlagSet) RunFunc {
	pgURL := fs.String("pg", "", "PostgreSQL `URL` (default $DATABASE_URL); its password is never printed")
	schema := fs.String("schema", pg.SchemaDefault, "`schema` to create or upgrade")
	return func(ctx context.Context, e *Env, _ []string) error {
		url := *pgURL
		if url == "" {
			url = e.Getenv("DATABASE_URL")
		}
		if url == "" {
			return usageError("migrate needs --pg URL or DATABASE_URL")
		}
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			return fmt.Errorf("--pg %s: %w", redact.URL(url), redact.Error(err, url))
		}
		defer pool.Close()
		applied, err := pg.Migrate(ctx, pool, &pg.MigrateOpts{Schema: *schema, Logger: e.Logger})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", redact.URL(url), redact.Error(err, url))
		}
		if applied == nil {
			applied = []int{}
		}
		if e.JSON {
			return e.PrintJSON(map[string]any{"schema": *schema, "applied": applied})
		}
		if len(applied) == 0 {
			fmt.Fprintf(e.Stdout, "schema %s is up to date\n", *schema)
			return nil
		}
		fmt.Fprintf(e.Stdout, "schema %s: applied migrations %v\n", *schema, applied)
		return nil
	}
}
