package apply

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jirabridge/jirabridge/internal/detect"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/perms"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// ReasonPairDissolved is the changes_skipped_total reason of a change of
// an issue whose pair was dissolved because one of the two was deleted: a
// change that was under way when the delete happened, dropped instead of
// parked.
const ReasonPairDissolved = "pair_dissolved"

// NoticeProperty marks a comment the sync user wrote to tell people
// something about the sync (the partner issue was deleted), with the
// change that caused it, so a retry after a crash finds it instead of
// writing it twice.
const NoticeProperty = "jirabridge.notice"

// Notice is the value of the NoticeProperty.
type Notice struct {
	Sync     string `json:"sync"`
	ChangeID string `json:"change_id"`
}

// DissolvedCursor names the store cursor that marks a peer issue whose pair
// was dissolved (value: the local issue id it was paired with). Changes of
// that peer issue still on their way are skipped, not parked.
func DissolvedCursor(syncID, peerIssueID string) string {
	return "dissolved/" + syncID + "/" + peerIssueID
}

// DissolvePair ends pair p inside tx: the pair goes, detection sends
// nothing more of the local issue (a detect.KindUnpaired record), and
// changes of the peer issue still on their way are skipped. Both the side
// that saw the delete and the side that is told of it call it.
//
// What was listed as left out of the issue's sync (status) no longer
// applies, links set aside that start or end at the peer issue can never
// be made, the issue's parked outgoing changes can never be sent, and the
// peer issue's parked incoming ones never applied: all go too (links set
// aside that end there stay listed as not made, saying why).
func DissolvePair(tx *store.Tx, p store.IssuePair) error {
	if err := tx.PairDelete(p.SyncID, p.LocalID); err != nil {
		return err
	}
	// What detection kept of the issue (what it sent, element clocks)
	// no longer matters: only the mark that it is unpaired stays.
	if err := tx.SentDeleteIssue(p.SyncID, p.LocalID); err != nil {
		return err
	}
	if err := tx.SentPut(store.SentItem{SyncID: p.SyncID, IssueID: p.LocalID, ItemKind: detect.KindUnpaired, Version: p.PeerID}); err != nil {
		return err
	}
	for _, dir := range []store.SkipDirection{store.SkipOutgoing, store.SkipIncoming} {
		if _, err := tx.SkipClearIssue(p.SyncID, dir, p.LocalID); err != nil {
			return err
		}
	}
	if err := dropWaitingLinksOf(tx, p.SyncID, p.PeerID); err != nil {
		return err
	}
	if err := resolveOutgoingParks(tx, p.SyncID, p.LocalID); err != nil {
		return err
	}
	if err := unparkIncoming(tx, p.SyncID, p.PeerID); err != nil {
		return err
	}
	return tx.CursorSet(DissolvedCursor(p.SyncID, p.PeerID), p.LocalID)
}

// unparkIncoming puts the peer issue's parked changes back in its lane:
// they can never be applied now, and their next try drops them as
// changes of a dissolved pair (skipDissolved), which resolves their
// failures. (On the side told of the delete the lane holds none: the
// delete itself waited behind them.)
func unparkIncoming(tx *store.Tx, syncID, peerIssueID string) error {
	items, err := tx.ReplayLane(syncID, peerIssueID)
	if err != nil {
		return err
	}
	for _, it := range items {
		if it.State != store.ReplayParked {
			continue
		}
		if err := tx.ReplaySetState(it.ID, store.ReplayPending, it.LastError, time.Time{}, false); err != nil {
			return err
		}
	}
	return nil
}

