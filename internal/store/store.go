// Package store is the bridge's embedded database: SQLite through the pure-Go
// modernc.org/sqlite driver, in WAL mode, with its schema migrations embedded
// in the binary and applied at Open.
//
// Every state change is one transaction: callers group the writes that belong
// together in Update, so that a crash at any point leaves either all of them
// or none. One connection writes (BEGIN IMMEDIATE, so writers queue instead of
// failing on a lock upgrade) and a separate pool reads, so status pages and
// CLI commands never wait for the sync engine.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// FileName is the database file's name inside the data directory.
const FileName = "jirabridge.db"

// Errors callers test with errors.Is.
var (
	// ErrNotFound: the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrPruned: the outbox envelope asked for existed but was pruned after
	// its retention period; the peer must resync the affected issues.
	ErrPruned = errors.New("outbox envelope pruned")
	// ErrBadTransition: a state change that the current state does not allow
	// (for example retrying a skipped failure).
	ErrBadTransition = errors.New("state change not allowed")
	// ErrSchemaTooNew: the database was written by a newer jirabridge.
	ErrSchemaTooNew = errors.New("database schema is newer than this jirabridge")
)

// Options tunes Open. The zero value (or nil) is right for production.
type Options struct {
	// Now is the clock for every time the store records; tests inject one.
	// Default time.Now.
	Now func() time.Time
	// BusyTimeout is how long a statement waits for a lock held by another
	// process (a CLI command next to the daemon) before failing. Default 10s.
	BusyTimeout time.Duration
	// ReadConns is the size of the read pool. Default 4.
	ReadConns int
	// Logger receives migration notices. Default slog.Default().
	Logger *slog.Logger
	// NoSync makes commits return without waiting for the disk
	// (synchronous=OFF). For tests and benchmarks only: after a power loss
	// the last transactions may be gone, and a lost outbox row would let a
	// sequence number be reused for a different envelope. The default is
	// synchronous=FULL, because the receiver deletes a mail as soon as the
	// inbox row is committed.
	NoSync bool

	// migrations replaces the embedded ones in tests.
	migrations []migration
	// noStmtCache turns the per-connection statement cache off, for the
	// benchmark that shows what it saves.
	noStmtCache bool
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.BusyTimeout <= 0 {
		r.BusyTimeout = 10 * time.Second
	}
	if r.ReadConns <= 0 {
		r.ReadConns = 4
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	return r
}

func (o *Options) migrationList() ([]migration, error) {
	if o.migrations != nil {
		return o.migrations, nil
	}
	return loadMigrations()
}

// Store is an open database. It is safe for concurrent use.
type Store struct {
	path  string
	write *sql.DB
	read  *sql.DB
	now   func() time.Time
}

// Open opens (creating if missing) the database at path, applies pending
// migrations and returns the store. The parent directory is created with mode
// 0700 and the file with mode 0600, because it holds private keys and
// personal data. A database written by a newer jirabridge is refused with
// ErrSchemaTooNew rather than touched.
func Open(ctx context.Context, path string, opts *Options) (*Store, error) {
	o := opts.withDefaults()
	if path == "" {
		return nil, errors.New("open store: empty database path: set the data directory")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if err := createPrivate(path); err != nil {
		return nil, err
	}
	migrations, err := o.migrationList()
	if err != nil {
		return nil, err
	}

	busy := fmt.Sprint(o.BusyTimeout.Milliseconds())
	wq := url.Values{}
	wq.Add("_pragma", "busy_timeout("+busy+")")
	wq.Add("_pragma", "journal_mode(WAL)")
	if o.NoSync {
		wq.Add("_pragma", "synchronous(OFF)")
	} else {
		wq.Add("_pragma", "synchronous(FULL)")
	}
	wq.Add("_pragma", "foreign_keys(1)")
	wq.Set("_txlock", "immediate")
	wc, err := newConnector(path+"?"+wq.Encode(), !o.noStmtCache)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	write := sql.OpenDB(wc)
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	s := &Store{path: path, write: write, now: o.Now}
	if err := s.migrate(ctx, o.Logger, migrations); err != nil {
		write.Close()
		return nil, err
	}

	rq := url.Values{}
	rq.Add("_pragma", "busy_timeout("+busy+")")
	rq.Add("_pragma", "foreign_keys(1)")
	rq.Add("_pragma", "query_only(1)")
	rc, err := newConnector(path+"?"+rq.Encode(), !o.noStmtCache)
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open store %s for reading: %w", path, err)
	}
	read := sql.OpenDB(rc)
	read.SetMaxOpenConns(o.ReadConns)
	read.SetMaxIdleConns(o.ReadConns)
	s.read = read
	if err := read.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open store %s for reading: %w", path, err)
	}
	if err := tightenSidecars(path); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// createPrivate makes sure the database file exists with mode 0600 before
// SQLite opens it. SQLite gives the -wal and -shm files the mode of the
// database file, so this protects them too, whatever the umask.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	return chmodPrivate(path)
}

