package store

import (
	"database/sql"
	"fmt"
	"time"
)

// SkipDirection says which side of the bridge left an item out.
type SkipDirection string

// Skip directions.
const (
	// SkipOutgoing: detection did not send the item to the peer.
	SkipOutgoing SkipDirection = "outgoing"
	// SkipIncoming: the applier could not apply the peer's item here.
	SkipIncoming SkipDirection = "incoming"
)

// SkipKind is the kind of item skipped.
type SkipKind string

// Skip kinds, in the order status shows them.
const (
	SkipLink       SkipKind = "link"
	SkipWatcher    SkipKind = "watcher"
	SkipAttachment SkipKind = "attachment"
	SkipComment    SkipKind = "comment"
)

// SkipKinds lists every skip kind, in the order status shows them.
var SkipKinds = []SkipKind{SkipLink, SkipWatcher, SkipAttachment, SkipComment}

// SkipKey names one skipped item of one local issue.
type SkipKey struct {
	SyncID    string
	Direction SkipDirection
	IssueID   string // the local issue
	Kind      SkipKind
	Item      string // link id, username, attachment id or comment id
}

func (k SkipKey) String() string {
	return fmt.Sprintf("%s %s %s of issue %s", k.Direction, k.Kind, k.Item, k.IssueID)
}

// Skip is an item the bridge leaves out of the sync on purpose, with what
// the operator can do about it.
type Skip struct {
	SkipKey
	ID       int64
	IssueKey string
	// Reason says why and what to do, for example "other end ABC-9 is
	// not in the sync's JQL: ...".
	Reason      string
	FirstSeenAt time.Time
	LastSeenAt  time.Time
}

func (k SkipKey) check(what string) error {
	switch {
	case k.SyncID == "" || k.IssueID == "" || k.Item == "":
		return fmt.Errorf("%s: sync, issue and item are required", what)
	case k.Direction != SkipOutgoing && k.Direction != SkipIncoming:
		return fmt.Errorf("%s: direction must be outgoing or incoming, not %q", what, k.Direction)
	case k.Kind != SkipLink && k.Kind != SkipWatcher && k.Kind != SkipAttachment && k.Kind != SkipComment:
		return fmt.Errorf("%s: kind must be link, watcher, attachment or comment, not %q", what, k.Kind)
	}
	return nil
}

// SkipRecord records that an item is skipped, or that it still is: the
// first time it keeps now as first seen; later it moves last seen and
// takes the new issue key and reason.
func (t *Tx) SkipRecord(s Skip) error {
	what := "record skipped " + s.SkipKey.String()
	if err := s.check(what); err != nil {
		return err
	}
	if s.Reason == "" {
		return fmt.Errorf("%s: a reason is required", what)
	}
	now := t.nowMS()
	_, err := t.exec(what, `
INSERT INTO content_skips (sync_id, direction, issue_id, kind, item, issue_key, reason, first_seen_at, last_seen_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (sync_id, direction, issue_id, kind, item) DO UPDATE SET
    issue_key = CASE WHEN excluded.issue_key = '' THEN issue_key ELSE excluded.issue_key END,
    reason = excluded.reason, last_seen_at = excluded.last_seen_at`,
		s.SyncID, string(s.Direction), s.IssueID, string(s.Kind), s.Item, s.IssueKey, s.Reason, now, now)
	return err
}

