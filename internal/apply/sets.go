package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"

	"github.com/jirabridge/jirabridge/internal/detect"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// The whole watcher and link sets a resync sends (wire.WatcherSet,
// wire.LinkSet). Only what differs is written; each differing element
// follows the conflict rule of its single changes (clock.go), with the
// set's time, and the set's time becomes the kind's floor here as it did
// on the sender.

// clocks reads the clock records of some elements of a kind and its floor.
func (a *Applier) clocks(ctx context.Context, localIssue, kind string, ids []string) (own map[string]string, floor string, err error) {
	own = map[string]string{}
	err = a.o.Store.View(ctx, func(tx *store.Tx) error {
		for _, id := range append(ids, "") {
			v, _, err := tx.SentGet(a.o.SyncID, localIssue, kind, id)
			if err != nil {
				return err
			}
			own[id] = v
		}
		return nil
	})
	return own, own[""], storeErr("read the times of "+kind, err)
}

// watcherSet makes the local watchers the peer's set: the peer's watchers
// that map to a local user are added, and local watchers beyond the set
// are removed, except those this side never sends (the user policy cannot
// send them, or the sync user).
func (a *Applier) watcherSet(ctx context.Context, cm ContentMapping, c wire.Change, p store.IssuePair) error {
	want := map[string]bool{}
	peerOnly := map[string]wire.User{} // by detect.PeerWatcherID: the set's people nobody here matches
	for _, u := range c.Watchers {
		name, ok, err := cm.IncomingUser(ctx, c.IssueKey, u)
		if errors.Is(err, context.Canceled) {
			return err
		}
		if err != nil || !ok {
			a.log.Info("watcher of a resync not mapped here", "change_id", c.ID, "watcher", cm.UserText(u))
			peerOnly[detect.PeerWatcherID(u)] = u
			continue
		}
		want[name] = true
	}
	ws, err := a.o.Jira.Watchers(ctx, p.LocalID)
	if err != nil {
		return fmt.Errorf("read watchers of %s: %w", p.LocalKey, err)
	}
	have := map[string]bool{}
	var diff []string
	for _, u := range ws {
		if u.Name == "" || a.isSyncUser(ctx, u.Name) {
			continue
		}
		have[u.Name] = true
		if _, sends := cm.OutgoingUser(&u); !want[u.Name] && sends {
			diff = append(diff, u.Name)
		}
	}
	for n := range want {
		if !have[n] {
			diff = append(diff, n)
		}
	}
	sort.Strings(diff)
	own, floor, err := a.clocks(ctx, p.LocalID, detect.KindWatcherClock, diff)
	if err != nil {
		return err
	}
	undetected, err := a.undetectedWatchers(ctx, p.LocalID, c.ID, have)
	if err != nil {
		return err
	}
	var conflicts []store.Conflict
	var written []string
	lost := map[string]bool{}
	for _, n := range diff {
		localAt := detect.ElementTime(own[n], floor)
		if undetected[n] {
			// A person changed this watcher here after detection last
			// looked: newer than anything the peer knew when it made
			// the set. It stays, and detection sends it.
			localAt = a.o.Now().UTC()
		}
		if undetected[n] || !a.peerWins(c.At, localAt) {
			conflicts = append(conflicts, a.elementConflict(c, p.LocalKey, "watcher "+n, watchState(have[n]), watchState(want[n]), localAt))
			lost[n] = true
			continue
		}
		if len(written) == 0 {
			if err := a.setBusy(ctx, p.LocalID, detect.KindWatchers, c.ID); err != nil {
				return err
			}
		}
		if want[n] {
			err = a.o.Jira.AddWatcher(ctx, p.LocalID, n)
		} else {
			err = a.o.Jira.RemoveWatcher(ctx, p.LocalID, n)
		}
		if err != nil {
			return fmt.Errorf("change watcher %s of %s: %w", n, p.LocalKey, err)
		}
		written = append(written, n)
	}
	if len(written) > 0 {
		if err := a.after(StepWatcher, c); err != nil {
			return err
		}
	}
	for _, cf := range conflicts {
		a.log.Info("conflict", "change_id", c.ID, "issue", cf.Issue, "element", cf.Field, "winner", "local", "local_at", cf.LocalAt, "peer_at", c.At)
	}
	err = storeErr("commit change "+c.ID, a.o.Store.Update(ctx, func(tx *store.Tx) error {
		// The recorded snapshot follows Jira now, except for the people
		// whose local change won (it was sent, or detection sends it): a
		// retry after a crash between the writes and this record finds
		// nothing left to write, and must not leave the written names to
		// be sent back.
		prev, _, err := tx.SentGet(a.o.SyncID, p.LocalID, detect.KindWatchers, "")
		if err != nil {
			return err
		}
		seq, names := detect.ParseWatcherRecord(prev)
		final := maps.Clone(have)
		for _, n := range written {
			final[n] = want[n]
		}
		var snap []string
		for _, n := range names {
			if lost[n] {
				snap = append(snap, n)
			}
		}
		for n, on := range final {
			if on && !lost[n] {
				snap = append(snap, n)
			}
		}
		if err := tx.SentPut(store.SentItem{SyncID: a.o.SyncID, IssueID: p.LocalID, ItemKind: detect.KindWatchers, Version: detect.WatcherRecord(seq, snap)}); err != nil {
			return err
		}
		// The set is the truth about the peer's people this side cannot
		// name, too.
		items, err := tx.SentList(a.o.SyncID, p.LocalID)
		if err != nil {
			return err
		}
		// (and listed for status as skipped while they watch).
		for _, it := range items {
			if _, still := peerOnly[it.ItemID]; it.ItemKind != detect.KindPeerWatcher || still || it.Version == "0" {
				continue
			}
			it.Version = "0"
			if err := tx.SentPut(it); err != nil {
				return err
			}
			var u wire.User
			if json.Unmarshal([]byte(it.ItemID), &u) == nil {
				if _, err := tx.SkipClear(a.watcherSkip(wire.Change{Watcher: &u}, p)); err != nil {
					return err
				}
			}
		}
		for id, u := range peerOnly {
			if err := tx.SentPut(store.SentItem{SyncID: a.o.SyncID, IssueID: p.LocalID, ItemKind: detect.KindPeerWatcher, ItemID: id, Version: "1"}); err != nil {
				return err
			}
			if err := tx.SkipRecord(store.Skip{SkipKey: a.watcherSkip(wire.Change{Watcher: &u}, p), IssueKey: p.LocalKey,
				Reason: unmappedWatcherReason(u, cm.Def())}); err != nil {
				return err
			}
		}
		return a.commitSet(tx, c, p.LocalID, detect.KindWatchers, detect.KindWatcherClock, len(written) > 0, conflicts, nil)
	}))
	if err == nil {
		a.conflicted(conflicts)
	}
	return err
}

