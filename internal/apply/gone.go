package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Links and sub-tasks wait for a peer issue that has no local issue yet.
// When that issue will never get one here (the operator skipped its
// create, or it was deleted), waiting would last for ever: the waiting
// links leave the list with a reason that says why, and a waiting
// sub-task parks (ReasonParentGone) for the operator to retry or skip.

// ReasonParentGone is the errclass reason of a sub-task whose parent will
// never be created here: its create was skipped, or it was deleted.
const ReasonParentGone = "parent_gone"

// SkippedCreateCursor names the store cursor that marks a peer issue whose
// create the operator skipped here (value: the `jirabridge messages` id).
func SkippedCreateCursor(syncID, peerIssueID string) string {
	return "create-skipped/" + syncID + "/" + peerIssueID
}

// CreateSkipped records inside tx that the operator skipped the create of
// peer issue peerIssueID (message failureID): links waiting for it stop
// waiting, and sub-tasks waiting for it park at the replay's next round.
func CreateSkipped(tx *store.Tx, syncID, peerIssueID string, failureID int64) error {
	id := strconv.FormatInt(failureID, 10)
	if err := tx.CursorSet(SkippedCreateCursor(syncID, peerIssueID), id); err != nil {
		return err
	}
	return endWaitsOn(tx, syncID, peerIssueID, goneSkipped(id))
}

func goneSkipped(id string) string {
	return "was skipped here (jirabridge messages skip " + id + ")"
}

const goneDeleted = "was deleted (on the peer, or its copy here): it is not synced any more"

// awaitedGone says why peer issue peerID will never get a local issue here;
// "" while it may still come.
func awaitedGone(tx *store.Tx, syncID, peerID string) (string, error) {
	if _, ok, err := tx.CursorGet(DissolvedCursor(syncID, peerID)); err != nil || ok {
		if ok {
			return goneDeleted, err
		}
		return "", err
	}
	v, ok, err := tx.CursorGet(SkippedCreateCursor(syncID, peerID))
	if err != nil || !ok {
		return "", err
	}
	return goneSkipped(v), nil
}

func (a *Applier) awaitedGone(ctx context.Context, peerID string) (string, error) {
	var why string
	err := a.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		why, err = awaitedGone(tx, a.o.SyncID, peerID)
		return err
	})
	return why, storeErr("read what became of peer issue "+peerID, err)
}

// endWaitsOn drops the waiting links whose other end is peerID and lists
// them as not made, with why.
func endWaitsOn(tx *store.Tx, syncID, peerID, why string) error {
	var dropped []wire.Change
	if err := editWaiting(tx, syncID, func(ws []wire.Change) []wire.Change {
		return slices.DeleteFunc(ws, func(w wire.Change) bool {
			gone := w.IssueID != peerID && w.Link != nil && w.Link.OtherIssueID == peerID
			if gone {
				dropped = append(dropped, w)
			}
			return gone
		})
	}); err != nil {
		return err
	}
	for _, w := range dropped {
		if err := recordGoneLink(tx, syncID, w, why); err != nil {
			return err
		}
	}
	return nil
}

// recordGoneLink lists link change w, whose other end will not come, as
// not made on the local issue it starts from; when that end was deleted
// it clears the entry instead.
func recordGoneLink(tx *store.Tx, syncID string, w wire.Change, why string) error {
	if w.Link == nil || w.Link.ID == "" {
		return nil
	}
	from, err := tx.PairByPeer(syncID, w.IssueID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	key := store.SkipKey{SyncID: syncID, Direction: store.SkipIncoming, IssueID: orID(from), Kind: store.SkipLink, Item: w.Link.ID}
	if why == goneDeleted {
		// Nothing is left to do here, and the peer may never send the
		// link's removal (Jira drops a deleted issue's links without a
		// trace on the other end): no entry that would never go. The
		// peer lists its side of it (other end no longer synced).
		_, err := tx.SkipClear(key)
		return err
	}
	return tx.SkipRecord(store.Skip{SkipKey: key, IssueKey: from.LocalKey, Reason: goneLinkReason(w, why)})
}

func goneLinkReason(w wire.Change, why string) string {
	start := w.IssueKey
	if start == "" {
		start = w.IssueID
	}
	fix := fmt.Sprintf("if that issue gets a copy here after all, resync peer issue %s on the peer to make it, or remove the link there", start)
	return fmt.Sprintf("other end peer issue %s %s: the link is not made; %s", w.Link.OtherIssueID, why, fix)
}

// parentGoneErr is the error of sub-task c whose parent will not come.
func parentGoneErr(c wire.Change, why string) error {
	return fmt.Errorf("sub-task %s cannot be created: its parent, peer issue %s, %s. Skip this message to leave the sub-task out, or retry it once the parent has a copy here",
		issueName(c), c.ParentIssueID, why)
}
