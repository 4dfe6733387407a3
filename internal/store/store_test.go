package store

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const testSync = "sync-1"

var quietLog = slog.New(slog.DiscardHandler)

func quiet() *Options { return &Options{NoSync: true, Logger: quietLog} }

// open opens a fresh store in a temporary directory with one sync defined.
func open(t *testing.T) (*Store, *clock) {
	t.Helper()
	clk := newClock()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "data", FileName), &Options{Now: clk.Now, NoSync: true, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	update(t, s, func(tx *Tx) error {
		return tx.SyncPut(Sync{ID: testSync, Name: "one", Role: RoleMaster, ProjectKey: "ABC",
			SyncUser: "bridge", Transport: "file", SelfNode: "node-a"})
	})
	return s, clk
}

func update(t *testing.T, s *Store, fn func(*Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s *Store, fn func(*Tx) error) {
	t.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func TestMigrationsFromEmpty(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	want := []string{"syncs", "sync_keys", "outbox", "outbox_pruned", "pending_changes", "inbox",
		"inbox_cursors", "replay", "issue_pairs", "applied_changes", "sent_items", "cursors",
		"failures", "conflicts", "quarantine", "link_state", "content_skips"}
	view(t, s, func(tx *Tx) error {
		for _, name := range want {
			var n int
			if err := tx.queryRow(`SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, name).Scan(&n); err != nil {
				return err
			}
			if n != 1 {
				t.Errorf("table %s: got %d, want 1", name, n)
			}
		}
		var v int
		if err := tx.queryRow(`PRAGMA user_version`).Scan(&v); err != nil {
			return err
		}
		if v != SchemaVersion() || v < 1 {
			t.Errorf("user_version: got %d, want %d", v, SchemaVersion())
		}
		var mode string
		if err := tx.queryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
			return err
		}
		if mode != "wal" {
			t.Errorf("journal_mode: got %q, want wal", mode)
		}
		var fk int
		if err := tx.queryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil {
			return err
		}
		if fk != 1 {
			t.Errorf("foreign_keys: got %d, want 1", fk)
		}
		return nil
	})
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), FileName)
	ctx := context.Background()
	s, err := Open(ctx, path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx *Tx) error {
		if err := tx.SyncPut(Sync{ID: "x", Name: "x", Role: RoleSlave, ProjectKey: "P", SyncUser: "u",
			Transport: "file", SelfNode: "n"}); err != nil {
			return err
		}
		_, err := tx.OutboxAppend("x", "changes", []byte("sealed"))
		return err
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path, quiet())
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	view(t, s, func(tx *Tx) error {
		sy, err := tx.SyncGet("x")
		if err != nil {
			return err
		}
		if sy.Role != RoleSlave || sy.State != StateCreated {
			t.Errorf("sync after reopen: got %+v", sy)
		}
		e, err := tx.OutboxGet("x", 1)
		if err != nil {
			return err
		}
		if string(e.Sealed) != "sealed" {
			t.Errorf("outbox after reopen: got %q, want %q", e.Sealed, "sealed")
		}
		return nil
	})
}

func TestRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), FileName)
	ctx := context.Background()
	s, err := Open(ctx, path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	newer := SchemaVersion() + 5
	if _, err := s.write.ExecContext(ctx, "PRAGMA user_version = "+itoa(newer)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, path, quiet())
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open newer: got %v, want ErrSchemaTooNew", err)
	}
	want := "database schema version " + itoa(newer) + " is newer than this jirabridge (" + itoa(SchemaVersion()) +
		"): upgrade jirabridge or restore a backup"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("message: got %q, want it to contain %q", err, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestFileModes(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, FileName)
	s, err := Open(context.Background(), path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	update(t, s, func(tx *Tx) error { return tx.CursorSet("c", "v") }) // makes the WAL exist
	check := func(p string, want os.FileMode) {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", filepath.Base(p), got, want)
		}
	}
	check(dir, 0o700)
	check(path, 0o600)
	check(path+"-wal", 0o600)
	check(path+"-shm", 0o600)
}

func TestOpenTightensLooseFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode: got %o, want 600", got)
	}
}

func TestUpdateRollsBackOnError(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	boom := errors.New("boom")
	steps := map[string]func(*Tx) error{
		"outbox": func(tx *Tx) error { _, err := tx.OutboxAppend(testSync, "changes", []byte("x")); return err },
		"inbox": func(tx *Tx) error {
			_, err := tx.InboxInsert(InboxEntry{SyncID: testSync, Sender: "b", Seq: 1})
			return err
		},
		"cursor":  func(tx *Tx) error { return tx.CursorSet("detect", "1") },
		"pending": func(tx *Tx) error { _, err := tx.PendingAdd(testSync, "10", []byte("c")); return err },
		"replay":  func(tx *Tx) error { _, _, err := tx.ReplayEnqueue(testSync, "10", "ch1", []byte("c")); return err },
		"pair": func(tx *Tx) error {
			return tx.PairPut(IssuePair{SyncID: testSync, LocalID: "1", LocalKey: "A-1", PeerID: "2", PeerKey: "B-2"})
		},
		"ledger": func(tx *Tx) error { _, err := tx.LedgerRecord(Applied{ChangeID: "c1", SyncID: testSync}); return err },
		"sent": func(tx *Tx) error {
			return tx.SentPut(SentItem{SyncID: testSync, IssueID: "1", ItemKind: "comment", ItemID: "5"})
		},
		"failure":    func(tx *Tx) error { _, err := tx.FailureRecord(Failure{SyncID: testSync, ChangeID: "c1"}); return err },
		"conflict":   func(tx *Tx) error { _, err := tx.ConflictAdd(Conflict{SyncID: testSync, Winner: "peer"}); return err },
		"quarantine": func(tx *Tx) error { _, err := tx.QuarantineAdd(Quarantined{Reason: "bad"}); return err },
		"link":       func(tx *Tx) error { return tx.LinkHeard(testSync) },
		"state":      func(tx *Tx) error { return tx.SyncSetState(testSync, StatePaused, "authentication") },
		"keys":       func(tx *Tx) error { return tx.KeysPut(Keys{SyncID: testSync, AgeIdentity: "id"}) },
	}
	for name, step := range steps {
		err := s.Update(context.Background(), func(tx *Tx) error {
			if err := step(tx); err != nil {
				t.Fatalf("%s: step: %v", name, err)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Errorf("%s: Update returned %v, want boom", name, err)
		}
	}
	// Nothing of any step may be left; the sync row itself is unchanged.
	view(t, s, func(tx *Tx) error {
		for _, table := range []string{"outbox", "inbox", "inbox_cursors", "cursors", "pending_changes", "replay",
			"issue_pairs", "applied_changes", "sent_items", "failures", "conflicts", "quarantine", "link_state", "sync_keys"} {
			var n int
			if err := tx.queryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
				return err
			}
			if n != 0 {
				t.Errorf("%s after rollback: %d rows, want 0", table, n)
			}
		}
		sy, err := tx.SyncGet(testSync)
		if err != nil {
			return err
		}
		if sy.State != StateCreated {
			t.Errorf("sync state after rollback: got %s, want CREATED", sy.State)
		}
		return nil
	})
}

func TestUpdateRollsBackOnPanic(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	func() {
		defer func() { _ = recover() }()
		_ = s.Update(context.Background(), func(tx *Tx) error {
			if err := tx.CursorSet("c", "v"); err != nil {
				return err
			}
			panic("test")
		})
	}()
	view(t, s, func(tx *Tx) error {
		if _, ok, err := tx.CursorGet("c"); err != nil || ok {
			t.Errorf("cursor after panic: ok=%v err=%v, want absent", ok, err)
		}
		return nil
	})
	// The write connection must be usable again.
	update(t, s, func(tx *Tx) error { return tx.CursorSet("c", "w") })
}

func TestViewIsReadOnly(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	err := s.View(context.Background(), func(tx *Tx) error { return tx.CursorSet("c", "v") })
	if err == nil {
		t.Fatal("write in View succeeded, want an error")
	}
}

// TestConcurrentReadersOneWriter runs readers against a steady writer; with
// WAL and separate pools no reader or writer may see SQLITE_BUSY, and every
// reader sees a consistent snapshot (outbox contiguous from 1).
func TestConcurrentReadersOneWriter(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	const writes = 100
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Bounded, so that readers do not starve the writer on a busy machine.
			for i := 0; i < 100 && !done.Load(); i++ {
				err := s.View(ctx, func(tx *Tx) error {
					st, err := tx.OutboxStats(testSync)
					if err != nil {
						return err
					}
					if uint64(st.Depth) != st.HighestSeq {
						return errors.New("inconsistent snapshot: depth != highest seq")
					}
					_, err = tx.LinkStatus(testSync)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range writes {
		err := s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.OutboxAppend(testSync, "changes", []byte{byte(i)}); err != nil {
				return err
			}
			return tx.CursorSet("n", itoa(i))
		})
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("reader: %v", err)
	}
}

// TestOutboxContiguousUnderConcurrentAppends: many goroutines appending at once all succeed (the
// single write connection queues them) and the numbers are 1..N without a
// hole or a repeat.
func TestOutboxContiguousUnderConcurrentAppends(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	const n = 100
	seqs := make(chan uint64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Update(context.Background(), func(tx *Tx) error {
				seq, err := tx.OutboxAppend(testSync, "changes", []byte{byte(i)})
				seqs <- seq
				return err
			})
			if err != nil {
				t.Errorf("append %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	close(seqs)
	seen := make(map[uint64]bool)
	for s := range seqs {
		if seen[s] {
			t.Errorf("seq %d assigned twice", s)
		}
		seen[s] = true
	}
	for i := uint64(1); i <= n; i++ {
		if !seen[i] {
			t.Errorf("seq %d never assigned", i)
		}
	}
}

// TestSecondStoreSameFile: a second Open of the same file (a CLI command next
// to the daemon) writes without SQLITE_BUSY surfacing.
func TestSecondStoreSameFile(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	s2, err := Open(context.Background(), s.Path(), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var wg sync.WaitGroup
	for _, st := range []*Store{s, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := st.Update(context.Background(), func(tx *Tx) error {
					_, err := tx.OutboxAppend(testSync, "changes", []byte("x"))
					return err
				}); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	view(t, s, func(tx *Tx) error {
		st, err := tx.OutboxStats(testSync)
		if err != nil {
			return err
		}
		if st.HighestSeq != 100 || st.Depth != 100 {
			t.Errorf("after two writers: highest %d depth %d, want 100 100", st.HighestSeq, st.Depth)
		}
		return nil
	})
}

func TestOpenEmptyPath(t *testing.T) {
	t.Parallel()
	if _, err := Open(context.Background(), "", nil); err == nil {
		t.Fatal("Open(\"\") succeeded, want an error")
	}
}

func TestUpdateCancelledContext(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Update(ctx, func(tx *Tx) error { return tx.CursorSet("c", "v") })
	if err == nil {
		t.Fatal("Update with a cancelled context succeeded")
	}
	view(t, s, func(tx *Tx) error {
		if _, ok, _ := tx.CursorGet("c"); ok {
			t.Error("cursor written under a cancelled context")
		}
		return nil
	})
}
