package store

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// OutboxEntry is one sealed envelope we send to the peer of a sync.
type OutboxEntry struct {
	SyncID    string
	Seq       uint64
	Kind      string // envelope kind: "changes", "control", "config", ...
	Sealed    []byte // the exact bytes to send (and to re-send)
	CreatedAt time.Time
	SentAt    time.Time // zero until sent; the last send time after that
	Attempts  int       // send attempts, successful or not
	LastError string    // the last send error, empty after a success
	AckedAt   time.Time // zero until the peer acked it
}

// OutboxStats is what `status` and the metrics show about one outbox.
type OutboxStats struct {
	Depth         int       // envelopes not yet acked
	Unsent        int       // envelopes never sent
	OldestUnacked time.Time // creation time of the oldest unacked envelope; zero if none
	HighestSeq    uint64    // the last sequence number assigned
	HighestSent   uint64    // the highest sequence number sent at least once
	HighestAcked  uint64    // the highest sequence number acked by the peer
	PrunedThrough uint64    // sequence numbers at or below this are pruned
}

// OutboxAppend stores a sealed envelope under the next sequence number of
// the sync's outgoing direction and returns that number. Numbers are
// contiguous from 1: the next is one more than the highest ever assigned,
// pruned ones included; the single writer makes this race-free.
//
// The envelope carries its own sequence number inside the signature, so
// most callers want OutboxAppendFunc, which hands the number to the sealer.
func (t *Tx) OutboxAppend(syncID, kind string, sealed []byte) (uint64, error) {
	return t.OutboxAppendFunc(syncID, kind, func(uint64) ([]byte, error) { return sealed, nil })
}

// OutboxAppendFunc assigns the next sequence number, calls seal with it to
// get the sealed bytes, and stores them under that number. An error from
// seal is returned unchanged and nothing is stored.
func (t *Tx) OutboxAppendFunc(syncID, kind string, seal func(seq uint64) ([]byte, error)) (uint64, error) {
	seq, err := t.OutboxNextSeq(syncID)
	if err != nil {
		return 0, err
	}
	sealed, err := seal(seq)
	if err != nil {
		return 0, err
	}
	if sealed == nil {
		sealed = []byte{}
	}
	_, err = t.exec(fmt.Sprintf("append outbox envelope %d of sync %s", seq, syncID),
		`INSERT INTO outbox (sync_id, seq, kind, sealed, created_at) VALUES (?, ?, ?, ?, ?)`,
		syncID, seq, kind, sealed, t.nowMS())
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// OutboxNextSeq is the sequence number the next OutboxAppend of this
// transaction will assign (for a heartbeat or ack that must not take one:
// it tells which number the peer should expect next).
func (t *Tx) OutboxNextSeq(syncID string) (uint64, error) {
	var seq uint64
	err := t.queryRow(`SELECT MAX(
	    COALESCE((SELECT MAX(seq) FROM outbox WHERE sync_id = ?1), 0),
	    COALESCE((SELECT through FROM outbox_pruned WHERE sync_id = ?1), 0)) + 1`, syncID).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("next outbox sequence number of sync %s: %w", syncID, err)
	}
	return seq, nil
}

const outboxCols = `sync_id, seq, kind, sealed, created_at, sent_at, attempts, last_error, acked_at`

func scanOutbox(r interface{ Scan(...any) error }) (OutboxEntry, error) {
	var e OutboxEntry
	var created, sent, acked sql.NullInt64
	err := r.Scan(&e.SyncID, &e.Seq, &e.Kind, &e.Sealed, &created, &sent, &e.Attempts, &e.LastError, &acked)
	e.CreatedAt, e.SentAt, e.AckedAt = fromMS(created), fromMS(sent), fromMS(acked)
	return e, err
}

// OutboxNextUnsent returns up to limit envelopes never sent, lowest first.
func (t *Tx) OutboxNextUnsent(syncID string, limit int) ([]OutboxEntry, error) {
	return collect(t, "list unsent outbox envelopes of sync "+syncID,
		`SELECT `+outboxCols+` FROM outbox WHERE sync_id = ? AND sent_at IS NULL ORDER BY seq LIMIT ?`,
		func(r *sql.Rows) (OutboxEntry, error) { return scanOutbox(r) }, syncID, limitOr(limit, 100))
}

// OutboxUnacked returns up to limit envelopes sent but not acked, lowest
// first: the candidates for a resend after a restart or a long silence.
func (t *Tx) OutboxUnacked(syncID string, limit int) ([]OutboxEntry, error) {
	return collect(t, "list unacked outbox envelopes of sync "+syncID,
		`SELECT `+outboxCols+` FROM outbox WHERE sync_id = ? AND acked_at IS NULL AND sent_at IS NOT NULL
		 ORDER BY seq LIMIT ?`,
		func(r *sql.Rows) (OutboxEntry, error) { return scanOutbox(r) }, syncID, limitOr(limit, 100))
}

// OutboxMarkSent records a successful send (or re-send) of seq.
func (t *Tx) OutboxMarkSent(syncID string, seq uint64) error {
	what := fmt.Sprintf("mark outbox envelope %d of sync %s sent", seq, syncID)
	r, err := t.exec(what, `UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = ''
		WHERE sync_id = ? AND seq = ?`, t.nowMS(), syncID, seq)
	if err != nil {
		return err
	}
	return mustAffect(r, what)
}

// OutboxMarkSendFailed records a failed send attempt of seq and its error.
func (t *Tx) OutboxMarkSendFailed(syncID string, seq uint64, sendErr string) error {
	what := fmt.Sprintf("mark outbox envelope %d of sync %s failed", seq, syncID)
	r, err := t.exec(what, `UPDATE outbox SET attempts = attempts + 1, last_error = ?
		WHERE sync_id = ? AND seq = ?`, sendErr, syncID, seq)
	if err != nil {
		return err
	}
	return mustAffect(r, what)
}

