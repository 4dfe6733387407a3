package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jirabridge/jirabridge/internal/apply"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// sweepPage is the maxResults the delete sweep asks for; Jira may return
// fewer, and paging follows what it returns.
const sweepPage = 1000

// sweepDeletes notices paired issues people deleted here: a deleted issue
// is gone from every search, so polling by "updated" can never see it.
// Every DeleteSweepEvery steps it lists the issues of the sync's project
// (ids only) and, for each pair whose local issue is missing, asks Jira for
// that issue: 404 is a delete (an issue moved elsewhere is still found).
// For each delete it queues an IssueDelete for the peer and dissolves the
// pair in the same transaction; the peer keeps or deletes its copy as its
// sync definition says. It returns how many deletes it queued.
//
// Before it believes a 404 it checks that the sync user may still browse
// the project: a lost permission hides every issue, and must never read
// as every issue deleted.
func (n *Node) sweepDeletes(ctx context.Context) (int, error) {
	n.steps++
	if n.steps < n.sweepAt {
		return 0, nil
	}
	k, err := n.sweep(ctx)
	if err != nil {
		// Try again soon, not at once: Jira may be down.
		n.sweepAt = n.steps + min(n.cfg.DeleteSweepEvery, 12)
		return k, err
	}
	n.sweepAt = n.steps + n.cfg.DeleteSweepEvery
	return k, nil
}

func (n *Node) sweep(ctx context.Context) (int, error) {
	var pairs []store.IssuePair
	if err := n.cfg.Store.View(ctx, func(tx *store.Tx) error {
		after := ""
		for {
			page, err := tx.PairList(n.cfg.SyncID, after, 1000)
			if err != nil {
				return err
			}
			pairs = append(pairs, page...)
			if len(page) < 1000 {
				return nil
			}
			after = page[len(page)-1].LocalID
		}
	}); err != nil {
		return 0, fmt.Errorf("list issue pairs: %w", err)
	}
	if len(pairs) == 0 {
		return 0, nil
	}
	present := map[string]bool{}
	jql := fmt.Sprintf("project = %q", n.cfg.ProjectKey)
	for start := 0; ; {
		p, err := n.cfg.Jira.Search(ctx, jql, start, sweepPage, []string{"updated"}, nil)
		if err != nil {
			return 0, fmt.Errorf("list the project's issues: %w", err)
		}
		for _, is := range p.Issues {
			present[is.ID] = true
		}
		start += len(p.Issues)
		if len(p.Issues) == 0 || start >= p.Total {
			break
		}
	}
	var gone []store.IssuePair
	for _, p := range pairs {
		if present[p.LocalID] {
			continue
		}
		if _, err := n.cfg.Jira.GetIssue(ctx, p.LocalID, []string{"updated"}, nil); err == nil {
			continue // moved to another project, still there
		} else if jira.StatusOf(err) != http.StatusNotFound {
			return 0, fmt.Errorf("look for %s, missing from its project: %w", p.LocalKey, err)
		}
		gone = append(gone, p)
	}
	if len(gone) == 0 {
		return 0, nil
	}
	ok, err := n.cfg.Jira.MyPermissions(ctx, n.cfg.ProjectKey, []string{"BROWSE_PROJECTS"})
	if err != nil {
		return 0, fmt.Errorf("check the sync user still browses %s before treating missing issues as deleted: %w", n.cfg.ProjectKey, err)
	}
	if !ok["BROWSE_PROJECTS"] {
		return 0, errclass.New(errclass.Permanent, "permission", fmt.Errorf(
			"%d synced issues are not visible and the sync user may not browse project %s: grant Browse Projects; nothing is treated as deleted meanwhile",
			len(gone), n.cfg.ProjectKey))
	}
	for i, p := range gone {
		if err := n.queueDelete(ctx, p); err != nil {
			return i, err
		}
		n.log.Info("synced issue deleted here; the partner is told", "issue", p.LocalKey, "peer_issue", p.PeerKey)
	}
	return len(gone), nil
}

// queueDelete queues the IssueDelete of a deleted local issue and
// dissolves its pair, in one transaction.
func (n *Node) queueDelete(ctx context.Context, p store.IssuePair) error {
	c := wire.Change{Version: wire.ChangeVersion, ID: n.detector.ChangeID("x" + p.LocalID), IssueID: p.LocalID, IssueKey: p.LocalKey,
		Kind: wire.IssueDelete, At: n.cfg.Now().UTC().Truncate(time.Millisecond), PeerIssueID: p.PeerID, PeerIssueKey: p.PeerKey}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode delete of %s: %w", p.LocalKey, err)
	}
	err = n.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.PairByLocal(n.cfg.SyncID, p.LocalID); errors.Is(err, store.ErrNotFound) {
			return nil // dissolved meanwhile (the peer's delete of it arrived)
		} else if err != nil {
			return err
		}
		if _, err := tx.PendingAdd(n.cfg.SyncID, p.LocalID, b); err != nil {
			return err
		}
		return apply.DissolvePair(tx, p)
	})
	if err != nil {
		return fmt.Errorf("queue delete of %s: %w", p.LocalKey, err)
	}
	return nil
}
