package store

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func skipKey(dir SkipDirection, issue string, kind SkipKind, item string) SkipKey {
	return SkipKey{SyncID: testSync, Direction: dir, IssueID: issue, Kind: kind, Item: item}
}

func items(ss []Skip) []string {
	var out []string
	for _, s := range ss {
		out = append(out, string(s.Kind)+":"+s.Item)
	}
	return out
}

// TestSkipsRecordListClear: a skip seen again keeps its first time and
// moves its last; the list is newest first and paged; counts are per
// kind; a cleared skip is gone.
func TestSkipsRecordListClear(t *testing.T) {
	t.Parallel()
	s, clk := open(t)
	t0 := clk.Now()
	link := Skip{SkipKey: skipKey(SkipOutgoing, "100", SkipLink, "5001"), IssueKey: "ABC-1",
		Reason: "other end ABC-9 is not in the sync's JQL"}
	update(t, s, func(tx *Tx) error { return tx.SkipRecord(link) })
	clk.Add(time.Second)
	update(t, s, func(tx *Tx) error {
		return tx.SkipRecord(Skip{SkipKey: skipKey(SkipIncoming, "100", SkipWatcher, "dave"), IssueKey: "ABC-1", Reason: "no local user matches"})
	})
	clk.Add(time.Second)
	update(t, s, func(tx *Tx) error {
		return tx.SkipRecord(Skip{SkipKey: skipKey(SkipOutgoing, "101", SkipAttachment, "7"), IssueKey: "ABC-2", Reason: "too large"})
	})
	clk.Add(time.Second)
	// Seen again, with a new reason and no key: first seen stays, last
	// seen moves, the key is kept.
	link2 := link
	link2.IssueKey, link2.Reason = "", "other end ABC-9 is still not in the sync's JQL"
	update(t, s, func(tx *Tx) error { return tx.SkipRecord(link2) })
	t3 := clk.Now()

	view(t, s, func(tx *Tx) error {
		got, err := tx.SkipGet(link.SkipKey)
		if err != nil {
			return err
		}
		if !got.FirstSeenAt.Equal(t0) || !got.LastSeenAt.Equal(t3) || got.IssueKey != "ABC-1" || got.Reason != link2.Reason {
			t.Errorf("seen again: got %+v, want first %v last %v key ABC-1 reason %q", got, t0, t3, link2.Reason)
		}
		all, err := tx.SkipList(testSync, SkipQuery{})
		if err != nil {
			return err
		}
		if want := []string{"link:5001", "attachment:7", "watcher:dave"}; !slices.Equal(items(all), want) {
			t.Errorf("list: got %q, want %q (newest first)", items(all), want)
		}
		page, err := tx.SkipList(testSync, SkipQuery{Offset: 1, Limit: 1})
		if err != nil {
			return err
		}
		if want := []string{"attachment:7"}; !slices.Equal(items(page), want) {
			t.Errorf("page 2 of 1: got %q, want %q", items(page), want)
		}
		in, err := tx.SkipList(testSync, SkipQuery{Direction: SkipIncoming})
		if err != nil {
			return err
		}
		if want := []string{"watcher:dave"}; !slices.Equal(items(in), want) {
			t.Errorf("incoming: got %q, want %q", items(in), want)
		}
		links, err := tx.SkipList(testSync, SkipQuery{Kind: SkipLink})
		if err != nil {
			return err
		}
		if want := []string{"link:5001"}; !slices.Equal(items(links), want) {
			t.Errorf("links: got %q, want %q", items(links), want)
		}
		counts, err := tx.SkipCounts(testSync)
		if err != nil {
			return err
		}
		if want := map[SkipKind]int{SkipLink: 1, SkipWatcher: 1, SkipAttachment: 1}; !maps.Equal(counts, want) {
			t.Errorf("counts: got %v, want %v", counts, want)
		}
		return nil
	})

	// The same item in the other direction is another skip.
	update(t, s, func(tx *Tx) error {
		return tx.SkipRecord(Skip{SkipKey: skipKey(SkipIncoming, "100", SkipLink, "5001"), Reason: "waits for its other end"})
	})
	var cleared, again bool
	update(t, s, func(tx *Tx) error {
		var err error
		if cleared, err = tx.SkipClear(link.SkipKey); err != nil {
			return err
		}
		again, err = tx.SkipClear(link.SkipKey)
		return err
	})
	if !cleared || again {
		t.Errorf("clear: got %v then %v, want true then false", cleared, again)
	}
	view(t, s, func(tx *Tx) error {
		if _, err := tx.SkipGet(link.SkipKey); !errors.Is(err, ErrNotFound) {
			t.Errorf("cleared skip: got %v, want ErrNotFound", err)
		}
		if _, err := tx.SkipGet(skipKey(SkipIncoming, "100", SkipLink, "5001")); err != nil {
			t.Errorf("the incoming skip of the same link: %v", err)
		}
		return nil
	})
}

