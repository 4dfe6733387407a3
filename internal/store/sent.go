package store

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SentItem says that detection already sent one item of a local issue: a
// changelog entry, a comment at a given updated time, an attachment, or a
// hash of the watcher or link snapshot.
type SentItem struct {
	SyncID   string
	IssueID  string
	ItemKind string // "changelog", "comment", "attachment", "watchers", "links", ...
	ItemID   string
	Version  string // comment updated time, snapshot hash, ... ("" when items never change)
	SentAt   time.Time
}

// SentPut records (or moves forward) what was sent for one item.
func (t *Tx) SentPut(s SentItem) error {
	_, err := t.exec(fmt.Sprintf("record sent %s %s of issue %s", s.ItemKind, s.ItemID, s.IssueID), `
INSERT INTO sent_items (sync_id, issue_id, item_kind, item_id, version, sent_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (sync_id, issue_id, item_kind, item_id) DO UPDATE SET
    version = excluded.version, sent_at = excluded.sent_at`,
		s.SyncID, s.IssueID, s.ItemKind, s.ItemID, s.Version, t.nowMS())
	return err
}

// SentGet returns the version sent for one item; ok is false if it was
// never sent.
func (t *Tx) SentGet(syncID, issueID, kind, itemID string) (version string, ok bool, err error) {
	err = t.queryRow(`SELECT version FROM sent_items WHERE sync_id = ? AND issue_id = ? AND item_kind = ? AND item_id = ?`,
		syncID, issueID, kind, itemID).Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read sent %s %s of issue %s: %w", kind, itemID, issueID, err)
	}
	return version, true, nil
}

// SentList returns every sent item of one issue (all kinds), so a poll can
// compare an issue's state against it in one read.
func (t *Tx) SentList(syncID, issueID string) ([]SentItem, error) {
	return collect(t, "list sent items of issue "+issueID,
		`SELECT sync_id, issue_id, item_kind, item_id, version, sent_at FROM sent_items
		 WHERE sync_id = ? AND issue_id = ? ORDER BY item_kind, item_id`,
		func(r *sql.Rows) (SentItem, error) {
			var s SentItem
			var at sql.NullInt64
			err := r.Scan(&s.SyncID, &s.IssueID, &s.ItemKind, &s.ItemID, &s.Version, &at)
			s.SentAt = fromMS(at)
			return s, err
		}, syncID, issueID)
}

// SentDeleteIssue forgets what was sent for an issue (resync, deleted issue).
func (t *Tx) SentDeleteIssue(syncID, issueID string) error {
	_, err := t.exec("forget sent items of issue "+issueID,
		`DELETE FROM sent_items WHERE sync_id = ? AND issue_id = ?`, syncID, issueID)
	return err
}
