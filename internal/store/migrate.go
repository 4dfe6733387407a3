package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
)

// migrations are the numbered schema steps, NNNN_name.sql, applied in order.
// A step is never edited once released; a change is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	return readMigrations(sub)
}

// readMigrations reads NNNN_name.sql files from the root of fsys.
func readMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("embedded migration %q: name must be NNNN_name.sql", name)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read embedded migration %s: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("embedded migration %s: expected version %d", m.name, i+1)
		}
	}
	return ms, nil
}

// SchemaVersion is the schema version this build writes.
func SchemaVersion() int {
	ms, err := loadMigrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// migrate brings the schema up to date, one transaction per step; the
// version (PRAGMA user_version) is read and set inside the step's
// transaction (BEGIN IMMEDIATE), so a crash mid-step leaves the previous
// version and the step is redone, and two processes opening the same new
// database at once apply each step once.
func (s *Store) migrate(ctx context.Context, log *slog.Logger, ms []migration) error {
	for {
		applied, err := s.migrateStep(ctx, ms)
		if err != nil {
			return err
		}
		if applied == nil {
			return nil
		}
		log.Info("store migrated", "component", "store", "migration", applied.name, "schema_version", applied.version)
	}
}

// migrateStep applies the next pending migration and returns it, or nil
// when the schema is current.
func (s *Store) migrateStep(ctx context.Context, ms []migration) (*migration, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin migration: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var current int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&current); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	if current > len(ms) {
		return nil, fmt.Errorf("database schema version %d is newer than this jirabridge (%d): upgrade jirabridge or restore a backup: %w",
			current, len(ms), ErrSchemaTooNew)
	}
	if current == len(ms) {
		return nil, nil
	}
	m := ms[current]
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return nil, fmt.Errorf("apply migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
		return nil, fmt.Errorf("record schema version %d: %w", m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit migration %s: %w", m.name, err)
	}
	return &m, nil
}
