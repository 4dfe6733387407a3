package apply

import (
	"context"
	"time"

	"github.com/jirabridge/jirabridge/internal/detect"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Conflicts of watchers and links (see detect/clock.go): each element has
// the time of the last change of it this side knows of; the peer's change
// applies when detect.PeerWins, and otherwise is recorded as lost
// ("older", with a conflict) without touching Jira. The peer compares the
// same two times the other way round, so both keep the same change.

// elementTime reads the time of a watcher or link element of a local
// issue: its own clock record or the kind's floor, whichever is newer.
func (a *Applier) elementTime(ctx context.Context, localIssue, kind, id string) (time.Time, error) {
	var t time.Time
	err := a.o.Store.View(ctx, func(tx *store.Tx) error {
		own, _, err := tx.SentGet(a.o.SyncID, localIssue, kind, id)
		if err != nil {
			return err
		}
		floor, _, err := tx.SentGet(a.o.SyncID, localIssue, kind, "")
		t = detect.ElementTime(own, floor)
		return err
	})
	return t, storeErr("read the time of "+kind+" "+id, err)
}

// peerWins applies the rule with this side's role: the peer is the master
// when this side is not.
func (a *Applier) peerWins(peerAt, localAt time.Time) bool {
	return detect.PeerWins(peerAt, localAt, a.o.Role != store.RoleMaster)
}

// clockItem is the record that moves an element to the time of an applied
// change (record and the other writers merge it: it never moves back).
func clockItem(kind, id string, at time.Time) store.SentItem {
	return store.SentItem{ItemKind: kind, ItemID: id, Version: detect.ClockVersion(at)}
}

// putSent writes one sent item; clock records only move forward.
func putSent(tx *store.Tx, s store.SentItem) error {
	if detect.IsClockKind(s.ItemKind) {
		return detect.MergeClock(tx, s)
	}
	return tx.SentPut(s)
}

// elementConflict is the conflict record of a watcher or link element
// whose local change won over the peer's (change c).
func (a *Applier) elementConflict(c wire.Change, localKey, element, localValue, peerValue string, localAt time.Time) store.Conflict {
	return store.Conflict{SyncID: a.o.SyncID, Issue: localKey, Field: element, LocalValue: localValue, LocalAt: localAt,
		PeerValue: peerValue, PeerAt: c.At, Winner: "local"}
}

// lost records the peer's change c of one element as lost to a newer
// local change: a conflict and the ledger result "older", no Jira write.
// The local change travels to the peer by itself (detection sent it, or
// sends it), where it wins by the same comparison.
func (a *Applier) lost(ctx context.Context, c wire.Change, localIssue string, cf store.Conflict) error {
	a.log.Info("conflict", "change_id", c.ID, "issue", cf.Issue, "element", cf.Field, "winner", "local", "local_at", cf.LocalAt, "peer_at", c.At)
	err := storeErr("commit change "+c.ID, a.o.Store.Update(ctx, func(tx *store.Tx) error {
		cf.At = tx.Now()
		if _, err := tx.ConflictAdd(cf); err != nil {
			return err
		}
		_, err := tx.LedgerRecord(store.Applied{ChangeID: c.ID, SyncID: a.o.SyncID, Issue: localIssue, Result: "older", AppliedAt: tx.Now()})
		return err
	}))
	if err == nil {
		a.conflicted([]store.Conflict{cf})
	}
	return err
}

func watchState(on bool) string {
	if on {
		return "watching"
	}
	return "not watching"
}

func linkState(on bool) string {
	if on {
		return "linked"
	}
	return "not linked"
}
