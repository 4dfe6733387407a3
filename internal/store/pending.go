package store

import (
	"database/sql"
	"fmt"
	"time"
)

// PendingChange is a change detection found that the batcher has not yet
// sealed into an envelope.
type PendingChange struct {
	ID        int64
	SyncID    string
	Issue     string // local issue id
	Change    []byte // as the engine encoded it
	CreatedAt time.Time
}

// PendingStats tells the batcher whether a batch is due.
type PendingStats struct {
	Count  int
	Bytes  int64
	Oldest time.Time // zero if none
}

// PendingAdd queues a change for the batcher and returns its id.
func (t *Tx) PendingAdd(syncID, issue string, change []byte) (int64, error) {
	if change == nil {
		change = []byte{}
	}
	return t.insert("queue pending change of sync "+syncID,
		`INSERT INTO pending_changes (sync_id, issue, change, created_at) VALUES (?, ?, ?, ?)`,
		syncID, issue, change, t.nowMS())
}

// PendingList returns up to limit pending changes, oldest first.
func (t *Tx) PendingList(syncID string, limit int) ([]PendingChange, error) {
	return collect(t, "list pending changes of sync "+syncID,
		`SELECT id, sync_id, issue, change, created_at FROM pending_changes WHERE sync_id = ? ORDER BY id LIMIT ?`,
		func(r *sql.Rows) (PendingChange, error) {
			var p PendingChange
			var created sql.NullInt64
			err := r.Scan(&p.ID, &p.SyncID, &p.Issue, &p.Change, &created)
			p.CreatedAt = fromMS(created)
			return p, err
		}, syncID, limitOr(limit, 1000))
}

// PendingDelete removes the given pending changes (sealed into an outbox
// envelope in the same transaction).
func (t *Tx) PendingDelete(ids ...int64) error {
	for _, id := range ids {
		if _, err := t.exec(fmt.Sprintf("delete pending change %d", id),
			`DELETE FROM pending_changes WHERE id = ?`, id); err != nil {
			return err
		}
	}
	return nil
}

// PendingStats summarises the pending changes of a sync.
func (t *Tx) PendingStats(syncID string) (PendingStats, error) {
	var s PendingStats
	var oldest sql.NullInt64
	err := t.queryRow(`SELECT COUNT(*), COALESCE(SUM(LENGTH(change)), 0), MIN(created_at)
		FROM pending_changes WHERE sync_id = ?`, syncID).Scan(&s.Count, &s.Bytes, &oldest)
	if err != nil {
		return PendingStats{}, fmt.Errorf("pending change stats of sync %s: %w", syncID, err)
	}
	s.Oldest = fromMS(oldest)
	return s, nil
}
