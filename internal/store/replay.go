package store

import (
	"database/sql"
	"fmt"
	"time"
)

// ReplayState is where an inbound change is in its issue's lane.
type ReplayState string

// Replay states. Pending, Parked and WaitingParent hold the lane; Applied
// and Skipped are done.
const (
	ReplayPending       ReplayState = "pending"
	ReplayApplied       ReplayState = "applied"
	ReplayParked        ReplayState = "parked"
	ReplayWaitingParent ReplayState = "waiting_parent"
	ReplaySkipped       ReplayState = "skipped"
)

// ReplayItem is one inbound change in a lane.
type ReplayItem struct {
	ID            int64
	SyncID        string
	Issue         string // the lane: the origin issue id
	ChangeID      string // origin change id
	Change        []byte // as the engine gives it
	State         ReplayState
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// ReplayEnqueue appends a change to the end of its issue's lane and returns
// its id. A change id already queued is a duplicate: nothing is written and
// duplicate is true.
func (t *Tx) ReplayEnqueue(syncID, issue, changeID string, change []byte) (id int64, duplicate bool, err error) {
	what := fmt.Sprintf("enqueue change %s of sync %s", changeID, syncID)
	if change == nil {
		change = []byte{}
	}
	now := t.nowMS()
	r, err := t.exec(what, `INSERT INTO replay (sync_id, issue, change_id, change, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sync_id, change_id) DO NOTHING`,
		syncID, issue, changeID, change, now, now)
	if err != nil {
		return 0, false, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		if err := t.queryRow(`SELECT id FROM replay WHERE sync_id = ? AND change_id = ?`, syncID, changeID).Scan(&id); err != nil {
			return 0, false, fmt.Errorf("%s: %w", what, err)
		}
		return id, true, nil
	}
	id, err = r.LastInsertId()
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", what, err)
	}
	return id, false, nil
}

const replayCols = `id, sync_id, issue, change_id, change, state, attempts, next_attempt_at, last_error, created_at, updated_at`

func scanReplay(r interface{ Scan(...any) error }) (ReplayItem, error) {
	var it ReplayItem
	var state string
	var next, created, updated sql.NullInt64
	err := r.Scan(&it.ID, &it.SyncID, &it.Issue, &it.ChangeID, &it.Change, &state, &it.Attempts,
		&next, &it.LastError, &created, &updated)
	it.State = ReplayState(state)
	if next.Valid && next.Int64 != 0 {
		it.NextAttemptAt = fromMS(next)
	}
	it.CreatedAt, it.UpdatedAt = fromMS(created), fromMS(updated)
	return it, err
}

// ReplayReady returns up to limit lane heads that may be applied now: the
// first unfinished change of each issue, when it is pending and its next
// attempt time has come. A parked or waiting head blocks only its issue.
func (t *Tx) ReplayReady(syncID string, now time.Time, limit int) ([]ReplayItem, error) {
	return collect(t, "list ready replay items of sync "+syncID,
		`SELECT `+replayCols+` FROM replay r
		 WHERE r.sync_id = ?1 AND r.state = 'pending' AND r.next_attempt_at <= ?2
		   AND NOT EXISTS (SELECT 1 FROM replay e WHERE e.sync_id = r.sync_id AND e.issue = r.issue
		                   AND e.id < r.id AND e.state IN ('pending', 'parked', 'waiting_parent'))
		 ORDER BY r.id LIMIT ?3`,
		func(r *sql.Rows) (ReplayItem, error) { return scanReplay(r) }, syncID, now.UnixMilli(), limitOr(limit, 100))
}

// ReplayLane returns the unfinished changes of one issue in lane order.
func (t *Tx) ReplayLane(syncID, issue string) ([]ReplayItem, error) {
	return collect(t, fmt.Sprintf("list replay lane %s of sync %s", issue, syncID),
		`SELECT `+replayCols+` FROM replay WHERE sync_id = ? AND issue = ?
		 AND state IN ('pending', 'parked', 'waiting_parent') ORDER BY id`,
		func(r *sql.Rows) (ReplayItem, error) { return scanReplay(r) }, syncID, issue)
}

// ReplayByState returns up to limit items in a state, in lane order.
func (t *Tx) ReplayByState(syncID string, state ReplayState, limit int) ([]ReplayItem, error) {
	return collect(t, fmt.Sprintf("list %s replay items of sync %s", state, syncID),
		`SELECT `+replayCols+` FROM replay WHERE sync_id = ? AND state = ? ORDER BY id LIMIT ?`,
		func(r *sql.Rows) (ReplayItem, error) { return scanReplay(r) }, syncID, string(state), limitOr(limit, 100))
}

// ReplayGet returns one item by id or ErrNotFound.
func (t *Tx) ReplayGet(id int64) (ReplayItem, error) {
	it, err := scanReplay(t.queryRow(`SELECT `+replayCols+` FROM replay WHERE id = ?`, id))
	if err != nil {
		return ReplayItem{}, notFound(fmt.Sprintf("get replay item %d", id), err)
	}
	return it, nil
}

// ReplayGetByChange returns the item of a change id or ErrNotFound.
func (t *Tx) ReplayGetByChange(syncID, changeID string) (ReplayItem, error) {
	it, err := scanReplay(t.queryRow(`SELECT `+replayCols+` FROM replay WHERE sync_id = ? AND change_id = ?`, syncID, changeID))
	if err != nil {
		return ReplayItem{}, notFound(fmt.Sprintf("get replay item of change %s", changeID), err)
	}
	return it, nil
}

// ReplaySetState moves an item to state. lastErr is recorded (empty clears
// it); nextAttempt is when a pending item may be tried again (zero: now).
// countAttempt adds one to the attempts, for a state change that follows a
// try.
func (t *Tx) ReplaySetState(id int64, state ReplayState, lastErr string, nextAttempt time.Time, countAttempt bool) error {
	what := fmt.Sprintf("set replay item %d %s", id, state)
	inc := 0
	if countAttempt {
		inc = 1
	}
	var next int64
	if !nextAttempt.IsZero() {
		next = nextAttempt.UnixMilli()
	}
	r, err := t.exec(what, `UPDATE replay SET state = ?, last_error = ?, next_attempt_at = ?,
		attempts = attempts + ?, updated_at = ? WHERE id = ?`,
		string(state), lastErr, next, inc, t.nowMS(), id)
	if err != nil {
		return err
	}
	return mustAffect(r, what)
}

// ReplayPurge deletes applied and skipped items last changed before the
// given time (processed payloads are kept only for the retention period).
func (t *Tx) ReplayPurge(before time.Time) (int, error) {
	r, err := t.exec("purge replay queue", `DELETE FROM replay WHERE state IN ('applied', 'skipped') AND updated_at < ?`,
		before.UnixMilli())
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge replay queue: %w", err)
	}
	return int(n), nil
}
