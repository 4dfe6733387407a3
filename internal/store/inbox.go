package store

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// InboxEntry is one sealed envelope received from a peer.
type InboxEntry struct {
	SyncID     string
	Sender     string // the sender's node id
	Seq        uint64
	Kind       string
	Sealed     []byte
	ReceivedAt time.Time
	Released   bool      // its changes are in the replay queue
	ReleasedAt time.Time // zero until released
}

// InboxCursor is what the receiver knows about one sender's sequence.
type InboxCursor struct {
	Contiguous  uint64 // every number 1..Contiguous is held: the number to ack
	HighestSeen uint64 // the highest number received at all
}

// Gap is a run of missing sequence numbers From..To (inclusive) below the
// highest number seen. FirstSeen is when the gap first became visible: the
// arrival of the earliest envelope above it. A gap open longer than the
// configured time is asked for again.
type Gap struct {
	From, To  uint64
	FirstSeen time.Time
}

// InboxInsert stores a received envelope. A sequence number already held (or
// already released and purged) is a duplicate: nothing is written and
// duplicate is true, with no error, so the caller can count it and still
// delete the mail. Numbers far beyond what is expected are stored too; the
// numbers in between become gaps.
func (t *Tx) InboxInsert(e InboxEntry) (duplicate bool, err error) {
	what := fmt.Sprintf("store inbox envelope %d of sync %s from %s", e.Seq, e.SyncID, e.Sender)
	if e.Seq == 0 {
		return false, fmt.Errorf("%s: sequence numbers start at 1", what)
	}
	cur, err := t.InboxCursor(e.SyncID, e.Sender)
	if err != nil {
		return false, err
	}
	if e.Seq <= cur.Contiguous {
		return true, nil
	}
	if e.Sealed == nil {
		e.Sealed = []byte{}
	}
	r, err := t.exec(what, `INSERT INTO inbox (sync_id, sender, seq, kind, sealed, received_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		e.SyncID, e.Sender, e.Seq, e.Kind, e.Sealed, t.nowMS())
	if err != nil {
		return false, err
	}
	if n, err := r.RowsAffected(); err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	} else if n == 0 {
		return true, nil
	}
	cur.HighestSeen = max(cur.HighestSeen, e.Seq)
	if e.Seq == cur.Contiguous+1 {
		// Advance over the run that this envelope joins to the prefix.
		var run uint64
		err := t.queryRow(`WITH RECURSIVE r(seq) AS (
		    SELECT ?3
		    UNION ALL
		    SELECT r.seq + 1 FROM r JOIN inbox i
		      ON i.sync_id = ?1 AND i.sender = ?2 AND i.seq = r.seq + 1)
		  SELECT MAX(seq) FROM r`, e.SyncID, e.Sender, e.Seq).Scan(&run)
		if err != nil {
			return false, fmt.Errorf("%s: advance contiguous: %w", what, err)
		}
		cur.Contiguous = run
	}
	if _, err := t.exec(what, `INSERT INTO inbox_cursors (sync_id, sender, contiguous, highest_seen)
		VALUES (?, ?, ?, ?) ON CONFLICT (sync_id, sender) DO UPDATE SET
		contiguous = excluded.contiguous, highest_seen = excluded.highest_seen`,
		e.SyncID, e.Sender, cur.Contiguous, cur.HighestSeen); err != nil {
		return false, err
	}
	return false, nil
}

// InboxCursor returns the contiguous and highest numbers held from sender.
func (t *Tx) InboxCursor(syncID, sender string) (InboxCursor, error) {
	var c InboxCursor
	err := t.queryRow(`SELECT contiguous, highest_seen FROM inbox_cursors WHERE sync_id = ? AND sender = ?`,
		syncID, sender).Scan(&c.Contiguous, &c.HighestSeen)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return InboxCursor{}, fmt.Errorf("read inbox cursor of sync %s from %s: %w", syncID, sender, err)
	}
	return c, nil
}

// InboxGaps returns the runs of missing numbers between the contiguous
// prefix and the highest number seen from sender, lowest first.
func (t *Tx) InboxGaps(syncID, sender string) ([]Gap, error) {
	what := fmt.Sprintf("compute inbox gaps of sync %s from %s", syncID, sender)
	cur, err := t.InboxCursor(syncID, sender)
	if err != nil {
		return nil, err
	}
	if cur.HighestSeen <= cur.Contiguous {
		return nil, nil
	}
	type held struct {
		seq uint64
		at  int64
	}
	// Everything above the prefix is still stored (nothing above it can have
	// been released), and it is only what arrived out of order: few rows.
	rows, err := collect(t, what, `SELECT seq, received_at FROM inbox
		WHERE sync_id = ? AND sender = ? AND seq > ? ORDER BY seq`,
		func(r *sql.Rows) (held, error) {
			var h held
			return h, r.Scan(&h.seq, &h.at)
		}, syncID, sender, cur.Contiguous)
	if err != nil {
		return nil, err
	}
	var gaps []Gap
	// Walk from the top so that the earliest arrival above each gap is known.
	earliest := int64(-1)
	next := cur.HighestSeen + 1
	for i := len(rows) - 1; i >= 0; i-- {
		h := rows[i]
		if h.seq+1 < next && earliest >= 0 {
			gaps = append(gaps, Gap{From: h.seq + 1, To: next - 1, FirstSeen: time.UnixMilli(earliest)})
		}
		if earliest < 0 || h.at < earliest {
			earliest = h.at
		}
		next = h.seq
	}
	if next > cur.Contiguous+1 && earliest >= 0 {
		gaps = append(gaps, Gap{From: cur.Contiguous + 1, To: next - 1, FirstSeen: time.UnixMilli(earliest)})
	}
	for i, j := 0, len(gaps)-1; i < j; i, j = i+1, j-1 {
		gaps[i], gaps[j] = gaps[j], gaps[i]
	}
	return gaps, nil
}

// InboxMissing expands the gaps into at most limit missing numbers, lowest
// first: what a resend request asks for.
func (t *Tx) InboxMissing(syncID, sender string, limit int) ([]uint64, error) {
	gaps, err := t.InboxGaps(syncID, sender)
	if err != nil {
		return nil, err
	}
	limit = limitOr(limit, 1000)
	var out []uint64
	for _, g := range gaps {
		for s := g.From; s <= g.To; s++ {
			if len(out) == limit {
				return out, nil
			}
			out = append(out, s)
		}
	}
	return out, nil
}

const inboxCols = `sync_id, sender, seq, kind, sealed, received_at, state, released_at`

func scanInbox(r interface{ Scan(...any) error }) (InboxEntry, error) {
	var e InboxEntry
	var state string
	var received, released sql.NullInt64
	err := r.Scan(&e.SyncID, &e.Sender, &e.Seq, &e.Kind, &e.Sealed, &received, &state, &released)
	e.ReceivedAt, e.ReleasedAt, e.Released = fromMS(received), fromMS(released), state == "released"
	return e, err
}

// InboxReleasable returns up to limit stored envelopes of the contiguous
// prefix not yet released, in sequence order: the ones whose changes may go
// to the replay queue now.
func (t *Tx) InboxReleasable(syncID, sender string, limit int) ([]InboxEntry, error) {
	return collect(t, fmt.Sprintf("list releasable inbox envelopes of sync %s from %s", syncID, sender),
		`SELECT `+inboxCols+` FROM inbox i
		 WHERE i.sync_id = ?1 AND i.sender = ?2 AND i.state = 'stored'
		   AND i.seq <= (SELECT contiguous FROM inbox_cursors c WHERE c.sync_id = ?1 AND c.sender = ?2)
		 ORDER BY i.seq LIMIT ?3`,
		func(r *sql.Rows) (InboxEntry, error) { return scanInbox(r) }, syncID, sender, limitOr(limit, 100))
}

// InboxMarkReleased records that the changes of seq are in the replay queue.
func (t *Tx) InboxMarkReleased(syncID, sender string, seq uint64) error {
	what := fmt.Sprintf("mark inbox envelope %d of sync %s from %s released", seq, syncID, sender)
	r, err := t.exec(what, `UPDATE inbox SET state = 'released', released_at = ?
		WHERE sync_id = ? AND sender = ? AND seq = ?`, t.nowMS(), syncID, sender, seq)
	if err != nil {
		return err
	}
	return mustAffect(r, what)
}

// InboxUnreleased counts the envelopes of a sync that are stored but not
// yet released to replay (held behind a gap, or not yet processed).
func (t *Tx) InboxUnreleased(syncID string) (int, error) {
	var n int
	if err := t.queryRow(`SELECT COUNT(*) FROM inbox WHERE sync_id = ? AND state = 'stored'`, syncID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count unreleased inbox envelopes of sync %s: %w", syncID, err)
	}
	return n, nil
}

// InboxGet returns one stored envelope or ErrNotFound.
func (t *Tx) InboxGet(syncID, sender string, seq uint64) (InboxEntry, error) {
	e, err := scanInbox(t.queryRow(`SELECT `+inboxCols+` FROM inbox WHERE sync_id = ? AND sender = ? AND seq = ?`,
		syncID, sender, seq))
	if err != nil {
		return InboxEntry{}, notFound(fmt.Sprintf("get inbox envelope %d of sync %s from %s", seq, syncID, sender), err)
	}
	return e, nil
}

// InboxPurge deletes released envelopes released before the given time (the
// retention period for processed payloads) and returns how many went. The
// cursor still knows them, so a late duplicate is still recognised.
func (t *Tx) InboxPurge(releasedBefore time.Time) (int, error) {
	r, err := t.exec("purge inbox", `DELETE FROM inbox WHERE state = 'released' AND released_at < ?`,
		releasedBefore.UnixMilli())
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge inbox: %w", err)
	}
	return int(n), nil
}