// SkipClear forgets a skipped item that no longer applies (the link was
// made, the watcher left or became mappable); cleared is false when there
// was none.
func (t *Tx) SkipClear(k SkipKey) (cleared bool, err error) {
	what := "clear skipped " + k.String()
	if err := k.check(what); err != nil {
		return false, err
	}
	r, err := t.exec(what, `DELETE FROM content_skips
		WHERE sync_id = ? AND direction = ? AND issue_id = ? AND kind = ? AND item = ?`,
		k.SyncID, string(k.Direction), k.IssueID, string(k.Kind), k.Item)
	if err != nil {
		return false, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return n > 0, nil
}

// SkipGet returns one skipped item or ErrNotFound.
func (t *Tx) SkipGet(k SkipKey) (Skip, error) {
	s, err := scanSkip(t.queryRow(`SELECT `+skipCols+` FROM content_skips
		WHERE sync_id = ? AND direction = ? AND issue_id = ? AND kind = ? AND item = ?`,
		k.SyncID, string(k.Direction), k.IssueID, string(k.Kind), k.Item))
	if err != nil {
		return Skip{}, notFound("get skipped "+k.String(), err)
	}
	return s, nil
}

// SkipQuery selects skipped items for SkipList.
type SkipQuery struct {
	// Direction and Kind, when set, keep only those.
	Direction SkipDirection
	Kind      SkipKind
	// Offset skips that many of the newest; Limit is the page size
	// (default 100).
	Offset, Limit int
}

const skipCols = `id, sync_id, direction, issue_id, kind, item, issue_key, reason, first_seen_at, last_seen_at`

func scanSkip(r interface{ Scan(...any) error }) (Skip, error) {
	var s Skip
	var dir, kind string
	var first, last sql.NullInt64
	err := r.Scan(&s.ID, &s.SyncID, &dir, &s.IssueID, &kind, &s.Item, &s.IssueKey, &s.Reason, &first, &last)
	s.Direction, s.Kind = SkipDirection(dir), SkipKind(kind)
	s.FirstSeenAt, s.LastSeenAt = fromMS(first), fromMS(last)
	return s, err
}

// SkipList returns a page of a sync's skipped items, the most recently
// seen first.
func (t *Tx) SkipList(syncID string, q SkipQuery) ([]Skip, error) {
	query := `SELECT ` + skipCols + ` FROM content_skips WHERE sync_id = ?`
	args := []any{syncID}
	if q.Direction != "" {
		query += ` AND direction = ?`
		args = append(args, string(q.Direction))
	}
	if q.Kind != "" {
		query += ` AND kind = ?`
		args = append(args, string(q.Kind))
	}
	query += ` ORDER BY last_seen_at DESC, id DESC LIMIT ? OFFSET ?`
	args = append(args, limitOr(q.Limit, 100), max(q.Offset, 0))
	return collect(t, "list skipped items of sync "+syncID, query,
		func(r *sql.Rows) (Skip, error) { return scanSkip(r) }, args...)
}

// SkipCounts returns how many items of each kind a sync skips (both
// directions); kinds with none are absent.
func (t *Tx) SkipCounts(syncID string) (map[SkipKind]int, error) {
	type row struct {
		kind SkipKind
		n    int
	}
	rows, err := collect(t, "count skipped items of sync "+syncID,
		`SELECT kind, COUNT(*) FROM content_skips WHERE sync_id = ? GROUP BY kind`,
		func(r *sql.Rows) (row, error) {
			var x row
			var k string
			err := r.Scan(&k, &x.n)
			x.kind = SkipKind(k)
			return x, err
		}, syncID)
	if err != nil {
		return nil, err
	}
	out := map[SkipKind]int{}
	for _, r := range rows {
		out[r.kind] = r.n
	}
	return out, nil
}

// SkipIssues returns the distinct local issues with skipped items in one
// direction, so detection can forget those of issues that left the sync.
func (t *Tx) SkipIssues(syncID string, dir SkipDirection) ([]string, error) {
	return collect(t, "list issues with skipped items of sync "+syncID,
		`SELECT DISTINCT issue_id FROM content_skips WHERE sync_id = ? AND direction = ? ORDER BY issue_id`,
		func(r *sql.Rows) (string, error) {
			var id string
			err := r.Scan(&id)
			return id, err
		}, syncID, string(dir))
}

// SkipClearIssue forgets every skipped item of a local issue in one
// direction (the issue left the sync or was deleted); it returns how many.
func (t *Tx) SkipClearIssue(syncID string, dir SkipDirection, issueID string) (int, error) {
	what := fmt.Sprintf("clear skipped items of issue %s", issueID)
	r, err := t.exec(what, `DELETE FROM content_skips WHERE sync_id = ? AND direction = ? AND issue_id = ?`, syncID, string(dir), issueID)
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return int(n), nil
}
