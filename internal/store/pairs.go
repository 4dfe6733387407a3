package store

import (
	"database/sql"
	"fmt"
	"time"
)

// IssuePair links a local issue to its peer issue.
type IssuePair struct {
	SyncID    string
	LocalID   string
	LocalKey  string
	PeerID    string
	PeerKey   string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// PairPut records a pair, or updates the keys of an existing one (issue keys
// change when an issue moves). A local or peer id already paired with a
// different issue is an error: pairs are one to one.
func (t *Tx) PairPut(p IssuePair) error {
	now := t.nowMS()
	_, err := t.exec(fmt.Sprintf("pair local issue %s with peer issue %s", p.LocalID, p.PeerID), `
INSERT INTO issue_pairs (sync_id, local_id, local_key, peer_id, peer_key, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (sync_id, local_id) DO UPDATE SET
    local_key = excluded.local_key, peer_key = excluded.peer_key, updated_at = excluded.updated_at
    WHERE peer_id = excluded.peer_id`,
		p.SyncID, p.LocalID, p.LocalKey, p.PeerID, p.PeerKey, now, now)
	if err != nil {
		return err
	}
	// An upsert whose WHERE failed changed nothing: the local id is paired
	// with another peer issue.
	got, err := t.PairByLocal(p.SyncID, p.LocalID)
	if err != nil {
		return err
	}
	if got.PeerID != p.PeerID {
		return fmt.Errorf("pair local issue %s with peer issue %s: already paired with peer issue %s",
			p.LocalID, p.PeerID, got.PeerID)
	}
	return nil
}

const pairCols = `sync_id, local_id, local_key, peer_id, peer_key, created_at, updated_at`

func scanPair(r interface{ Scan(...any) error }) (IssuePair, error) {
	var p IssuePair
	var created, updated sql.NullInt64
	err := r.Scan(&p.SyncID, &p.LocalID, &p.LocalKey, &p.PeerID, &p.PeerKey, &created, &updated)
	p.CreatedAt, p.UpdatedAt = fromMS(created), fromMS(updated)
	return p, err
}

// PairByLocal finds the pair of a local issue id, or ErrNotFound.
func (t *Tx) PairByLocal(syncID, localID string) (IssuePair, error) {
	p, err := scanPair(t.queryRow(`SELECT `+pairCols+` FROM issue_pairs WHERE sync_id = ? AND local_id = ?`, syncID, localID))
	if err != nil {
		return IssuePair{}, notFound("find pair of local issue "+localID, err)
	}
	return p, nil
}

// PairByPeer finds the pair of a peer issue id, or ErrNotFound.
func (t *Tx) PairByPeer(syncID, peerID string) (IssuePair, error) {
	p, err := scanPair(t.queryRow(`SELECT `+pairCols+` FROM issue_pairs WHERE sync_id = ? AND peer_id = ?`, syncID, peerID))
	if err != nil {
		return IssuePair{}, notFound("find pair of peer issue "+peerID, err)
	}
	return p, nil
}

// PairList returns up to limit pairs of a sync with local id above after,
// ordered by local id (pass the last LocalID to page on).
func (t *Tx) PairList(syncID, after string, limit int) ([]IssuePair, error) {
	return collect(t, "list issue pairs of sync "+syncID,
		`SELECT `+pairCols+` FROM issue_pairs WHERE sync_id = ? AND local_id > ? ORDER BY local_id LIMIT ?`,
		func(r *sql.Rows) (IssuePair, error) { return scanPair(r) }, syncID, after, limitOr(limit, 1000))
}

// PairDelete dissolves the pair of a local issue (the partner issue was
// deleted); dissolving one that does not exist is no error.
func (t *Tx) PairDelete(syncID, localID string) error {
	_, err := t.exec("dissolve pair of local issue "+localID,
		`DELETE FROM issue_pairs WHERE sync_id = ? AND local_id = ?`, syncID, localID)
	return err
}