// OutboxAck marks every envelope at or below upTo as acked (the peer acks the
// highest number it holds contiguously) and returns how many were newly
// acked. It also records upTo as the peer's ack in the link state.
func (t *Tx) OutboxAck(syncID string, upTo uint64) (int, error) {
	what := fmt.Sprintf("ack outbox of sync %s up to %d", syncID, upTo)
	r, err := t.exec(what, `UPDATE outbox SET acked_at = ?
		WHERE sync_id = ? AND seq <= ? AND acked_at IS NULL`, t.nowMS(), syncID, upTo)
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if _, err := t.exec(what, `INSERT INTO link_state (sync_id, peer_acked) VALUES (?, ?)
		ON CONFLICT (sync_id) DO UPDATE SET peer_acked = MAX(peer_acked, excluded.peer_acked)`,
		syncID, upTo); err != nil {
		return 0, err
	}
	return int(n), nil
}

// OutboxGet returns envelope seq for a resend. A number that was pruned
// returns ErrPruned (answer the peer "pruned"); one never assigned returns
// ErrNotFound.
func (t *Tx) OutboxGet(syncID string, seq uint64) (OutboxEntry, error) {
	e, err := scanOutbox(t.queryRow(`SELECT `+outboxCols+` FROM outbox WHERE sync_id = ? AND seq = ?`, syncID, seq))
	if err == nil {
		return e, nil
	}
	what := fmt.Sprintf("get outbox envelope %d of sync %s", seq, syncID)
	if !errors.Is(err, sql.ErrNoRows) {
		return OutboxEntry{}, fmt.Errorf("%s: %w", what, err)
	}
	through, err := t.outboxPrunedThrough(syncID)
	if err != nil {
		return OutboxEntry{}, fmt.Errorf("%s: %w", what, err)
	}
	if seq >= 1 && seq <= through {
		return OutboxEntry{}, fmt.Errorf("%s: %w", what, ErrPruned)
	}
	return OutboxEntry{}, fmt.Errorf("%s: %w", what, ErrNotFound)
}

func (t *Tx) outboxPrunedThrough(syncID string) (uint64, error) {
	var through uint64
	err := t.queryRow(`SELECT through FROM outbox_pruned WHERE sync_id = ?`, syncID).Scan(&through)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return through, err
}

// OutboxPrune deletes the envelopes acked before the given time and returns
// how many went. Only a prefix is pruned (from the lowest number up to the
// first envelope that must stay), so a single watermark remembers them: a
// later OutboxGet of a pruned number returns ErrPruned.
func (t *Tx) OutboxPrune(syncID string, ackedBefore time.Time) (int, error) {
	what := "prune outbox of sync " + syncID
	var keep sql.NullInt64
	if err := t.queryRow(`SELECT MIN(seq) FROM outbox WHERE sync_id = ? AND (acked_at IS NULL OR acked_at >= ?)`,
		syncID, ackedBefore.UnixMilli()).Scan(&keep); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	var through uint64
	if keep.Valid {
		through = uint64(keep.Int64) - 1
	} else if err := t.queryRow(`SELECT COALESCE(MAX(seq), 0) FROM outbox WHERE sync_id = ?`, syncID).Scan(&through); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	r, err := t.exec(what, `DELETE FROM outbox WHERE sync_id = ? AND seq <= ?`, syncID, through)
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := t.exec(what, `INSERT INTO outbox_pruned (sync_id, through, pruned_at) VALUES (?, ?, ?)
		ON CONFLICT (sync_id) DO UPDATE SET through = MAX(through, excluded.through), pruned_at = excluded.pruned_at`,
		syncID, through, t.nowMS()); err != nil {
		return 0, err
	}
	return int(n), nil
}

// OutboxStats summarises one outbox.
func (t *Tx) OutboxStats(syncID string) (OutboxStats, error) {
	var s OutboxStats
	var oldest sql.NullInt64
	err := t.queryRow(`SELECT
	    COUNT(*) FILTER (WHERE acked_at IS NULL),
	    COUNT(*) FILTER (WHERE sent_at IS NULL),
	    MIN(created_at) FILTER (WHERE acked_at IS NULL),
	    COALESCE(MAX(seq), 0),
	    COALESCE(MAX(seq) FILTER (WHERE sent_at IS NOT NULL), 0),
	    COALESCE(MAX(seq) FILTER (WHERE acked_at IS NOT NULL), 0)
	  FROM outbox WHERE sync_id = ?`, syncID).
		Scan(&s.Depth, &s.Unsent, &oldest, &s.HighestSeq, &s.HighestSent, &s.HighestAcked)
	if err != nil {
		return OutboxStats{}, fmt.Errorf("outbox stats of sync %s: %w", syncID, err)
	}
	s.OldestUnacked = fromMS(oldest)
	if s.PrunedThrough, err = t.outboxPrunedThrough(syncID); err != nil {
		return OutboxStats{}, fmt.Errorf("outbox stats of sync %s: %w", syncID, err)
	}
	// Pruned envelopes were sent and acked.
	s.HighestSeq = max(s.HighestSeq, s.PrunedThrough)
	s.HighestSent = max(s.HighestSent, s.PrunedThrough)
	s.HighestAcked = max(s.HighestAcked, s.PrunedThrough)
	return s, nil
}

// OldestUnackedAge is how long the oldest unacked envelope has waited at
// now; zero when everything is acked.
func (s OutboxStats) OldestUnackedAge(now time.Time) time.Duration {
	if s.OldestUnacked.IsZero() {
		return 0
	}
	return now.Sub(s.OldestUnacked)
}
