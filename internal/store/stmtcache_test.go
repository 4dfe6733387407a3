package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// withConn runs fn with one connection of db taken out of the pool and the
// caching connection behind it, then puts the connection back.
func withConn(t *testing.T, db *sql.DB, fn func(*sql.Conn, *cachingConn)) {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var cc *cachingConn
	if err := c.Raw(func(dc any) error {
		var ok bool
		if cc, ok = dc.(*cachingConn); !ok {
			return fmt.Errorf("driver connection is %T, want *cachingConn", dc)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fn(c, cc)
}

// snapshot is the connection's cache: query to statement.
func (c *cachingConn) snapshot() map[string]*cachedStmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]*cachedStmt{}
	for q, cs := range c.stmts {
		out[q] = cs
	}
	return out
}

const pendingInsert = `INSERT INTO pending_changes (sync_id, issue, change, created_at) VALUES (?, ?, ?, ?)`

// TestStmtCacheReuses: a statement run again on the same connection, in a
// later transaction, is the one compiled the first time, run with the new
// arguments; the cache does not grow.
func TestStmtCacheReuses(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	add := func(issue string) {
		update(t, s, func(tx *Tx) error {
			_, err := tx.PendingAdd(testSync, issue, []byte(issue))
			return err
		})
	}
	add("I-1")
	var before map[string]*cachedStmt
	withConn(t, s.write, func(_ *sql.Conn, cc *cachingConn) { before = cc.snapshot() })
	if before[pendingInsert] == nil {
		t.Fatalf("the insert is not cached on the write connection; cached: %d statements", len(before))
	}
	add("I-2")
	add("I-3")
	withConn(t, s.write, func(_ *sql.Conn, cc *cachingConn) {
		after := cc.snapshot()
		if after[pendingInsert] != before[pendingInsert] {
			t.Errorf("the insert was compiled again")
		}
		if len(after) != len(before) {
			t.Errorf("cache grew from %d to %d statements running the same SQL", len(before), len(after))
		}
	})
	view(t, s, func(tx *Tx) error {
		got, err := tx.PendingList(testSync, 0)
		if err != nil {
			return err
		}
		var issues []string
		for _, p := range got {
			issues = append(issues, p.Issue+"="+string(p.Change))
		}
		if g, w := strings.Join(issues, ","), "I-1=I-1,I-2=I-2,I-3=I-3"; g != w {
			t.Errorf("pending = %s, want %s", g, w)
		}
		return nil
	})
}

// TestStmtCachePerConnection: each connection of the read pool compiles
// its own copy; none is shared.
func TestStmtCachePerConnection(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	const q = `SELECT COUNT(*) FROM pending_changes WHERE sync_id = ?`
	withConn(t, s.read, func(c1 *sql.Conn, cc1 *cachingConn) {
		withConn(t, s.read, func(c2 *sql.Conn, cc2 *cachingConn) {
			if cc1 == cc2 {
				t.Fatal("two held connections are the same")
			}
			for _, c := range []*sql.Conn{c1, c2} {
				var n int
				if err := c.QueryRowContext(context.Background(), q, testSync).Scan(&n); err != nil || n != 0 {
					t.Fatalf("count = %d, %v", n, err)
				}
			}
			s1, s2 := cc1.snapshot()[q], cc2.snapshot()[q]
			if s1 == nil || s2 == nil || s1 == s2 || s1.si == s2.si {
				t.Errorf("statements on the two connections: %p and %p, want two distinct ones", s1, s2)
			}
		})
	})
}

// TestStmtCacheNestedQuery: running a query again while rows of the same
// query are still open (in one transaction, on one connection) must not
// reset the open rows; the second run goes uncached.
func TestStmtCacheNestedQuery(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	update(t, s, func(tx *Tx) error {
		for _, is := range []string{"I-1", "I-2", "I-3"} {
			if _, err := tx.PendingAdd(testSync, is, []byte(is)); err != nil {
				return err
			}
		}
		return nil
	})
	const q = `SELECT issue FROM pending_changes WHERE sync_id = ? ORDER BY id`
	scanIssue := func(r *sql.Rows) (string, error) {
		var s string
		return s, r.Scan(&s)
	}
	for _, run := range []struct {
		name string
		do   func(func(*Tx) error) error
	}{{"view", func(fn func(*Tx) error) error { return s.View(context.Background(), fn) }},
		{"update", func(fn func(*Tx) error) error { return s.Update(context.Background(), fn) }}} {
		var outer []string
		err := run.do(func(tx *Tx) error {
			var err error
			outer, err = collect(tx, "outer", q, func(r *sql.Rows) (string, error) {
				is, err := scanIssue(r)
				if err != nil {
					return "", err
				}
				inner, err := collect(tx, "inner", q, scanIssue, testSync)
				if err != nil {
					return "", err
				}
				return is + ":" + strings.Join(inner, "+"), nil
			}, testSync)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", run.name, err)
		}
		want := "I-1:I-1+I-2+I-3,I-2:I-1+I-2+I-3,I-3:I-1+I-2+I-3"
		if got := strings.Join(outer, ","); got != want {
			t.Errorf("%s: nested query = %s, want %s", run.name, got, want)
		}
	}
}

// TestStmtCacheBounded: SQL built at run time does not grow a connection's
// cache past maxCachedStmts, and every query still answers.
func TestStmtCacheBounded(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	view(t, s, func(tx *Tx) error {
		for i := range maxCachedStmts + 20 {
			var got int
			if err := tx.queryRow(fmt.Sprintf(`SELECT %d + ?`, i), 1).Scan(&got); err != nil {
				return err
			}
			if got != i+1 {
				t.Fatalf("query %d = %d, want %d", i, got, i+1)
			}
		}
		return nil
	})
	withConn(t, s.read, func(_ *sql.Conn, cc *cachingConn) {
		if n := len(cc.snapshot()); n > maxCachedStmts {
			t.Errorf("cache holds %d statements, want at most %d", n, maxCachedStmts)
		}
	})
}

// TestStmtCacheClosedWithStore: closing the store finalizes every cached
// statement of every connection.
func TestStmtCacheClosedWithStore(t *testing.T) {
	t.Parallel()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), FileName), quiet())
	if err != nil {
		t.Fatal(err)
	}
	var conns []*cachingConn
	var mu sync.Mutex
	collectConn := func(_ *sql.Conn, cc *cachingConn) {
		mu.Lock()
		conns = append(conns, cc)
		mu.Unlock()
	}
	update(t, s, func(tx *Tx) error {
		_, err := tx.PendingStats(testSync)
		return err
	})
	view(t, s, func(tx *Tx) error {
		_, err := tx.PendingStats(testSync)
		return err
	})
	withConn(t, s.write, collectConn)
	withConn(t, s.read, collectConn)
	for _, cc := range conns {
		if len(cc.snapshot()) == 0 {
			t.Fatal("nothing cached before Close")
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, cc := range conns {
		if n := len(cc.snapshot()); n != 0 {
			t.Errorf("connection %d still holds %d statements after Close", i, n)
		}
	}
}

// BenchmarkPendingAddList queues a change and lists the queue, one
// transaction each, the way detection and the batcher use the store,
// with the statement cache off and on.
func BenchmarkPendingAddList(b *testing.B) {
	for _, bc := range []struct {
		name    string
		noCache bool
	}{{"uncached", true}, {"cached", false}} {
		b.Run(bc.name, func(b *testing.B) {
			o := quiet()
			o.noStmtCache = bc.noCache
			s, err := Open(context.Background(), filepath.Join(b.TempDir(), FileName), o)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			if err := s.Update(ctx, func(tx *Tx) error {
				return tx.SyncPut(Sync{ID: testSync, Name: "one", Role: RoleMaster, ProjectKey: "ABC",
					SyncUser: "bridge", Transport: "file", SelfNode: "node-a"})
			}); err != nil {
				b.Fatal(err)
			}
			change := []byte(`{"op":"update","field":"summary","value":"x"}`)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				var id int64
				if err := s.Update(ctx, func(tx *Tx) error {
					var err error
					id, err = tx.PendingAdd(testSync, "I-1", change)
					return err
				}); err != nil {
					b.Fatal(err)
				}
				if err := s.View(ctx, func(tx *Tx) error {
					_, err := tx.PendingList(testSync, 10)
					if err != nil {
						return err
					}
					_, err = tx.PendingStats(testSync)
					return err
				}); err != nil {
					b.Fatal(err)
				}
				if err := s.Update(ctx, func(tx *Tx) error { return tx.PendingDelete(id) }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestStmtCacheConcurrentReadersAndWriter: readers on every read
// connection run the same cached statements (a list that stays open while
// rows are scanned, and a count) while a writer adds rows; each reader
// sees a consistent snapshot (the list as long as the count, growing
// only), and nothing fails. Run with -race.
func TestStmtCacheConcurrentReadersAndWriter(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	const writes, readers, reads = 60, 4, 40
	var wg sync.WaitGroup
	errs := make(chan error, readers+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range writes {
			if err := s.Update(ctx, func(tx *Tx) error {
				_, err := tx.PendingAdd(testSync, fmt.Sprintf("I-%d", i), []byte("x"))
				return err
			}); err != nil {
				errs <- fmt.Errorf("write %d: %w", i, err)
				return
			}
		}
	}()
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := 0
			for i := range reads {
				var n, listed int
				if err := s.View(ctx, func(tx *Tx) error {
					ps, err := tx.PendingList(testSync, 10000)
					if err != nil {
						return err
					}
					listed = len(ps)
					return tx.queryRow(`SELECT COUNT(*) FROM pending_changes WHERE sync_id = ?`, testSync).Scan(&n)
				}); err != nil {
					errs <- fmt.Errorf("reader %d, read %d: %w", r, i, err)
					return
				}
				if n != listed || n < last {
					errs <- fmt.Errorf("reader %d, read %d: listed %d, counted %d, earlier %d", r, i, listed, n, last)
					return
				}
				last = n
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
