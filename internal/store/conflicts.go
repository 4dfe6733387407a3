package store

import (
	"database/sql"
	"fmt"
	"time"
)

// Conflict is a field both sides changed before seeing each other's change.
type Conflict struct {
	ID         int64
	SyncID     string
	Issue      string // local issue key or id
	Field      string // the field's alias
	LocalValue string
	LocalAt    time.Time // Jira time of the local change
	PeerValue  string
	PeerAt     time.Time // Jira time of the peer's change
	Winner     string    // "local" or "peer"
	At         time.Time // when the bridge decided
}

// ConflictAdd records a decided conflict and returns its id.
func (t *Tx) ConflictAdd(c Conflict) (int64, error) {
	what := fmt.Sprintf("record conflict on %s of issue %s", c.Field, c.Issue)
	if c.Winner != "local" && c.Winner != "peer" {
		return 0, fmt.Errorf("%s: winner must be local or peer, not %q", what, c.Winner)
	}
	return t.insert(what, `INSERT INTO conflicts (sync_id, issue, field, local_value, local_at,
		peer_value, peer_at, winner, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.SyncID, c.Issue, c.Field, c.LocalValue, ms(c.LocalAt), c.PeerValue, ms(c.PeerAt), c.Winner, t.nowMS())
}

// ConflictList returns the newest limit conflicts of a sync, newest first.
func (t *Tx) ConflictList(syncID string, limit int) ([]Conflict, error) {
	return collect(t, "list conflicts of sync "+syncID,
		`SELECT id, sync_id, issue, field, local_value, local_at, peer_value, peer_at, winner, at
		 FROM conflicts WHERE sync_id = ? ORDER BY id DESC LIMIT ?`,
		func(r *sql.Rows) (Conflict, error) {
			var c Conflict
			var la, pa, at sql.NullInt64
			err := r.Scan(&c.ID, &c.SyncID, &c.Issue, &c.Field, &c.LocalValue, &la, &c.PeerValue, &pa, &c.Winner, &at)
			c.LocalAt, c.PeerAt, c.At = fromMS(la), fromMS(pa), fromMS(at)
			return c, err
		}, syncID, limitOr(limit, 100))
}