func TestSkipRecordRefusesBadInput(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	tests := []struct {
		name string
		skip Skip
	}{
		{"no reason", Skip{SkipKey: skipKey(SkipOutgoing, "1", SkipLink, "2")}},
		{"no item", Skip{SkipKey: skipKey(SkipOutgoing, "1", SkipLink, ""), Reason: "r"}},
		{"no issue", Skip{SkipKey: skipKey(SkipOutgoing, "", SkipLink, "2"), Reason: "r"}},
		{"bad direction", Skip{SkipKey: skipKey("sideways", "1", SkipLink, "2"), Reason: "r"}},
		{"bad kind", Skip{SkipKey: skipKey(SkipOutgoing, "1", "field", "2"), Reason: "r"}},
		{"unknown sync", Skip{SkipKey: SkipKey{SyncID: "nope", Direction: SkipOutgoing, IssueID: "1", Kind: SkipLink, Item: "2"}, Reason: "r"}},
	}
	for _, tc := range tests {
		err := s.Update(context.Background(), func(tx *Tx) error { return tx.SkipRecord(tc.skip) })
		if err == nil {
			t.Errorf("%s: SkipRecord(%+v) succeeded, want an error", tc.name, tc.skip)
		}
	}
	if err := s.Update(context.Background(), func(tx *Tx) error {
		_, err := tx.SkipClear(skipKey(SkipOutgoing, "1", "field", "2"))
		return err
	}); err == nil {
		t.Error("SkipClear of a bad kind succeeded")
	}
}

// TestSkipsSurviveReopen: the list is in the database, not in memory.
func TestSkipsSurviveReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(ctx, path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx *Tx) error {
		if err := tx.SyncPut(Sync{ID: testSync, Name: "one", Role: RoleMaster, ProjectKey: "ABC",
			SyncUser: "bridge", Transport: "file", SelfNode: "node-a"}); err != nil {
			return err
		}
		return tx.SkipRecord(Skip{SkipKey: skipKey(SkipOutgoing, "100", SkipWatcher, "bob"), IssueKey: "ABC-1", Reason: "dropped by users.mode drop"})
	})
	s.Close()
	s, err = Open(ctx, path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	view(t, s, func(tx *Tx) error {
		got, err := tx.SkipList(testSync, SkipQuery{})
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].Item != "bob" || got[0].IssueKey != "ABC-1" || got[0].Reason != "dropped by users.mode drop" {
			t.Errorf("after reopen: got %+v", got)
		}
		return nil
	})
}

func TestSkipIssuesAndClearIssue(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	update(t, s, func(tx *Tx) error {
		for _, k := range []SkipKey{
			skipKey(SkipOutgoing, "100", SkipLink, "1"), skipKey(SkipOutgoing, "100", SkipWatcher, "bob"),
			skipKey(SkipOutgoing, "200", SkipLink, "2"), skipKey(SkipIncoming, "100", SkipLink, "3"),
		} {
			if err := tx.SkipRecord(Skip{SkipKey: k, Reason: "r"}); err != nil {
				return err
			}
		}
		return nil
	})
	var issues []string
	var n int
	update(t, s, func(tx *Tx) error {
		var err error
		if issues, err = tx.SkipIssues(testSync, SkipOutgoing); err != nil {
			return err
		}
		n, err = tx.SkipClearIssue(testSync, SkipOutgoing, "100")
		return err
	})
	if want := []string{"100", "200"}; !slices.Equal(issues, want) || n != 2 {
		t.Errorf("issues %q cleared %d, want %q and 2", issues, n, want)
	}
	view(t, s, func(tx *Tx) error {
		all, err := tx.SkipList(testSync, SkipQuery{})
		if want := []string{"link:3", "link:2"}; !slices.Equal(items(all), want) {
			t.Errorf("left %q, want %q", items(all), want)
		}
		return err
	})
}
