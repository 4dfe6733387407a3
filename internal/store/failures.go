package store

import (
	"database/sql"
	"fmt"
	"time"
)

// FailureState is where a parked change stands with the operator.
type FailureState string

// Failure states: open (parked, needs the operator), retrying (the operator
// asked for a retry), skipped (the operator gave up on it), resolved (a retry
// succeeded).
const (
	FailureOpen     FailureState = "open"
	FailureRetrying FailureState = "retrying"
	FailureSkipped  FailureState = "skipped"
	FailureResolved FailureState = "resolved"
)

// Failure is a parked change (or link event) the operator must see.
type Failure struct {
	ID          int64
	SyncID      string
	ChangeID    string // empty for failures not tied to one change
	IssueKey    string
	Kind        string // change kind or event ("resend-pruned", ...)
	ErrorClass  string // errclass.Class.String() or a reason label
	ErrorText   string
	FirstSeenAt time.Time
	LastSeenAt  time.Time
	Attempts    int
	State       FailureState
	UpdatedAt   time.Time
}

// FailureRecord records a failure and returns its id. A failure of a change
// id already recorded updates that record (last seen, error, attempts + 1)
// and opens it again, whatever its state; one with no change id is always
// a new record.
func (t *Tx) FailureRecord(f Failure) (int64, error) {
	what := fmt.Sprintf("record failure of change %q of sync %s", f.ChangeID, f.SyncID)
	var changeID sql.NullString
	if f.ChangeID != "" {
		changeID = sql.NullString{String: f.ChangeID, Valid: true}
	}
	now := t.nowMS()
	var id int64
	err := t.queryRow(`
INSERT INTO failures (sync_id, change_id, issue_key, kind, error_class, error_text,
                      first_seen_at, last_seen_at, attempts, state, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 'open', ?)
ON CONFLICT (sync_id, change_id) DO UPDATE SET
    issue_key = excluded.issue_key, kind = excluded.kind, error_class = excluded.error_class,
    error_text = excluded.error_text, last_seen_at = excluded.last_seen_at,
    attempts = attempts + 1, state = 'open', updated_at = excluded.updated_at
RETURNING id`,
		f.SyncID, changeID, f.IssueKey, f.Kind, f.ErrorClass, f.ErrorText, now, now, now).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return id, nil
}

const failureCols = `id, sync_id, change_id, issue_key, kind, error_class, error_text,
	first_seen_at, last_seen_at, attempts, state, updated_at`

func scanFailure(r interface{ Scan(...any) error }) (Failure, error) {
	var f Failure
	var changeID sql.NullString
	var state string
	var first, last, updated sql.NullInt64
	err := r.Scan(&f.ID, &f.SyncID, &changeID, &f.IssueKey, &f.Kind, &f.ErrorClass, &f.ErrorText,
		&first, &last, &f.Attempts, &state, &updated)
	f.ChangeID, f.State = changeID.String, FailureState(state)
	f.FirstSeenAt, f.LastSeenAt, f.UpdatedAt = fromMS(first), fromMS(last), fromMS(updated)
	return f, err
}

// FailureGet returns one failure or ErrNotFound.
func (t *Tx) FailureGet(id int64) (Failure, error) {
	f, err := scanFailure(t.queryRow(`SELECT `+failureCols+` FROM failures WHERE id = ?`, id))
	if err != nil {
		return Failure{}, notFound(fmt.Sprintf("get failure %d", id), err)
	}
	return f, nil
}

// FailureByChange returns the failure of a change id or ErrNotFound.
func (t *Tx) FailureByChange(syncID, changeID string) (Failure, error) {
	f, err := scanFailure(t.queryRow(`SELECT `+failureCols+` FROM failures WHERE sync_id = ? AND change_id = ?`,
		syncID, changeID))
	if err != nil {
		return Failure{}, notFound("get failure of change "+changeID, err)
	}
	return f, nil
}

// FailureList returns up to limit failures of a sync, oldest first; with
// states given, only those in one of them.
func (t *Tx) FailureList(syncID string, limit int, states ...FailureState) ([]Failure, error) {
	q := `SELECT ` + failureCols + ` FROM failures WHERE sync_id = ?`
	args := []any{syncID}
	if len(states) > 0 {
		q += ` AND state IN (?` + repeat(",?", len(states)-1) + `)`
		for _, s := range states {
			args = append(args, string(s))
		}
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, limitOr(limit, 1000))
	return collect(t, "list failures of sync "+syncID, q,
		func(r *sql.Rows) (Failure, error) { return scanFailure(r) }, args...)
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

// failureMove changes the state of failure id if it is in one of from.
func (t *Tx) failureMove(id int64, to FailureState, from ...FailureState) error {
	f, err := t.FailureGet(id)
	if err != nil {
		return err
	}
	ok := false
	for _, s := range from {
		ok = ok || f.State == s
	}
	if !ok {
		return fmt.Errorf("move failure %d from %s to %s: %w", id, f.State, to, ErrBadTransition)
	}
	_, err = t.exec(fmt.Sprintf("move failure %d to %s", id, to),
		`UPDATE failures SET state = ?, updated_at = ? WHERE id = ?`, string(to), t.nowMS(), id)
	return err
}

// FailureRetry marks an open failure for retry (`messages retry`); the
// engine then applies the change again and calls FailureResolve or
// FailureRecord. Retrying a skipped or resolved failure is ErrBadTransition.
func (t *Tx) FailureRetry(id int64) error {
	return t.failureMove(id, FailureRetrying, FailureOpen)
}

// FailureSkip gives up on an open or retrying failure (`messages skip`).
func (t *Tx) FailureSkip(id int64) error {
	return t.failureMove(id, FailureSkipped, FailureOpen, FailureRetrying)
}

// FailureResolve closes an open or retrying failure whose change has now
// been applied.
func (t *Tx) FailureResolve(id int64) error {
	return t.failureMove(id, FailureResolved, FailureOpen, FailureRetrying)
}

// FailureCount returns how many failures of a sync are in one of states.
func (t *Tx) FailureCount(syncID string, states ...FailureState) (int, error) {
	q := `SELECT COUNT(*) FROM failures WHERE sync_id = ?`
	args := []any{syncID}
	if len(states) > 0 {
		q += ` AND state IN (?` + repeat(",?", len(states)-1) + `)`
		for _, s := range states {
			args = append(args, string(s))
		}
	}
	var n int
	if err := t.queryRow(q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count failures of sync %s: %w", syncID, err)
	}
	return n, nil
}
