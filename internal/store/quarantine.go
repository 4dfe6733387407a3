package store

import (
	"database/sql"
	"fmt"
	"time"
)

// Quarantined is an inbound message that failed to verify or decode.
type Quarantined struct {
	ID           int64
	SyncID       string // as claimed by the message; may be unknown or empty
	TransportRef string // IMAP UID and folder, file name, ...
	Reason       string
	Raw          []byte // the message, when kept in the database
	Path         string // where the message was moved, when kept outside
	At           time.Time
}

// QuarantineAdd records a quarantined message and returns its id.
func (t *Tx) QuarantineAdd(q Quarantined) (int64, error) {
	what := "record quarantined message " + q.TransportRef
	return t.insert(what, `INSERT INTO quarantine (sync_id, transport_ref, reason, raw, path, at)
		VALUES (?, ?, ?, ?, ?, ?)`, q.SyncID, q.TransportRef, q.Reason, q.Raw, q.Path, t.nowMS())
}

const quarantineCols = `id, sync_id, transport_ref, reason, raw, path, at`

func scanQuarantine(r interface{ Scan(...any) error }) (Quarantined, error) {
	var q Quarantined
	var at sql.NullInt64
	err := r.Scan(&q.ID, &q.SyncID, &q.TransportRef, &q.Reason, &q.Raw, &q.Path, &at)
	q.At = fromMS(at)
	return q, err
}

// QuarantineGet returns one record (with its raw bytes) or ErrNotFound.
func (t *Tx) QuarantineGet(id int64) (Quarantined, error) {
	q, err := scanQuarantine(t.queryRow(`SELECT `+quarantineCols+` FROM quarantine WHERE id = ?`, id))
	if err != nil {
		return Quarantined{}, notFound(fmt.Sprintf("get quarantined message %d", id), err)
	}
	return q, nil
}

// QuarantineList returns the newest limit records, newest first, without
// their raw bytes.
func (t *Tx) QuarantineList(limit int) ([]Quarantined, error) {
	return collect(t, "list quarantined messages",
		`SELECT id, sync_id, transport_ref, reason, NULL, path, at FROM quarantine ORDER BY id DESC LIMIT ?`,
		func(r *sql.Rows) (Quarantined, error) { return scanQuarantine(r) }, limitOr(limit, 100))
}

// QuarantineDelete removes a record once the operator has dealt with it.
func (t *Tx) QuarantineDelete(id int64) error {
	what := fmt.Sprintf("delete quarantined message %d", id)
	r, err := t.exec(what, `DELETE FROM quarantine WHERE id = ?`, id)
	if err != nil {
		return err
	}
	return mustAffect(r, what)
}
