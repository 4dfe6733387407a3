package store

import (
	"database/sql"
	"fmt"
	"time"
)

// Role is this bridge's side of a sync.
type Role string

// Roles: the master owns the mappings, the slave completes them.
const (
	RoleMaster Role = "master"
	RoleSlave  Role = "slave"
)

// SyncState is the lifecycle state of a sync, as Backbone names them.
type SyncState string

// Sync states.
const (
	StateCreated         SyncState = "CREATED"
	StateHandshake       SyncState = "HANDSHAKE"
	StateStopped         SyncState = "STOPPED"
	StateRunning         SyncState = "RUNNING"
	StateWaitingForSlave SyncState = "WAITING FOR SLAVE"
	StateUpdateRequired  SyncState = "UPDATE REQUIRED"
	StatePaused          SyncState = "PAUSED"
)

// Sync is one sync definition row.
type Sync struct {
	ID          string
	Name        string
	Role        Role
	ProjectKey  string
	SyncUser    string
	Transport   string // transport kind: "smtp+imap", "file", ...
	State       SyncState
	StateReason string // why PAUSED (e.g. "authentication"), etc.
	SelfNode    string
	PeerNode    string // empty until the handshake names the peer
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// SyncPut creates the sync or replaces every field of an existing one
// (CreatedAt is kept). Empty State means CREATED.
func (t *Tx) SyncPut(s Sync) error {
	if s.ID == "" {
		return fmt.Errorf("put sync: empty id")
	}
	if s.State == "" {
		s.State = StateCreated
	}
	now := t.nowMS()
	_, err := t.exec("put sync "+s.ID, `
INSERT INTO syncs (id, name, role, project_key, sync_user, transport, state, state_reason,
                   self_node, peer_node, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name, role = excluded.role, project_key = excluded.project_key,
    sync_user = excluded.sync_user, transport = excluded.transport, state = excluded.state,
    state_reason = excluded.state_reason, self_node = excluded.self_node,
    peer_node = excluded.peer_node, updated_at = excluded.updated_at`,
		s.ID, s.Name, string(s.Role), s.ProjectKey, s.SyncUser, s.Transport, string(s.State),
		s.StateReason, s.SelfNode, s.PeerNode, now, now)
	return err
}

// SyncSetState changes the state and its reason.
func (t *Tx) SyncSetState(id string, state SyncState, reason string) error {
	r, err := t.exec("set state of sync "+id,
		`UPDATE syncs SET state = ?, state_reason = ?, updated_at = ? WHERE id = ?`,
		string(state), reason, t.nowMS(), id)
	if err != nil {
		return err
	}
	return mustAffect(r, "set state of sync "+id)
}

// SyncSetPeer records the peer's node id learnt in the handshake.
func (t *Tx) SyncSetPeer(id, peerNode string) error {
	r, err := t.exec("set peer of sync "+id,
		`UPDATE syncs SET peer_node = ?, updated_at = ? WHERE id = ?`, peerNode, t.nowMS(), id)
	if err != nil {
		return err
	}
	return mustAffect(r, "set peer of sync "+id)
}

const syncCols = `id, name, role, project_key, sync_user, transport, state, state_reason,
	self_node, peer_node, created_at, updated_at`

func scanSync(r interface{ Scan(...any) error }) (Sync, error) {
	var s Sync
	var role, state string
	var created, updated sql.NullInt64
	err := r.Scan(&s.ID, &s.Name, &role, &s.ProjectKey, &s.SyncUser, &s.Transport, &state,
		&s.StateReason, &s.SelfNode, &s.PeerNode, &created, &updated)
	s.Role, s.State = Role(role), SyncState(state)
	s.CreatedAt, s.UpdatedAt = fromMS(created), fromMS(updated)
	return s, err
}

// SyncGet returns one sync or ErrNotFound.
func (t *Tx) SyncGet(id string) (Sync, error) {
	s, err := scanSync(t.queryRow(`SELECT `+syncCols+` FROM syncs WHERE id = ?`, id))
	if err != nil {
		return Sync{}, notFound("get sync "+id, err)
	}
	return s, nil
}

// SyncList returns every sync ordered by id.
func (t *Tx) SyncList() ([]Sync, error) {
	return collect(t, "list syncs", `SELECT `+syncCols+` FROM syncs ORDER BY id`,
		func(r *sql.Rows) (Sync, error) { return scanSync(r) })
}

// SyncDelete removes a sync and, through foreign keys, everything stored
// for it.
func (t *Tx) SyncDelete(id string) error {
	r, err := t.exec("delete sync "+id, `DELETE FROM syncs WHERE id = ?`, id)
	if err != nil {
		return err
	}
	return mustAffect(r, "delete sync "+id)
}

func mustAffect(r sql.Result, what string) error {
	n, err := r.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}
