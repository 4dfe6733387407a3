package store

import (
	"database/sql"
	"fmt"
	"time"
)

// Applied is one ledger entry: an inbound change already written to the
// local Jira, and what the write produced.
type Applied struct {
	ChangeID  string
	SyncID    string
	Issue     string // the local issue id it touched
	Result    string // e.g. the created issue or comment id
	AppliedAt time.Time
}

// LedgerRecord records that a change was applied. Recording a change id
// twice is a duplicate: the first record is kept and duplicate is true.
func (t *Tx) LedgerRecord(a Applied) (duplicate bool, err error) {
	what := "record applied change " + a.ChangeID
	if a.ChangeID == "" {
		return false, fmt.Errorf("%s: empty change id", what)
	}
	r, err := t.exec(what, `INSERT INTO applied_changes (change_id, sync_id, issue, result, applied_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (change_id) DO NOTHING`,
		a.ChangeID, a.SyncID, a.Issue, a.Result, t.nowMS())
	if err != nil {
		return false, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return n == 0, nil
}

// LedgerGet returns the ledger entry of a change id, or ErrNotFound when the
// change was never applied.
func (t *Tx) LedgerGet(changeID string) (Applied, error) {
	a := Applied{ChangeID: changeID}
	var at sql.NullInt64
	err := t.queryRow(`SELECT sync_id, issue, result, applied_at FROM applied_changes WHERE change_id = ?`, changeID).
		Scan(&a.SyncID, &a.Issue, &a.Result, &at)
	if err != nil {
		return Applied{}, notFound("get applied change "+changeID, err)
	}
	a.AppliedAt = fromMS(at)
	return a, nil
}