// undetectedWatchers names the watchers of a local issue whose state in
// Jira (have) differs from detection's record: changes a person made that
// detection has not sent yet. On a retry of the set itself (its busy
// marker is still there) the differences may be its own writes before a
// crash, so there are none.
func (a *Applier) undetectedWatchers(ctx context.Context, localIssue, changeID string, have map[string]bool) (map[string]bool, error) {
	var rec string
	var had bool
	var busy string
	if err := a.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		if rec, had, err = tx.SentGet(a.o.SyncID, localIssue, detect.KindWatchers, ""); err != nil {
			return err
		}
		busy, _, err = tx.CursorGet(detect.BusyCursor(a.o.SyncID, localIssue, detect.KindWatchers))
		return err
	}); err != nil {
		return nil, storeErr("read the watcher record", err)
	}
	out := map[string]bool{}
	if !had || busy == changeID {
		return out, nil
	}
	_, names := detect.ParseWatcherRecord(rec)
	inRec := map[string]bool{}
	for _, n := range names {
		inRec[n] = true
		if !have[n] {
			out[n] = true // removed here
		}
	}
	for n := range have {
		if !inRec[n] {
			out[n] = true // added here
		}
	}
	return out, nil
}

// commitSet is the common end of a set: the kind's floor moves to the
// set's time, conflicts are recorded, the busy marker is cleared and the
// ledger holds the change.
func (a *Applier) commitSet(tx *store.Tx, c wire.Change, localIssue, kind, clockKind string, busy bool, conflicts []store.Conflict, sent []store.SentItem) error {
	floor := clockItem(clockKind, "", c.At)
	for _, s := range append(sent, floor) {
		s.SyncID, s.IssueID = a.o.SyncID, localIssue
		if err := putSent(tx, s); err != nil {
			return err
		}
	}
	for _, cf := range conflicts {
		cf.At = tx.Now()
		if _, err := tx.ConflictAdd(cf); err != nil {
			return err
		}
	}
	if busy {
		if err := tx.CursorSet(detect.BusyCursor(a.o.SyncID, localIssue, kind), ""); err != nil {
			return err
		}
	}
	_, err := tx.LedgerRecord(store.Applied{ChangeID: c.ID, SyncID: a.o.SyncID, Issue: localIssue,
		Result: "set, " + strconv.Itoa(len(conflicts)) + " lost", AppliedAt: tx.Now()})
	return err
}

