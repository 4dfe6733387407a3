package store

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LinkState is what the link remembers about the peer beyond the outbox and
// inbox.
type LinkState struct {
	SyncID          string
	LastHeardAt     time.Time // last valid envelope of any kind from the peer
	LastHeartbeatAt time.Time // last heartbeat we sent
	PeerAcked       uint64    // the highest ack the peer sent us
	AckSent         uint64    // the highest ack we sent the peer
	AckSentAt       time.Time
}

// LinkStatus is the link's view for `status`: the stored state plus what the
// outbox and inbox say.
type LinkStatus struct {
	LinkState
	Outbox OutboxStats
	// Inbound is per sender node id (normally one: the peer).
	Inbound map[string]InboundStatus
}

// InboundStatus is the receiving side of one sender.
type InboundStatus struct {
	Cursor InboxCursor
	Gaps   []Gap
}

// LinkGet returns the link state of a sync (zero values if nothing was
// recorded yet).
func (t *Tx) LinkGet(syncID string) (LinkState, error) {
	l := LinkState{SyncID: syncID}
	var heard, hb, ackAt sql.NullInt64
	err := t.queryRow(`SELECT last_heard_at, last_heartbeat_at, peer_acked, ack_sent, ack_sent_at
		FROM link_state WHERE sync_id = ?`, syncID).Scan(&heard, &hb, &l.PeerAcked, &l.AckSent, &ackAt)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return LinkState{}, fmt.Errorf("read link state of sync %s: %w", syncID, err)
	}
	l.LastHeardAt, l.LastHeartbeatAt, l.AckSentAt = fromMS(heard), fromMS(hb), fromMS(ackAt)
	return l, nil
}

func (t *Tx) linkSet(syncID, what, col string, val any) error {
	_, err := t.exec(what+" of sync "+syncID, `INSERT INTO link_state (sync_id, `+col+`) VALUES (?, ?)
		ON CONFLICT (sync_id) DO UPDATE SET `+col+` = excluded.`+col, syncID, val)
	return err
}

// LinkHeard records that a valid envelope arrived from the peer now.
func (t *Tx) LinkHeard(syncID string) error {
	return t.linkSet(syncID, "record peer heard", "last_heard_at", t.nowMS())
}

// LinkHeartbeatSent records that we sent a heartbeat now.
func (t *Tx) LinkHeartbeatSent(syncID string) error {
	return t.linkSet(syncID, "record heartbeat sent", "last_heartbeat_at", t.nowMS())
}

// LinkAckSent records the ack we sent the peer (piggybacked or alone).
func (t *Tx) LinkAckSent(syncID string, upTo uint64) error {
	_, err := t.exec("record ack sent of sync "+syncID, `INSERT INTO link_state (sync_id, ack_sent, ack_sent_at)
		VALUES (?, ?, ?) ON CONFLICT (sync_id) DO UPDATE SET
		ack_sent = MAX(ack_sent, excluded.ack_sent), ack_sent_at = excluded.ack_sent_at`, syncID, upTo, t.nowMS())
	return err
}

// LinkStatus gathers everything `status` shows about one sync's link.
func (t *Tx) LinkStatus(syncID string) (LinkStatus, error) {
	var s LinkStatus
	var err error
	if s.LinkState, err = t.LinkGet(syncID); err != nil {
		return LinkStatus{}, err
	}
	if s.Outbox, err = t.OutboxStats(syncID); err != nil {
		return LinkStatus{}, err
	}
	senders, err := collect(t, "list senders of sync "+syncID,
		`SELECT sender FROM inbox_cursors WHERE sync_id = ? ORDER BY sender`,
		func(r *sql.Rows) (string, error) {
			var s string
			return s, r.Scan(&s)
		}, syncID)
	if err != nil {
		return LinkStatus{}, err
	}
	s.Inbound = make(map[string]InboundStatus, len(senders))
	for _, sender := range senders {
		var in InboundStatus
		if in.Cursor, err = t.InboxCursor(syncID, sender); err != nil {
			return LinkStatus{}, err
		}
		if in.Gaps, err = t.InboxGaps(syncID, sender); err != nil {
			return LinkStatus{}, err
		}
		s.Inbound[sender] = in
	}
	return s, nil
}
