package pg

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one versioned change to the schema.
type Migration struct {
	// Version orders migrations; it is the number the file name starts with.
	Version int
	// Name is the file name without the version and extension.
	Name string
	// SQL is the migration's statements for one schema.
	SQL string
}

// MigrateOpts are Migrate's options. A nil *MigrateOpts means all defaults.
type MigrateOpts struct {
	// Schema is the schema to create and migrate. Default SchemaDefault.
	Schema string
	// Logger receives a line per migration applied. Default slog.Default().
	Logger *slog.Logger
}

// Migrations returns the migrations for schema (default SchemaDefault), in
// version order, for applications that run migrations with their own tool.
// Such a tool must apply them in order, each once; Migrate does that and
// records what it applied in the schema's migrations table.
func Migrations(schema string) ([]Migration, error) {
	schema = schemaOr(schema)
	if err := checkSchema(schema); err != nil {
		return nil, err
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("pg: list migrations: %w", err)
	}
	ident := pgx.Identifier{schema}.Sanitize()
	out := make([]Migration, 0, len(names))
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("pg: migration file %s: want NNN_name.sql", n)
		}
		body, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("pg: read migration %s: %w", n, err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: strings.ReplaceAll(string(body), "{schema}", ident)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("pg: two migrations with version %d", out[i].Version)
		}
	}
	return out, nil
}

// Migrate creates the schema named in opts if it does not exist and applies
// the migrations it has not had yet, in version order, in one transaction:
// either all of them are applied or none. It records each version applied in
// the schema's migrations table and returns the versions this call applied
// (none when the schema is up to date).
//
// Migrate is safe to call from every process at start-up: a transaction-level
// advisory lock per schema makes concurrent calls wait for each other, and
// the later ones find nothing left to do. db may be a pool or a connection;
// given a transaction, Migrate works in a savepoint of it.
func Migrate(ctx context.Context, db DB, opts *MigrateOpts) ([]int, error) {
	var o MigrateOpts
	if opts != nil {
		o = *opts
	}
	o.Schema = schemaOr(o.Schema)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	migs, err := Migrations(o.Schema)
	if err != nil {
		return nil, err
	}
	ident := pgx.Identifier{o.Schema}.Sanitize()

	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("pg: migrate %s: begin: %w", o.Schema, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey("migrate", o.Schema)); err != nil {
		return nil, fmt.Errorf("pg: migrate %s: lock: %w", o.Schema, err)
	}
	for _, stmt := range []string{
		"CREATE SCHEMA IF NOT EXISTS " + ident,
		`CREATE TABLE IF NOT EXISTS ` + ident + `.migrations (
			version    integer     PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`,
	} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("pg: migrate %s: %w", o.Schema, err)
		}
	}
	rows, err := tx.Query(ctx, "SELECT version FROM "+ident+".migrations")
	if err != nil {
		return nil, fmt.Errorf("pg: migrate %s: read versions: %w", o.Schema, err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("pg: migrate %s: read versions: %w", o.Schema, err)
	}
	var applied []int
	for _, m := range migs {
		if slices.Contains(have, int32(m.Version)) {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return nil, fmt.Errorf("pg: migrate %s: version %d (%s): %w", o.Schema, m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+ident+".migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			return nil, fmt.Errorf("pg: migrate %s: record version %d: %w", o.Schema, m.Version, err)
		}
		applied = append(applied, m.Version)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("pg: migrate %s: commit: %w", o.Schema, err)
	}
	for _, v := range applied {
		o.Logger.InfoContext(ctx, "pg: migration applied", slog.String("schema", o.Schema), slog.Int("version", v))
	}
	return applied, nil
}
