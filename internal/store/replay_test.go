package store

import (
	"testing"
	"time"
)

func TestReplayLanes(t *testing.T) {
	t.Parallel()
	s, clk := open(t)
	ids := map[string]int64{}
	update(t, s, func(tx *Tx) error {
		for _, c := range []struct{ issue, change string }{
			{"A", "a1"}, {"B", "b1"}, {"A", "a2"}, {"C", "c1"}, {"B", "b2"},
		} {
			id, dup, err := tx.ReplayEnqueue(testSync, c.issue, c.change, []byte(c.change))
			if err != nil {
				return err
			}
			if dup {
				t.Errorf("enqueue %s: duplicate", c.change)
			}
			ids[c.change] = id
		}
		id, dup, err := tx.ReplayEnqueue(testSync, "A", "a1", []byte("again"))
		if err != nil {
			return err
		}
		if !dup || id != ids["a1"] {
			t.Errorf("enqueue a1 again: got id %d dup %v, want %d true", id, dup, ids["a1"])
		}
		return nil
	})
	ready := func() []string {
		t.Helper()
		var out []string
		view(t, s, func(tx *Tx) error {
			items, err := tx.ReplayReady(testSync, clk.Now(), 0)
			for _, it := range items {
				out = append(out, it.ChangeID)
			}
			return err
		})
		return out
	}
	eq := func(name string, got []string, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
			return
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: got %v, want %v", name, got, want)
				return
			}
		}
	}
	eq("heads", ready(), "a1", "b1", "c1")

	update(t, s, func(tx *Tx) error {
		if err := tx.ReplaySetState(ids["a1"], ReplayApplied, "", time.Time{}, true); err != nil {
			return err
		}
		if err := tx.ReplaySetState(ids["b1"], ReplayParked, "field missing", time.Time{}, true); err != nil {
			return err
		}
		return tx.ReplaySetState(ids["c1"], ReplayPending, "503", clk.Now().Add(time.Minute), true)
	})
	// a2 is next in A; B is blocked by its parked head; C waits for its back-off.
	eq("after apply/park/backoff", ready(), "a2")
	clk.Add(time.Minute)
	eq("after back-off", ready(), "a2", "c1")

	update(t, s, func(tx *Tx) error {
		return tx.ReplaySetState(ids["b1"], ReplaySkipped, "", time.Time{}, false)
	})
	eq("after skipping b1", ready(), "a2", "c1", "b2")

	view(t, s, func(tx *Tx) error {
		it, err := tx.ReplayGet(ids["c1"])
		if err != nil {
			return err
		}
		if it.Attempts != 1 || it.LastError != "503" || string(it.Change) != "c1" {
			t.Errorf("c1: got %+v", it)
		}
		lane, err := tx.ReplayLane(testSync, "A")
		if err != nil {
			return err
		}
		if len(lane) != 1 || lane[0].ChangeID != "a2" {
			t.Errorf("lane A: got %+v", lane)
		}
		skipped, err := tx.ReplayByState(testSync, ReplaySkipped, 0)
		if err != nil {
			return err
		}
		if len(skipped) != 1 || skipped[0].ChangeID != "b1" {
			t.Errorf("skipped: got %+v", skipped)
		}
		return nil
	})
	clk.Add(time.Hour)
	update(t, s, func(tx *Tx) error {
		n, err := tx.ReplayPurge(clk.Now())
		if err != nil {
			return err
		}
		if n != 2 {
			t.Errorf("purge: got %d, want 2 (a1 applied, b1 skipped)", n)
		}
		return nil
	})
}

func TestPendingChanges(t *testing.T) {
	t.Parallel()
	s, clk := open(t)
	t0 := clk.Now()
	var ids []int64
	update(t, s, func(tx *Tx) error {
		for _, c := range []string{"one", "two", "three"} {
			id, err := tx.PendingAdd(testSync, "10", []byte(c))
			if err != nil {
				return err
			}
			ids = append(ids, id)
			clk.Add(time.Second)
		}
		return nil
	})
	update(t, s, func(tx *Tx) error {
		st, err := tx.PendingStats(testSync)
		if err != nil {
			return err
		}
		if want := (PendingStats{Count: 3, Bytes: 11, Oldest: t0}); st != want {
			t.Errorf("stats: got %+v, want %+v", st, want)
		}
		list, err := tx.PendingList(testSync, 2)
		if err != nil {
			return err
		}
		if len(list) != 2 || string(list[0].Change) != "one" || string(list[1].Change) != "two" {
			t.Errorf("list: got %+v", list)
		}
		return tx.PendingDelete(ids[0], ids[1])
	})
	view(t, s, func(tx *Tx) error {
		list, err := tx.PendingList(testSync, 0)
		if err != nil {
			return err
		}
		if len(list) != 1 || string(list[0].Change) != "three" {
			t.Errorf("list after delete: got %+v", list)
		}
		return nil
	})
}
