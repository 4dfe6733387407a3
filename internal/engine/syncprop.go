package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jirabridge/jirabridge/internal/detect"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/store"
)

// ParkedShownCursor names the store cursor that holds which local issues
// have their jirabridge.sync property showing "parked", and for which
// failure (a JSON object: local issue id -> failure id), so that a restart
// neither writes the property again nor forgets to clear it.
func ParkedShownCursor(syncID string) string { return "engine/" + syncID + "/parked-shown" }

// Directions of a parked change, as the property shows them.
const (
	DirIncoming = "incoming" // the peer's change could not be applied here
	DirOutgoing = "outgoing" // a local change could not be translated for the peer
)

type parkedIssue struct {
	pair store.IssuePair
	f    store.Failure
	dir  string
}

// showParked makes the jirabridge.sync property of every paired issue
// follow its parked changes: "parked" (with the messages id) while a change
// of the issue is parked in either direction, "synced" again once the
// operator retried or skipped it (from the CLI, the status page or another
// process: the store is the truth, so this runs every step). An issue with
// no pair has no property to change.
func (n *Node) showParked(ctx context.Context) error {
	shown := map[string]int64{}
	want := map[string]parkedIssue{}
	cleared := map[string]store.IssuePair{}
	cursor := ParkedShownCursor(n.cfg.SyncID)
	err := n.cfg.Store.View(ctx, func(tx *store.Tx) error {
		raw, _, err := tx.CursorGet(cursor)
		if err != nil {
			return err
		}
		if raw != "" {
			if err := json.Unmarshal([]byte(raw), &shown); err != nil {
				n.log.Warn("parked-issue record unreadable; properties are written again", "err", err)
				shown = map[string]int64{}
			}
		}
		fs, err := tx.FailureList(n.cfg.SyncID, 1000, store.FailureOpen)
		if err != nil {
			return err
		}
		for _, f := range fs {
			p, dir, ok, err := failurePair(tx, n.cfg.SyncID, f)
			if err != nil {
				return err
			}
			if _, dup := want[p.LocalID]; ok && !dup {
				want[p.LocalID] = parkedIssue{pair: p, f: f, dir: dir}
			}
		}
		for id := range shown {
			if _, still := want[id]; still {
				continue
			}
			p, err := tx.PairByLocal(n.cfg.SyncID, id)
			switch {
			case errors.Is(err, store.ErrNotFound):
				cleared[id] = store.IssuePair{} // unpaired since: nothing to write
			case err != nil:
				return err
			default:
				cleared[id] = p
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read parked issues: %w", err)
	}
	changed := false
	var errs []error
	// write runs one property write; it reports whether the record may
	// move on: yes on success and on a permanent error (an issue deleted
	// meanwhile must not be tried every step), no otherwise.
	write := func(what string, fn func() error) (bool, error) {
		err := fn()
		switch {
		case err == nil:
			return true, nil
		case errclass.Of(err) == errclass.Pause:
			return false, err
		case errclass.IsRetryable(err):
			errs = append(errs, err)
			return false, nil
		default:
			n.log.Warn("cannot show the sync state in Jira; given up for this issue", "what", what, "err", err)
			return true, nil
		}
	}
	for id, w := range want {
		if shown[id] == w.f.ID {
			continue
		}
		ok, err := write("parked "+w.pair.LocalKey, func() error { return n.applier.ShowParked(ctx, w.pair, w.f, w.dir) })
		if err != nil {
			return err
		}
		if ok {
			shown[id], changed = w.f.ID, true
		}
	}
	for id, p := range cleared {
		ok := true
		if p.LocalID != "" {
			var err error
			if ok, err = write("synced "+p.LocalKey, func() error { return n.applier.ShowSynced(ctx, p) }); err != nil {
				return err
			}
		}
		if ok {
			delete(shown, id)
			changed = true
		}
	}
	if changed {
		raw, err := json.Marshal(shown)
		if err != nil {
			return fmt.Errorf("encode parked issues: %w", err)
		}
		if err := n.cfg.Store.Update(ctx, func(tx *store.Tx) error { return tx.CursorSet(cursor, string(raw)) }); err != nil {
			return fmt.Errorf("record parked issues: %w", err)
		}
	}
	return errors.Join(errs...)
}

// failurePair finds the pair a parked change belongs to: an incoming
// change through its replay lane (the peer's issue id), an outgoing one
// (detection's "<change id>@<local issue id>") by the local issue id.
func failurePair(tx *store.Tx, syncID string, f store.Failure) (store.IssuePair, string, bool, error) {
	var p store.IssuePair
	var err error
	var dir string
	switch {
	case strings.HasPrefix(f.Kind, detect.FailureKindPrefix):
		i := strings.LastIndexByte(f.ChangeID, '@')
		if i < 0 {
			return p, "", false, nil
		}
		dir = DirOutgoing
		p, err = tx.PairByLocal(syncID, f.ChangeID[i+1:])
	case f.ChangeID != "":
		it, ierr := tx.ReplayGetByChange(syncID, f.ChangeID)
		if errors.Is(ierr, store.ErrNotFound) {
			return p, "", false, nil // not a replay failure (link events), or purged
		}
		if ierr != nil {
			return p, "", false, ierr
		}
		dir = DirIncoming
		p, err = tx.PairByPeer(syncID, it.Issue)
	default:
		return p, "", false, nil
	}
	if errors.Is(err, store.ErrNotFound) {
		return p, "", false, nil
	}
	return p, dir, err == nil, err
}