// resolveOutgoingParks resolves the local issue's parked outgoing changes
// (detection's failures, "<change id>@<local issue id>"): an issue that is
// not synced any more has nothing to send, and a retry would find nothing.
func resolveOutgoingParks(tx *store.Tx, syncID, localID string) error {
	fs, err := tx.FailureList(syncID, 10000, store.FailureOpen, store.FailureRetrying)
	if err != nil {
		return err
	}
	for _, f := range fs {
		if strings.HasPrefix(f.Kind, detect.FailureKindPrefix) && strings.HasSuffix(f.ChangeID, "@"+localID) {
			if err := tx.FailureResolve(f.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropWaitingLinksOf drops the links set aside whose either end is the
// peer issue. Those that start at another issue stay listed as skipped
// (on the local issue of the link's outward end), now saying that their
// other end was deleted.
func dropWaitingLinksOf(tx *store.Tx, syncID, peerIssueID string) error {
	var dropped []wire.Change
	if err := editWaiting(tx, syncID, func(ws []wire.Change) []wire.Change {
		return slices.DeleteFunc(ws, func(w wire.Change) bool {
			gone := w.IssueID == peerIssueID || (w.Link != nil && w.Link.OtherIssueID == peerIssueID)
			if gone {
				dropped = append(dropped, w)
			}
			return gone
		})
	}); err != nil {
		return err
	}
	for _, w := range dropped {
		if w.IssueID == peerIssueID {
			continue // the dissolved issue's own entries are cleared above
		}
		// A link to the dissolved issue is not made: listed with why.
		if err := recordGoneLink(tx, syncID, w, goneDeleted); err != nil {
			return err
		}
	}
	return nil
}

// skipDissolved records a change of a dissolved pair's peer issue as done
// without writing anything.
func (a *Applier) skipDissolved(ctx context.Context, c wire.Change) error {
	if err := storeErr("commit change "+c.ID, a.o.Store.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.LedgerRecord(store.Applied{ChangeID: c.ID, SyncID: a.o.SyncID, Issue: c.IssueID, Result: ReasonPairDissolved, AppliedAt: tx.Now()})
		return err
	})); err != nil {
		return err
	}
	if c.Kind != wire.IssueDelete {
		a.log.Info("change of an issue no longer synced skipped", "change_id", c.ID, "peer_issue", c.IssueKey, "kind", string(c.Kind))
		if a.o.OnSkip != nil {
			a.o.OnSkip(ReasonPairDissolved)
		}
	}
	return nil
}

// deleted handles the peer's delete of a synced issue: with
// PropagateDeletes the local issue is deleted too; otherwise it stays, the
// sync user comments that the partner issue was deleted, the remote link
// and the sync property say so, and the pair is dissolved. Either way
// nothing parks: a delete of an issue that was never paired here is done
// at once.
func (a *Applier) deleted(ctx context.Context, c wire.Change) error {
	p, found, err := a.pairByPeer(ctx, c.IssueID)
	if err != nil {
		return err
	}
	if found {
		if a.o.PropagateDeletes {
			err = a.deleteLocal(ctx, c, p)
		} else {
			err = a.keepLocal(ctx, c, p)
		}
		if err != nil {
			return err
		}
	}
	return storeErr("commit delete "+c.ID, a.o.Store.Update(ctx, func(tx *store.Tx) error {
		result := "not_paired"
		if !found {
			// Never created here: links and sub-tasks waiting for it
			// stop waiting, and its changes still on the way are dropped.
			if err := tx.CursorSet(DissolvedCursor(a.o.SyncID, c.IssueID), ""); err != nil {
				return err
			}
			if err := endWaitsOn(tx, a.o.SyncID, c.IssueID, goneDeleted); err != nil {
				return err
			}
		}
		if found {
			p.SyncID = a.o.SyncID
			if err := DissolvePair(tx, p); err != nil {
				return err
			}
			result = "kept"
			if a.o.PropagateDeletes {
				result = "deleted"
			}
		}
		_, err := tx.LedgerRecord(store.Applied{ChangeID: c.ID, SyncID: a.o.SyncID, Issue: p.LocalID, Result: result, AppliedAt: tx.Now()})
		return err
	}))
}

func (a *Applier) deleteLocal(ctx context.Context, c wire.Change, p store.IssuePair) error {
	if err := a.refusedErr(c, perms.FeatureDeletesPropagate); err != nil {
		return err
	}
	err := a.o.Jira.DeleteIssue(ctx, p.LocalID)
	if jira.StatusOf(err) == http.StatusForbidden && errclass.Of(err) != errclass.Pause {
		user, _ := a.user(ctx)
		return errclass.New(errclass.Permanent, "permission", fmt.Errorf(
			"change %s: the partner deleted %s and this side propagates deletes (deletes: propagate), but the sync user %q may not delete %s: "+
				"grant DELETE_ISSUES in the project's permission scheme and retry this change, or skip it to keep the issue: %w",
			c.ID, issueName(c), user, p.LocalKey, err))
	}
	if err != nil && !notFound(err) {
		return fmt.Errorf("delete %s, whose partner %s was deleted: %w", p.LocalKey, issueName(c), err)
	}
	a.log.Info("deleted issue whose partner was deleted", "change_id", c.ID, "issue", p.LocalKey, "peer_issue", p.PeerKey)
	return a.after(StepDelete, c)
}

func (a *Applier) keepLocal(ctx context.Context, c wire.Change, p store.IssuePair) error {
	peer := p.PeerKey
	if peer == "" {
		peer = p.PeerID
	}
	when := c.At
	if when.IsZero() {
		when = a.o.Now()
	}
	cms, err := a.o.Jira.CommentsWithProps(ctx, p.LocalID)
	if notFound(err) {
		return nil // deleted here too meanwhile: only the pair is left to dissolve
	}
	if err != nil {
		return fmt.Errorf("read comments of %s: %w", p.LocalKey, err)
	}
	written := false
	for i := range cms {
		var n Notice
		if cms[i].Property(NoticeProperty, &n) && n.ChangeID == c.ID && n.Sync == a.o.SyncID {
			written = true
			break
		}
	}
	if !written {
		body := fmt.Sprintf("The partner issue %s in %s was deleted there (%s). This issue stays and is no longer synced with it: "+
			"changes made here are not sent, and none arrive.", peer, a.o.PeerName, when.UTC().Format("2006-01-02 15:04 MST"))
		props := []jira.Property{{Key: NoticeProperty, Value: Notice{Sync: a.o.SyncID, ChangeID: c.ID}}}
		if _, err := a.o.Jira.AddComment(ctx, p.LocalID, body, nil, props); err != nil {
			if notFound(err) {
				return nil
			}
			return fmt.Errorf("comment on %s that its partner was deleted: %w", p.LocalKey, err)
		}
		if err := a.after(StepNotice, c); err != nil {
			return err
		}
	}
	url := "jirabridge:" + a.o.SyncID + "/" + p.PeerKey
	if a.o.PeerURL != "" {
		url = strings.TrimSuffix(a.o.PeerURL, "/") + "/browse/" + p.PeerKey
	}
	rl := jira.RemoteLink{GlobalID: "jirabridge:" + a.o.SyncID + ":" + p.PeerID, Relationship: "was synced with",
		Object: jira.RemoteLinkObject{URL: url, Title: peer + " (" + a.o.PeerName + ", deleted)",
			Summary: "the partner issue was deleted; no longer synced by jirabridge, sync " + a.o.SyncID}}
	if err := a.o.Jira.UpsertRemoteLink(ctx, p.LocalID, rl); err != nil && !notFound(err) {
		return fmt.Errorf("mark the link of %s to its deleted partner: %w", p.LocalKey, err)
	}
	st := a.currentSyncState(ctx, p)
	st.State, st.Reason, st.MessageID, st.ParkedSince, st.Direction = StateUnpaired, "", 0, time.Time{}, ""
	st.Note = fmt.Sprintf("Not synced any more: the partner issue %s was deleted there.", peer)
	if err := a.o.Jira.SetIssueProperty(ctx, p.LocalID, SyncProperty, st); err != nil && !notFound(err) {
		return fmt.Errorf("show %s as unpaired: %w", p.LocalKey, err)
	}
	a.log.Info("partner issue deleted; issue kept and unpaired", "change_id", c.ID, "issue", p.LocalKey, "peer_issue", peer)
	return a.after(StepProperty, c)
}