func (a *Applier) pairByLocal(ctx context.Context, localID string) (store.IssuePair, bool, error) {
	var p store.IssuePair
	var found bool
	err := a.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		p, err = tx.PairByLocal(a.o.SyncID, localID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	return p, found, storeErr("read issue pair", err)
}

// linkElem is one link of a set, or one local link beyond it.
type linkElem struct {
	alias, typeName string
	to              store.IssuePair
	have            *jira.IssueLink // the local link, nil when missing
}

// linkSet makes the local issue's outward links between synced issues the
// peer's set: missing ones are made (or wait for their other end, as a
// single link does) and ones beyond the set are removed. Links of a type
// this side does not sync, or to an issue that is not paired, stay.
func (a *Applier) linkSet(ctx context.Context, cm ContentMapping, c wire.Change, from store.IssuePair) error {
	for i, l := range c.Links {
		if l.ID == "" || l.OtherIssueID == "" {
			return badChange(c, fmt.Sprintf("link %d of the set has no id or no other issue", i+1))
		}
	}
	from.LocalID = orID(from)
	want := map[string]*linkElem{}
	var waiting []wire.Change
	var reasons []string
	var missing []bool // the other end has no local issue
	for _, l := range c.Links {
		typeName, typeErr := cm.LinkTypeName(c.IssueKey, l.Type)
		to, found, err := a.pairByPeer(ctx, l.OtherIssueID)
		if err != nil {
			return err
		}
		if !found || typeErr != nil {
			// Set aside like a single link: made when both ends are
			// paired and the type is mapped, listed for status meanwhile.
			w := c
			w.ID, w.Kind, w.Links = c.ID+"/"+l.ID, wire.LinkAdd, nil
			lc := l
			w.Link = &lc
			reason := waitingLinkReason(w)
			if typeErr != nil {
				reason = linkTypeReason(w)
			}
			waiting, reasons, missing = append(waiting, w), append(reasons, reason), append(missing, !found)
			continue
		}
		to.LocalID = orID(to)
		want[typeName+"|"+to.LocalID] = &linkElem{alias: l.Type, typeName: typeName, to: to}
	}
	ls, err := a.o.Jira.IssueLinks(ctx, from.LocalID)
	if err != nil {
		return fmt.Errorf("read links of %s: %w", from.LocalKey, err)
	}
	var diff []*linkElem
	present := map[string]bool{}
	for i := range ls {
		l := ls[i]
		if l.OutwardIssue == nil {
			continue
		}
		present[l.ID] = true
		if e, ok := want[l.Type.Name+"|"+l.OutwardIssue.ID]; ok {
			e.have = &l
			continue
		}
		alias, ok := cm.LinkTypeAlias(l.Type.Name)
		if !ok {
			continue
		}
		to, paired, err := a.pairByLocal(ctx, l.OutwardIssue.ID)
		if err != nil {
			return err
		}
		if paired {
			to.LocalID = orID(to)
			diff = append(diff, &linkElem{alias: alias, typeName: l.Type.Name, to: to, have: &l})
		}
	}
	var sent []store.SentItem
	for _, e := range want {
		if e.have == nil {
			diff = append(diff, e)
			continue
		}
		// Already there (perhaps made by a try that crashed before its
		// record): recorded, so it is not sent back as new.
		sent = append(sent, store.SentItem{ItemKind: detect.KindLink, ItemID: e.have.ID, Version: detect.LinkVersion(detect.LinkActive, e.alias, e.to.LocalID)})
	}
	sort.Slice(diff, func(i, j int) bool {
		return diff[i].typeName+"|"+diff[i].to.LocalID < diff[j].typeName+"|"+diff[j].to.LocalID
	})
	ids := make([]string, len(diff))
	for i, e := range diff {
		ids[i] = detect.LinkClockID(e.alias, e.to.LocalID)
	}
	own, floor, err := a.clocks(ctx, from.LocalID, detect.KindLinkClock, ids)
	if err != nil {
		return err
	}
	undetected, err := a.undetectedLinks(ctx, from.LocalID, diff)
	if err != nil {
		return err
	}
	var conflicts []store.Conflict
	var made []*linkElem
	lost := map[string]bool{}
	busy := false
	for i, e := range diff {
		add := e.have == nil
		localAt := detect.ElementTime(own[ids[i]], floor)
		if undetected[i] {
			// A person made or removed this link here after detection
			// last looked: newer than the set. It stays as it is, and
			// detection sends it.
			localAt = a.o.Now().UTC()
		}
		if undetected[i] || !a.peerWins(c.At, localAt) {
			conflicts = append(conflicts, a.elementConflict(c, from.LocalKey, "link "+e.typeName+" "+e.to.LocalKey, linkState(!add), linkState(add), localAt))
			lost[ids[i]] = true
			continue
		}
		if !busy {
			if err := a.setBusy(ctx, from.LocalID, detect.KindLink, c.ID); err != nil {
				return err
			}
			busy = true
		}
		if add {
			if err := a.o.Jira.CreateLink(ctx, e.typeName, from.LocalKey, e.to.LocalKey); err != nil {
				return fmt.Errorf("link %s to %s: %w", from.LocalKey, e.to.LocalKey, err)
			}
			made = append(made, e)
			continue
		}
		if err := a.o.Jira.DeleteLink(ctx, e.have.ID); err != nil && !notFound(err) {
			return fmt.Errorf("remove link %s of %s: %w", e.have.ID, from.LocalKey, err)
		}
		sent = append(sent, store.SentItem{ItemKind: detect.KindLink, ItemID: e.have.ID, Version: detect.LinkVersion(detect.LinkRemoved, e.alias, e.to.LocalID)})
	}
	if busy {
		if err := a.after(StepLink, c); err != nil {
			return err
		}
	}
	if len(made) > 0 {
		// The new links' ids, for their records.
		if ls, err = a.o.Jira.IssueLinks(ctx, from.LocalID); err != nil {
			return fmt.Errorf("read links of %s: %w", from.LocalKey, err)
		}
		for _, e := range made {
			i := slices.IndexFunc(ls, func(l jira.IssueLink) bool {
				return l.OutwardIssue != nil && l.OutwardIssue.ID == e.to.LocalID && l.Type.Name == e.typeName
			})
			if i < 0 {
				return errclass.New(errclass.Temporary, "jira_bad_answer", fmt.Errorf("link %s %s %s was made but is not listed", from.LocalKey, e.typeName, e.to.LocalKey))
			}
			sent = append(sent, store.SentItem{ItemKind: detect.KindLink, ItemID: ls[i].ID, Version: detect.LinkVersion(detect.LinkActive, e.alias, e.to.LocalID)})
		}
	}
	for _, cf := range conflicts {
		a.log.Info("conflict", "change_id", c.ID, "issue", cf.Issue, "element", cf.Field, "winner", "local", "local_at", cf.LocalAt, "peer_at", c.At)
	}
	err = storeErr("commit change "+c.ID, a.o.Store.Update(ctx, func(tx *store.Tx) error {
		// A link whose other end will never come here is listed as not
		// made instead of waiting.
		var stillWaiting []wire.Change
		for i, w := range waiting {
			why := ""
			if missing[i] {
				var err error
				if why, err = awaitedGone(tx, a.o.SyncID, w.Link.OtherIssueID); err != nil {
					return err
				}
			}
			if why != "" {
				reasons[i] = goneLinkReason(w, why)
				continue
			}
			stillWaiting = append(stillWaiting, w)
		}
		// Entries of earlier links of the set listed as not made: the set
		// decides them anew.
		for _, l := range c.Links {
			if _, err := tx.SkipClear(store.SkipKey{SyncID: a.o.SyncID, Direction: store.SkipIncoming, IssueID: from.LocalID, Kind: store.SkipLink, Item: l.ID}); err != nil {
				return err
			}
		}
		// Links of this issue still waiting for their other end: the set
		// replaces them.
		var dropped []wire.Change
		if err := a.editWaitingTx(tx, func(ws []wire.Change) []wire.Change {
			ws = slices.DeleteFunc(ws, func(w wire.Change) bool {
				if w.IssueID == c.IssueID {
					dropped = append(dropped, w)
				}
				return w.IssueID == c.IssueID
			})
			return append(ws, stillWaiting...)
		}); err != nil {
			return err
		}
		for _, w := range dropped {
			if _, err := tx.SkipClear(a.linkSkip(w, from.LocalID)); err != nil {
				return err
			}
		}
		for i, w := range waiting {
			if err := tx.SkipRecord(store.Skip{SkipKey: a.linkSkip(w, from.LocalID), IssueKey: from.LocalKey, Reason: reasons[i]}); err != nil {
				return err
			}
		}
		// Links recorded as made that are gone (removed by a try that
		// crashed before its record, or by a person and not sent yet):
		// the set decided them, unless a person's removal won over it and
		// is still to be sent.
		items, err := tx.SentList(a.o.SyncID, from.LocalID)
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.ItemKind != detect.KindLink || present[it.ItemID] {
				continue
			}
			if st, alias, other := detect.ParseLinkVersion(it.Version); st == detect.LinkActive && !lost[detect.LinkClockID(alias, other)] {
				sent = append(sent, store.SentItem{ItemKind: detect.KindLink, ItemID: it.ItemID, Version: detect.LinkVersion(detect.LinkRemoved, alias, other)})
			}
		}
		return a.commitSet(tx, c, from.LocalID, detect.KindLink, detect.KindLinkClock, busy, conflicts, sent)
	}))
	if err == nil {
		a.conflicted(conflicts)
	}
	return err
}

// undetectedLinks tells which links of diff a person made or removed
// here without detection having seen it yet: a local link beyond the set
// that detection never recorded as sent, or a link of the set that
// detection recorded as made and that is gone.
func (a *Applier) undetectedLinks(ctx context.Context, localIssue string, diff []*linkElem) (map[int]bool, error) {
	var items []store.SentItem
	if err := a.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		items, err = tx.SentList(a.o.SyncID, localIssue)
		return err
	}); err != nil {
		return nil, storeErr("read the link records", err)
	}
	state := map[string]string{} // link id -> recorded state
	active := map[string]bool{}  // LinkClockID of links recorded as made
	for _, it := range items {
		if it.ItemKind != detect.KindLink {
			continue
		}
		st, alias, other := detect.ParseLinkVersion(it.Version)
		state[it.ItemID] = st
		if st == detect.LinkActive {
			active[detect.LinkClockID(alias, other)] = true
		}
	}
	out := map[int]bool{}
	for i, e := range diff {
		if e.have != nil {
			out[i] = state[e.have.ID] != detect.LinkActive
		} else {
			out[i] = active[detect.LinkClockID(e.alias, e.to.LocalID)]
		}
	}
	return out, nil
}
