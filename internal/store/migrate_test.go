package store

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

func embedded(t *testing.T) []migration {
	t.Helper()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestMigrationUpgradeKeepsData: a later migration applies on top of a
// database with data, and a failing one leaves the version and the schema
// as they were.
func TestMigrationUpgrade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	base := embedded(t)
	s, err := Open(ctx, path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx *Tx) error { return tx.CursorSet("keep", "me") })
	s.Close()

	bad := append(append([]migration(nil), base...),
		migration{version: len(base) + 1, name: "bad.sql", sql: "CREATE TABLE extra (x INTEGER); SELECT * FROM no_such_table;"})
	o := quiet()
	o.migrations = bad
	if _, err := Open(ctx, path, o); err == nil || !strings.Contains(err.Error(), "apply migration bad.sql") {
		t.Fatalf("Open with a failing migration: got %v, want an apply error", err)
	}

	good := append(append([]migration(nil), base...),
		migration{version: len(base) + 1, name: "good.sql", sql: "CREATE TABLE extra (x INTEGER);"})
	o = quiet()
	o.migrations = good
	s, err = Open(ctx, path, o)
	if err != nil {
		t.Fatalf("Open with a good migration: %v", err)
	}
	defer s.Close()
	view(t, s, func(tx *Tx) error {
		var v, n int
		if err := tx.queryRow(`PRAGMA user_version`).Scan(&v); err != nil {
			return err
		}
		if v != len(good) {
			t.Errorf("version: got %d, want %d", v, len(good))
		}
		if err := tx.queryRow(`SELECT COUNT(*) FROM extra`).Scan(&n); err != nil {
			t.Errorf("table of the new migration: %v", err)
		}
		if val, ok, err := tx.CursorGet("keep"); err != nil || !ok || val != "me" {
			t.Errorf("data after upgrade: got %q %v %v", val, ok, err)
		}
		return nil
	})
}

func TestReadMigrationsNaming(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   fstest.MapFS
		wantErr bool
	}{
		{"ordered", fstest.MapFS{"0001_a.sql": {}, "0002_b.sql": {}}, false},
		{"hole", fstest.MapFS{"0001_a.sql": {}, "0003_c.sql": {}}, true},
		{"unnumbered", fstest.MapFS{"init.sql": {}}, true},
		{"zero", fstest.MapFS{"0000_a.sql": {}}, true},
	}
	for _, tc := range tests {
		ms, err := readMigrations(tc.files)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: got %v (%d migrations), want error %v", tc.name, err, len(ms), tc.wantErr)
		}
	}
	if _, err := loadMigrations(); err != nil {
		t.Errorf("embedded migrations: %v", err)
	}
	if SchemaVersion() < 1 {
		t.Error("SchemaVersion < 1")
	}
}

// TestConcurrentOpenOfNewDatabase: processes (here stores) opening the same
// new database at once each apply every migration once, and none fails.
func TestConcurrentOpenOfNewDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), FileName)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), path, quiet())
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
}
