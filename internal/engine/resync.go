package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/store"
)

// ResyncRequest is a resync the operator asked for (`jirabridge resync`)
// that the running bridge carries out at its next step. The CLI records it
// in the store rather than calling Jira itself, so it needs no credentials
// and never polls the Jira beside the daemon.
type ResyncRequest struct {
	JQL         string    `json:"jql"`
	RequestedAt time.Time `json:"requested_at"`
}

// ResyncCursor is the store cursor that holds a sync's pending resync
// request (JSON of ResyncRequest; empty when none).
func ResyncCursor(syncID string) string { return "resync-request/" + syncID }

// RequestResync records a resync of the issues matching jql (empty: every
// issue of the sync). A request that is still pending is widened to cover
// both queries.
func RequestResync(ctx context.Context, st *store.Store, syncID, jql string) (ResyncRequest, error) {
	var req ResyncRequest
	err := st.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.SyncGet(syncID); err != nil {
			return err
		}
		prev, err := pendingResync(tx, syncID)
		if err != nil {
			return err
		}
		req = ResyncRequest{JQL: jql, RequestedAt: tx.Now()}
		if prev != nil {
			switch {
			case prev.JQL == "" || jql == "":
				req.JQL = ""
			case prev.JQL != jql:
				req.JQL = "(" + prev.JQL + ") OR (" + jql + ")"
			}
		}
		b, err := json.Marshal(req)
		if err != nil {
			return err
		}
		return tx.CursorSet(ResyncCursor(syncID), string(b))
	})
	if err != nil {
		return req, fmt.Errorf("record resync of sync %s: %w", syncID, err)
	}
	return req, nil
}

func pendingResync(tx *store.Tx, syncID string) (*ResyncRequest, error) {
	v, ok, err := tx.CursorGet(ResyncCursor(syncID))
	if err != nil || !ok || v == "" {
		return nil, err
	}
	var r ResyncRequest
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		return nil, fmt.Errorf("resync request of sync %s is damaged: %w", syncID, err)
	}
	return &r, nil
}

// runResync carries out a pending resync request, then clears it. A request
// made while it ran stays for the next step; one that fails for a reason
// that may pass (Jira down) stays too; one Jira refuses (a bad JQL) is
// dropped with a failure record, so it cannot block polling.
func (n *Node) runResync(ctx context.Context) (int, error) {
	var req *ResyncRequest
	var raw string
	if err := n.cfg.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		if req, err = pendingResync(tx, n.cfg.SyncID); err != nil || req == nil {
			return err
		}
		raw, _, err = tx.CursorGet(ResyncCursor(n.cfg.SyncID))
		return err
	}); err != nil || req == nil {
		return 0, err
	}
	res, rerr := n.detector.Resync(ctx, req.JQL)
	if rerr != nil && (errclass.IsRetryable(rerr) || errclass.Of(rerr) == errclass.Pause || ctx.Err() != nil) {
		return res.Changes, fmt.Errorf("resync %q: %w", req.JQL, rerr) // the request stays for the next step
	}
	if rerr != nil {
		// A request Jira refuses (a bad JQL) is dropped, and the operator
		// sees why in `jirabridge messages`.
		n.log.Error("resync request refused", "jql", req.JQL, "err", rerr)
	} else {
		n.log.Info("resync done", "jql", req.JQL, "issues", res.Issues, "changes", res.Changes)
	}
	err := n.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		if rerr != nil {
			if _, err := tx.FailureRecord(store.Failure{SyncID: n.cfg.SyncID, Kind: "resync",
				ErrorClass: errclass.ReasonOf(rerr), ErrorText: fmt.Sprintf("resync --jql %q: %v", req.JQL, rerr)}); err != nil {
				return err
			}
		}
		cur, _, err := tx.CursorGet(ResyncCursor(n.cfg.SyncID))
		if err != nil || cur != raw {
			return err
		}
		return tx.CursorSet(ResyncCursor(n.cfg.SyncID), "")
	})
	if err != nil {
		return res.Changes, errors.Join(errors.New("clear resync request"), err)
	}
	return res.Changes, nil
}