// chmodPrivate removes group and other permissions from an existing file
// (an operator's copy or a restored backup may have them).
func chmodPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("check permissions of %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, fi.Mode().Perm()&0o700); err != nil {
			return fmt.Errorf("restrict permissions of %s: %w", path, err)
		}
	}
	return nil
}

func tightenSidecars(path string) error {
	for _, suffix := range []string{"-wal", "-shm"} {
		p := path + suffix
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := chmodPrivate(p); err != nil {
			return err
		}
	}
	return nil
}

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes both pools, and with their connections the statements each
// connection compiled (see stmtcache.go).
func (s *Store) Close() error {
	var errs []error
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	if s.write != nil {
		errs = append(errs, s.write.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Tx is one transaction. Its typed methods are the only way the rest of the
// bridge reads and writes the database. A Tx from View is read-only; write
// methods on it fail.
//
// A Tx carries the context of its Update or View, so its methods take none.
type Tx struct {
	ctx context.Context
	tx  *sql.Tx
	now func() time.Time
}

// Now is the store clock's current time, so that callers record times that
// match the ones the store writes.
func (t *Tx) Now() time.Time { return t.now() }

// Update runs fn in one write transaction and commits it if fn returns nil;
// on an error (or a panic) nothing fn wrote is kept and fn's error is
// returned unchanged. Writers are serialised: fn must not call Update
// itself (it would wait for its own connection), and should not wait on
// anything slow (a Jira call, a send) while holding the write lock.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	return s.run(ctx, s.write, false, fn)
}

// View runs fn in one read-only transaction that sees a consistent snapshot;
// it never waits for Update.
func (s *Store) View(ctx context.Context, fn func(*Tx) error) error {
	return s.run(ctx, s.read, true, fn)
}

func (s *Store) run(ctx context.Context, db *sql.DB, readOnly bool, fn func(*Tx) error) (err error) {
	sqlTx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: readOnly})
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = sqlTx.Rollback()
		}
	}()
	if err := fn(&Tx{ctx: ctx, tx: sqlTx, now: s.now}); err != nil {
		return err
	}
	done = true
	if readOnly {
		// Nothing to keep; rollback ends the snapshot without a commit.
		if err := sqlTx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
			return fmt.Errorf("end read transaction: %w", err)
		}
		return nil
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// ms stores a time as unix milliseconds; the zero time is NULL.
func ms(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// fromMS reads unix milliseconds back; NULL is the zero time.
func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64)
}

func (t *Tx) nowMS() int64 { return t.now().UnixMilli() }

func (t *Tx) exec(what, query string, args ...any) (sql.Result, error) {
	r, err := t.tx.ExecContext(t.ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return r, nil
}

// insert runs an INSERT and returns the new row's id.
func (t *Tx) insert(what, query string, args ...any) (int64, error) {
	r, err := t.exec(what, query, args...)
	if err != nil {
		return 0, err
	}
	id, err := r.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return id, nil
}

// collect runs a query and scans each row with scan.
func collect[T any](t *Tx, what, query string, scan func(*sql.Rows) (T, error), args ...any) ([]T, error) {
	rows, err := t.tx.QueryContext(t.ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

func (t *Tx) queryRow(query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(t.ctx, query, args...)
}

// notFound turns sql.ErrNoRows into ErrNotFound with what was looked for.
func notFound(what string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func limitOr(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}
