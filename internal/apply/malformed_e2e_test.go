package apply_test

import (
	"context"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// TestMalformedContentChangesAreBadChanges: a watcher or link change that
// lacks what it must name (a link without its id or other end, in a single
// change or in a set) parks at once as a bad change, saying what is
// missing; it neither panics nor fails as a store error that would be
// retried for ever.
func TestMalformedContentChangesAreBadChanges(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	r1 := w.create(w.alpha, 0, "one")
	r2 := w.create(w.alpha, 0, "two")
	w.settle()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		c    wire.Change
	}{
		{"watcher.add without watcher", wire.Change{Kind: wire.WatcherAdd}},
		{"link.add without link id, other end missing", wire.Change{Kind: wire.LinkAdd, Link: &wire.Link{Type: "Blocks", OtherIssueID: "99999", Direction: "outward"}}},
		{"link.add without link id", wire.Change{Kind: wire.LinkAdd, Link: &wire.Link{Type: "Blocks", OtherIssueID: r2.ID, Direction: "outward"}}},
		{"link.remove without link id", wire.Change{Kind: wire.LinkRemove, Link: &wire.Link{Type: "Blocks", OtherIssueID: r2.ID, Direction: "outward"}}},
		{"link.set link without id", wire.Change{Kind: wire.LinkSet, Links: []wire.Link{{Type: "Blocks", OtherIssueID: "99999", Direction: "outward"}}}},
		{"link.set link without other end", wire.Change{Kind: wire.LinkSet, Links: []wire.Link{{ID: "7", Type: "Blocks", Direction: "outward"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			c.ID, c.IssueID, c.IssueKey, c.At = "partner/alpha/bad-"+tc.name, r1.ID, r1.Key, at
			err := w.b.app.ApplyContent(ctx, c)
			if errclass.Of(err) != errclass.Permanent || errclass.ReasonOf(err) != "bad_change" {
				t.Errorf("apply: %v (%v, %q), want a permanent bad_change", err, errclass.Of(err), errclass.ReasonOf(err))
			}
		})
	}
	if got := skips(t, w.b); len(got) != 0 {
		t.Errorf("beta skips %q, want none", skipLines(got))
	}
}
