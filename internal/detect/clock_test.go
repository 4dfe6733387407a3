package detect

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/store"
)

func TestNextStampIsNewerThanWhatWasSeen(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		now, last time.Time
		want      time.Time
	}{
		{"nothing seen", t0.Add(123456 * time.Microsecond), time.Time{}, t0.Add(123 * time.Millisecond)},
		{"clock ahead", t0.Add(time.Hour), t0, t0.Add(time.Hour)},
		{"clock behind the peer's change", t0, t0.Add(time.Hour), t0.Add(time.Hour + time.Millisecond)},
		{"same millisecond", t0.Add(500 * time.Microsecond), t0, t0.Add(time.Millisecond)},
	} {
		if got := NextStamp(tc.now, tc.last); !got.Equal(tc.want) {
			t.Errorf("%s: NextStamp(%v, %v) = %v, want %v", tc.name, tc.now, tc.last, got, tc.want)
		}
	}
}

func TestPeerWins(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name         string
		peer, local  time.Time
		master, wins bool
	}{
		{"no time known here (old records)", t0, time.Time{}, false, true},
		{"peer newer", t0.Add(time.Millisecond), t0, false, true},
		{"peer older", t0, t0.Add(time.Millisecond), true, false},
		{"tie, peer is the master", t0, t0, true, true},
		{"tie, peer is the slave", t0, t0, false, false},
	} {
		if got := PeerWins(tc.peer, tc.local, tc.master); got != tc.wins {
			t.Errorf("%s: PeerWins = %v, want %v", tc.name, got, tc.wins)
		}
		// The other side compares the same two times the other way round
		// and must keep the same change.
		if tc.local.IsZero() {
			continue
		}
		if other := PeerWins(tc.local, tc.peer, !tc.master); other == tc.wins {
			t.Errorf("%s: both sides keep their own change (or both the other's)", tc.name)
		}
	}
}

func TestElementTimeAndOldRecords(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	v := ClockVersion(t0)
	if got := ParseClock(v); !got.Equal(t0) {
		t.Errorf("ParseClock(ClockVersion(t)) = %v, want %v", got, t0)
	}
	for _, bad := range []string{"", "x", "-5", "0"} {
		if got := ParseClock(bad); !got.IsZero() {
			t.Errorf("ParseClock(%q) = %v, want no time", bad, got)
		}
	}
	later := ClockVersion(t0.Add(time.Second))
	if got := ElementTime(v, later); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("the floor is newer: ElementTime = %v", got)
	}
	if got := ElementTime(later, v); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("the element is newer: ElementTime = %v", got)
	}
	if got := ElementTime("", ""); !got.IsZero() {
		t.Errorf("no records: ElementTime = %v, want no time", got)
	}
}

// A poll that read the records before the applier recorded a newer peer
// change must not move the element back.
func TestMergeClockOnlyMovesForward(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db.sqlite"), &store.Options{NoSync: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Update(ctx, func(tx *store.Tx) error {
		return tx.SyncPut(store.Sync{ID: "s", Name: "t", Role: store.RoleMaster, ProjectKey: "SUP", SyncUser: "bridge", Transport: "file", SelfNode: "a"})
	}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	item := func(at time.Time) store.SentItem {
		return store.SentItem{SyncID: "s", IssueID: "1", ItemKind: KindWatcherClock, ItemID: "alice", Version: ClockVersion(at)}
	}
	for _, tc := range []struct {
		put, want time.Time
	}{{t0, t0}, {t0.Add(time.Second), t0.Add(time.Second)}, {t0, t0.Add(time.Second)}} {
		var got string
		if err := st.Update(ctx, func(tx *store.Tx) error {
			if err := MergeClock(tx, item(tc.put)); err != nil {
				return err
			}
			got, _, err = tx.SentGet("s", "1", KindWatcherClock, "alice")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if !ParseClock(got).Equal(tc.want) {
			t.Errorf("after MergeClock(%v): %v, want %v", tc.put, ParseClock(got), tc.want)
		}
	}
}
