package engine

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jirabridge/jirabridge/internal/apply"
	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/store"
)

// Reasons of changes_skipped_total for changes a filter or a user policy
// left out (the operator's skips carry the failure's error class).
const (
	SkipRestrictedComment  = "restricted_comment"    // a comment's visibility keeps it here
	SkipFilteredAttachment = "filtered_attachment"   // too large, or filtered by type or name
	SkipUnsyncedLink       = "link_to_unsynced"      // the other end is not synced, or the type is not mapped
	SkipUnmappableWatcher  = "unmappable_watcher"    // a local watcher the user policy cannot send
	SkipUnmappedPeerWatch  = "unmapped_peer_watcher" // a peer's watcher nobody here matches
)

// skipCounts is what countSkips has turned into metrics so far: the
// detector's counters since it was built, and the applier's count of
// unmapped peer watchers (a store cursor, so it survives restarts: the
// first look only takes the baseline).
type skipCounts struct {
	restricted, attachments, links, watchers int64
	peerWatchers                             int64
	peerWatchersKnown                        bool
}

// countSkips adds what detection and the applier left out since the last
// step to changes_skipped_total. Without Metrics it does nothing.
func (n *Node) countSkips(ctx context.Context) error {
	m := n.cfg.Metrics
	if m == nil {
		return nil
	}
	c := &n.skips
	if st := n.detector.Stats(); st != nil {
		for _, x := range []struct {
			seen   *int64
			now    int64
			reason string
		}{
			{&c.restricted, st.RestrictedComments.Load(), SkipRestrictedComment},
			{&c.attachments, st.FilteredAttachments.Load(), SkipFilteredAttachment},
			{&c.links, st.SkippedLinks.Load(), SkipUnsyncedLink},
			{&c.watchers, st.UnmappableWatchers.Load(), SkipUnmappableWatcher},
		} {
			if d := x.now - *x.seen; d > 0 {
				m.Add(metrics.Skipped, float64(d), x.reason)
			}
			*x.seen = x.now
		}
	}
	now, err := n.peerWatchersSkipped(ctx)
	if err != nil {
		return err
	}
	if d := now - c.peerWatchers; c.peerWatchersKnown && d > 0 {
		m.Add(metrics.Skipped, float64(d), SkipUnmappedPeerWatch)
	}
	c.peerWatchers, c.peerWatchersKnown = now, true
	return nil
}

// skipBaseline reads, before the first step, how many peer watchers the
// applier had skipped in earlier runs, so that only new ones count.
func (n *Node) skipBaseline(ctx context.Context) error {
	if n.cfg.Metrics == nil || n.skips.peerWatchersKnown {
		return nil
	}
	v, err := n.peerWatchersSkipped(ctx)
	if err != nil {
		return err
	}
	n.skips.peerWatchers, n.skips.peerWatchersKnown = v, true
	return nil
}

func (n *Node) peerWatchersSkipped(ctx context.Context) (int64, error) {
	var v string
	if err := n.cfg.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		v, _, err = tx.CursorGet(apply.UnmappedWatchersCursor(n.cfg.SyncID))
		return err
	}); err != nil {
		return 0, fmt.Errorf("count skipped peer watchers: %w", err)
	}
	k, _ := strconv.ParseInt(v, 10, 64)
	return k, nil
}
