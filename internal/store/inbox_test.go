package store

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestInboxDuplicatesAndGaps(t *testing.T) {
	t.Parallel()
	s, clk := open(t)
	t0 := clk.Now()
	insert := func(seq uint64) bool {
		t.Helper()
		var dup bool
		update(t, s, func(tx *Tx) error {
			var err error
			dup, err = tx.InboxInsert(InboxEntry{SyncID: testSync, Sender: "node-b", Seq: seq, Kind: "changes",
				Sealed: []byte{byte(seq)}})
			return err
		})
		return dup
	}
	state := func() (InboxCursor, []Gap, []uint64) {
		t.Helper()
		var c InboxCursor
		var g []Gap
		var m []uint64
		view(t, s, func(tx *Tx) error {
			var err error
			if c, err = tx.InboxCursor(testSync, "node-b"); err != nil {
				return err
			}
			if g, err = tx.InboxGaps(testSync, "node-b"); err != nil {
				return err
			}
			m, err = tx.InboxMissing(testSync, "node-b", 0)
			return err
		})
		return c, g, m
	}

	if insert(1) {
		t.Fatal("first insert of 1 reported duplicate")
	}
	if !insert(1) {
		t.Error("second insert of 1 not reported duplicate")
	}
	clk.Add(time.Second) // t0+1s
	insert(4)
	clk.Add(time.Second) // t0+2s
	insert(7)
	insert(8)
	if !insert(7) {
		t.Error("second insert of 7 (above the prefix) not reported duplicate")
	}

	c, g, m := state()
	if want := (InboxCursor{Contiguous: 1, HighestSeen: 8}); c != want {
		t.Errorf("cursor: got %+v, want %+v", c, want)
	}
	wantGaps := []Gap{
		{From: 2, To: 3, FirstSeen: t0.Add(time.Second)},
		{From: 5, To: 6, FirstSeen: t0.Add(2 * time.Second)},
	}
	if !reflect.DeepEqual(g, wantGaps) {
		t.Errorf("gaps: got %+v, want %+v", g, wantGaps)
	}
	if want := []uint64{2, 3, 5, 6}; !reflect.DeepEqual(m, want) {
		t.Errorf("missing: got %v, want %v", m, want)
	}

	// Filling 2 and 3 joins 4 to the prefix; 5..6 stay missing.
	insert(3)
	insert(2)
	c, g, _ = state()
	if want := (InboxCursor{Contiguous: 4, HighestSeen: 8}); c != want {
		t.Errorf("cursor after filling 2,3: got %+v, want %+v", c, want)
	}
	if want := wantGaps[1:]; !reflect.DeepEqual(g, want) {
		t.Errorf("gaps after filling 2,3: got %+v, want %+v", g, want)
	}
	insert(6)
	_, g, _ = state()
	if want := []Gap{{From: 5, To: 5, FirstSeen: t0.Add(2 * time.Second)}}; !reflect.DeepEqual(g, want) {
		t.Errorf("gaps after 6: got %+v, want %+v", g, want)
	}
	insert(5)
	c, g, m = state()
	if want := (InboxCursor{Contiguous: 8, HighestSeen: 8}); c != want || g != nil || m != nil {
		t.Errorf("after filling all: cursor %+v gaps %v missing %v, want %+v and none", c, g, m, want)
	}

	// Far beyond: stored, the numbers between become one gap.
	insert(1000)
	c, _, m = state()
	if c.HighestSeen != 1000 || len(m) != 991 || m[0] != 9 || m[990] != 999 {
		t.Errorf("after 1000: cursor %+v, %d missing", c, len(m))
	}
}

func TestInboxReleaseAndPurge(t *testing.T) {
	t.Parallel()
	s, clk := open(t)
	update(t, s, func(tx *Tx) error {
		for _, seq := range []uint64{1, 2, 4} {
			if _, err := tx.InboxInsert(InboxEntry{SyncID: testSync, Sender: "b", Seq: seq, Kind: "changes"}); err != nil {
				return err
			}
		}
		return nil
	})
	update(t, s, func(tx *Tx) error {
		rel, err := tx.InboxReleasable(testSync, "b", 0)
		if err != nil {
			return err
		}
		if len(rel) != 2 || rel[0].Seq != 1 || rel[1].Seq != 2 {
			t.Errorf("releasable: got %v, want 1 and 2 (4 is beyond a gap)", rel)
		}
		return tx.InboxMarkReleased(testSync, "b", 1)
	})
	clk.Add(time.Hour)
	update(t, s, func(tx *Tx) error {
		rel, err := tx.InboxReleasable(testSync, "b", 0)
		if err != nil {
			return err
		}
		if len(rel) != 1 || rel[0].Seq != 2 {
			t.Errorf("releasable after releasing 1: got %v, want 2", rel)
		}
		// 2 waits for release, 4 behind the gap at 3.
		if n, err := tx.InboxUnreleased(testSync); err != nil || n != 2 {
			t.Errorf("unreleased: got %d, %v; want 2", n, err)
		}
		n, err := tx.InboxPurge(clk.Now())
		if err != nil {
			return err
		}
		if n != 1 {
			t.Errorf("purge: got %d, want 1", n)
		}
		if _, err := tx.InboxGet(testSync, "b", 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("get purged 1: got %v, want ErrNotFound", err)
		}
		// A late duplicate of a purged envelope is still recognised.
		dup, err := tx.InboxInsert(InboxEntry{SyncID: testSync, Sender: "b", Seq: 1})
		if err != nil {
			return err
		}
		if !dup {
			t.Error("re-insert of purged 1: not reported duplicate")
		}
		return nil
	})
}

func TestInboxSendersAreSeparate(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	update(t, s, func(tx *Tx) error {
		for _, sender := range []string{"b", "c"} {
			dup, err := tx.InboxInsert(InboxEntry{SyncID: testSync, Sender: sender, Seq: 1})
			if err != nil {
				return err
			}
			if dup {
				t.Errorf("seq 1 from %s reported duplicate", sender)
			}
		}
		if _, err := tx.InboxInsert(InboxEntry{SyncID: testSync, Sender: "b", Seq: 0}); err == nil {
			t.Error("seq 0 accepted, want an error")
		}
		return nil
	})
}
