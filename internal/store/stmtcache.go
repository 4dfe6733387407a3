package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"reflect"
	"sync"

	"modernc.org/sqlite"
)

// The store's statements are a few dozen fixed SQL strings run over and over
// on a handful of long-lived connections, yet database/sql hands every
// Exec and Query to the driver as text, and the driver compiles it afresh
// each time (under -race, a third of the link package's CPU). So each
// physical connection keeps the statements it has compiled, keyed by their
// text, and runs them again with new arguments.
//
// The cache lives in the connection, not in the Store or in a Tx: a SQLite
// statement belongs to the connection that compiled it, and database/sql
// already guarantees that one connection serves one caller at a time (and
// that a Tx keeps its connection). A statement is therefore never run on
// another connection, whatever the pool does, and it is finalized when
// database/sql closes its connection: at Store.Close, or when the pool
// drops a broken one.

// maxCachedStmts bounds each connection's cache. The store's SQL is fixed
// text, so the bound is never reached in practice; it only keeps SQL built
// at run time from growing the cache without end.
const maxCachedStmts = 256

// cachingConnector opens the driver's connections and wraps each so that
// it caches its statements.
type cachingConnector struct {
	driver.Connector
}

// newConnector returns the connector sql.OpenDB uses for dsn; cache false
// leaves the driver's connections as they are (benchmarks compare).
func newConnector(dsn string, cache bool) (driver.Connector, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil || !cache {
		return c, err
	}
	return cachingConnector{c}, nil
}

func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return newCachingConn(conn)
}

// driverConn is what the store needs of a modernc.org/sqlite connection:
// the optional interfaces it implements, which a wrapper must forward or
// database/sql falls back to the context-free methods.
type driverConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// cachingConn is one physical connection with its compiled statements.
type cachingConn struct {
	driverConn
	// mu guards stmts. database/sql already serialises the calls on one
	// connection; the lock keeps the cache sound even if it did not.
	mu    sync.Mutex
	stmts map[string]*cachedStmt
}

// cachedStmt is a compiled statement; busy while rows read from it are
// open, since running it again would reset them.
type cachedStmt struct {
	si interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	}
	busy bool
}

var _ driverConn = (*cachingConn)(nil)

func newCachingConn(conn driver.Conn) (driver.Conn, error) {
	dc, ok := conn.(driverConn)
	if !ok {
		conn.Close()
		return nil, errors.New("open store: the sqlite driver's connection lacks a context method the store needs")
	}
	return &cachingConn{driverConn: dc, stmts: map[string]*cachedStmt{}}, nil
}

// Unwrap returns the driver's connection (sqlite.Limit looks through
// wrappers with it).
func (c *cachingConn) Unwrap() driver.Conn { return c.driverConn }

// stmt returns the idle cached statement for query, compiling it if there
// is none; nil (and no error) when the cached one is busy or the cache is
// full, and the caller runs query uncached.
func (c *cachingConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cs, ok := c.stmts[query]; ok {
		if cs.busy {
			return nil, nil
		}
		return cs, nil
	}
	if len(c.stmts) >= maxCachedStmts && !c.evictIdleLocked() {
		return nil, nil
	}
	si, err := c.driverConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	full, ok := si.(interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	})
	if !ok {
		si.Close()
		return nil, nil
	}
	cs := &cachedStmt{si: full}
	c.stmts[query] = cs
	return cs, nil
}

// evictIdleLocked finalizes one idle statement to make room.
func (c *cachingConn) evictIdleLocked() bool {
	for q, cs := range c.stmts {
		if !cs.busy {
			cs.si.Close()
			delete(c.stmts, q)
			return true
		}
	}
	return false
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.driverConn.ExecContext(ctx, query, args)
	}
	return cs.si.ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.driverConn.QueryContext(ctx, query, args)
	}
	rows, err := cs.si.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	cs.busy = true
	c.mu.Unlock()
	return &cachedRows{Rows: rows, conn: c, stmt: cs}, nil
}

// Close finalizes the cached statements, then closes the connection
// (SQLite keeps a connection with live statements half-open).
func (c *cachingConn) Close() error {
	c.mu.Lock()
	var errs []error
	for q, cs := range c.stmts {
		errs = append(errs, cs.si.Close())
		delete(c.stmts, q)
	}
	c.mu.Unlock()
	errs = append(errs, c.driverConn.Close())
	return errors.Join(errs...)
}

// cachedRows are rows read from a cached statement; closing them makes
// the statement idle again (the driver resets it for the next run).
type cachedRows struct {
	driver.Rows
	conn   *cachingConn
	stmt   *cachedStmt
	closed bool
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if !r.closed {
		r.closed = true
		r.conn.mu.Lock()
		r.stmt.busy = false
		r.conn.mu.Unlock()
	}
	return err
}

// The driver's rows describe their column types; pass that on for
// sql.Rows.ColumnTypes.

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if ct, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return ct.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if ct, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return ct.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if ct, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return ct.ColumnTypeNullable(i)
	}
	return false, false
}
